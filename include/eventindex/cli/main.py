"""The ``eventindex`` command: the parser built from the noun modules, and the one place that turns an error into a
line on stderr and an exit status (so no command prints a traceback for something the user can fix)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import EventIndexError, TransientError
from . import ami, catalog, db, ddm, demo, gc, histogram, ingestion, pick, produce, skim, triggers, world
from .args import FORMATTER
from .output import err

# the order of `eventindex --help`
NOUNS = (world, produce, demo, catalog, triggers, histogram, skim, ami, ingestion, pick, ddm, db, gc)

EXIT_ERROR, EXIT_TRY_AGAIN, EXIT_BUG = 1, 75, 70  # 75: EX_TEMPFAIL, a service did not answer; 70: EX_SOFTWARE
EXIT_BROKEN_PIPE = 1  # quietly, as Python's docs advise and as rich's consoles do (Console.on_broken_pipe)
EPILOG = """\
exit status: 0 done, 1 refused (the message says why), 2 bad usage, 3 lookup found nothing,
             75 a service could not be reached (try again later), 70 a bug (EVENTINDEX_DEBUG=1 shows where)
settings: EVENTINDEX_HOME (default .eventindex/) holds the embedded world, staging area, catalogue and DBs

examples:
  eventindex demo
  eventindex lookup 358031 1234567"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventindex", formatter_class=FORMATTER, epilog=EPILOG,
                                description="EventIndex: an event catalogue for particle-physics experiments.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for noun in NOUNS:
        noun.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except BrokenPipeError:  # `eventindex datasets --json | head -c 10`: the reader has all it wanted
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130
    except TransientError as exc:
        _error(exc)
        return EXIT_TRY_AGAIN
    except EventIndexError as exc:
        _error(exc)
        return EXIT_ERROR
    except OSError as exc:  # a file or folder the user named: missing, unreadable, full disk
        _error(exc)
        return EXIT_ERROR
    except Exception as exc:  # a bug: one line for the user, the traceback for whoever reports it
        if os.environ.get("EVENTINDEX_DEBUG"):
            raise
        _error(f"unexpected {type(exc).__name__}: {exc} (a bug in eventindex; EVENTINDEX_DEBUG=1 shows where)")
        return EXIT_BUG


def _error(exc: BaseException | str) -> None:
    from rich.text import Text

    try:
        err.print(Text.assemble(("error: ", "red"), str(exc)), highlight=False, soft_wrap=True)
    except BrokenPipeError:
        pass


def _silence_stdout() -> None:
    """Python flushes stdout again at exit; pointing it at /dev/null keeps that flush from failing a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
