"""Where the command writes: results on stdout, progress and messages on stderr, so pipes get only the results."""

from __future__ import annotations

import sys

from rich.console import Console

# 200 columns when piped: wide enough for dataset names, fixed so that scripts see stable lines
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def progress():
    """A progress bar on stderr (rich.progress is imported only by commands that show one)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err)


def table(title: str, columns: list[str], right: tuple[str, ...] = ()):
    """A rich table with the given columns; those named in ``right`` are right-aligned (numbers)."""
    from rich.table import Table

    t = Table(title=title)
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left")
    return t


def print_json(value) -> None:
    """One line of JSON on stdout: dates and other values JSON lacks as text."""
    import json

    print(json.dumps(value, default=str))


def matrix_table(title: str, labels, matrix):
    """A square table of counts (overlaps): the diagonal holds each label's own total."""
    t = table(title, ["", *labels], right=tuple(labels))
    for label, row in zip(labels, matrix):
        t.add_row(label, *[f"{v:,}" for v in row])
    return t
