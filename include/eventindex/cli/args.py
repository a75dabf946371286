"""Argument types and option groups shared by the nouns, defined once so that every command reads a run range,
a comma list, a time or a user's text file the same way and refuses it with the same one-line message."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich_argparse import RawDescriptionRichHelpFormatter

from ..errors import BadInput, NotFound

FORMATTER = RawDescriptionRichHelpFormatter  # rich colours; epilog examples keep their lines


def add_command(subparsers, name: str, help: str, examples: list[str], **kwargs) -> argparse.ArgumentParser:
    """A subcommand with its help as description and an epilog of examples (one command line each)."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    return subparsers.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=FORMATTER,
                                 **kwargs)


def add_noun(subparsers, name: str, help: str, examples: list[str]):
    """A command with subcommands of its own (``eventindex db upgrade``): the subparsers to add them to."""
    return add_command(subparsers, name, help, examples).add_subparsers(dest=f"{name}_command", required=True,
                                                                         metavar="COMMAND")


class CommaList(argparse.Action):
    """A repeatable option whose values may also be comma-separated: ``--x a,b --x c`` -> ``[a, b, c]``. Given on
    the command line, it replaces its default (e.g. one from an options file) instead of adding to it."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.setdefault("default", [])
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        items = [] if current is self.default else list(current or [])
        items += [v.strip() for v in values.split(",") if v.strip()] or [""]  # a blank value is refused, not dropped
        setattr(namespace, self.dest, items)


def comma_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def epoch_seconds(text: str) -> int:
    """Seconds since the epoch, or an ISO date/time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    from datetime import datetime, timezone

    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"time {text!r} is neither seconds since the epoch nor an ISO date") from None
    return int((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp())


def add_range_option(p: argparse.ArgumentParser, flag: str, what: str) -> None:
    p.add_argument(flag, action=CommaList, metavar="N|A-B",
                   help=f"{what} or {what} range A-B; comma-separated or repeated")


def add_selection_options(p: argparse.ArgumentParser, json_help: str = "machine-readable output") -> None:
    g = p.add_argument_group("selection")
    g.add_argument("--project", help="project tag, e.g. data18_13TeV")
    add_range_option(g, "--run", "run")
    g.add_argument("--period", action=CommaList, metavar="NAME",
                   help="run period (B, C, ... as synced from the conditions); comma-separated or repeated")
    add_range_option(g, "--lumi", "lumi block")
    g.add_argument("--stream", help="trigger stream, e.g. physics_Main")
    g.add_argument("--type", help="data type: RAW, AOD, DAOD_PHYS, ...")
    g.add_argument("--version", help="AMI tag chain, or 'latest'")
    g.add_argument("--dataset", help="one dataset by name")
    g.add_argument("--guid", help="events of one file")
    g.add_argument("--trigger", action=CommaList, metavar="EXPR",
                   help="L1 item or HLT chain that passed, or an expression of them with and, or, not and "
                        "parentheses ('HLT_a or not L1_b'); comma-separated or repeated, all must hold")
    add_range_option(g, "--bcid", "bunch crossing id")
    g.add_argument("--since", type=epoch_seconds, help="from this time (epoch seconds or ISO date)")
    g.add_argument("--until", type=epoch_seconds, help="until this time")
    g.add_argument("--include-obsolete", action="store_true", help="also datasets declared obsolete")
    p.add_argument("--json", action="store_true", help=json_help)


def selection(args):
    """The checked Selection of the options above (the catalogue refuses bad values with a one-line reason)."""
    from ..catalog import make_selection

    since, until = args.since, args.until
    time_range = None if since is None and until is None else (since or 0, until or 2**32 - 1)
    return make_selection(project=args.project, runs=args.run, lumi_blocks=args.lumi, stream=args.stream,
                          datatype=args.type, version=args.version, dataset=args.dataset, guid=args.guid,
                          triggers=args.trigger, time_range=time_range, include_obsolete=args.include_obsolete,
                          period=getattr(args, "period", ()), bcid=getattr(args, "bcid", None) or ())


def add_world_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("world")
    g.add_argument("--seed", type=int, default=2018, help="random seed (default 2018)")
    g.add_argument("--runs", type=int, help="number of runs (default 3)")
    g.add_argument("--events-per-run", type=int, help="recorded events per run (default 70000)")
    g.add_argument("--lumi-blocks", type=int, help="lumi blocks per run (default 200)")
    g.add_argument("--mc-events", type=int, help="events per simulation sample (default 10000)")


def world_config(args):
    from ..demo import world_config as build

    return build(args.seed, args.runs, args.events_per_run, args.lumi_blocks, args.mc_events)


def read_text_file(name: str, what: str = "a text file") -> str:
    """A text file the user named ('-' for stdin), with a one-line error for what is not one; a UTF-8 BOM (as
    Windows editors write) is dropped, so the first line parses like the others."""
    if name == "-":
        data, label = sys.stdin.buffer.read(), "stdin"
    else:
        path = Path(name)
        if path.is_dir():
            raise BadInput(f"{name} is a folder, not {what}")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{name} does not exist") from None
        except PermissionError:
            raise BadInput(f"{name} cannot be read (permission denied)") from None
        label = name
    if b"\x00" in data:
        raise BadInput(f"{label} is not a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"{label} is not a text file") from None
