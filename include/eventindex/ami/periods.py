"""Run periods (COMA's lettered periods, synced into the metadata DB's ``run_periods``) as a selection.

A period is a run range of one project, so ``--period B`` selects the datasets of that project whose runs fall in
B; it is resolved against the metadata DB when the catalogue picks candidate datasets, so a period that grows at
the next conditions sync selects the new runs without any change to the query.
"""

from __future__ import annotations

import sqlalchemy as sa

from .. import metadata as md
from ..errors import BadSelection

Range = tuple[int, int]


def run_ranges(engine: sa.Engine, names: tuple[str, ...], project: str | None = None) -> dict[str, tuple[Range, ...]]:
    """project -> the run ranges of the periods ``names`` in it (of ``project`` only, when given).

    A name no project holds (or not ``project``) is refused naming it and listing the periods known, so that a
    typo does not pass for "no such events"."""
    query = sa.select(md.run_periods.c.project, md.run_periods.c.period, md.run_periods.c.first_run,
                      md.run_periods.c.last_run).order_by(md.run_periods.c.project, md.run_periods.c.first_run)
    if project:
        query = query.where(md.run_periods.c.project == project)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    wanted = set(names)
    unknown = [n for n in names if n not in {r.period for r in rows}]
    if unknown:
        where = f" of {project}" if project else ""
        if not rows:
            raise BadSelection(f"unknown period {', '.join(unknown)}: the metadata DB holds no run periods{where}; "
                               "sync the conditions first (the eventindex_conditions DAG, or `eventindex load`)")
        known = ", ".join(dict.fromkeys(f"{r.project} {r.period} ({r.first_run}-{r.last_run})" for r in rows))
        raise BadSelection(f"unknown period {', '.join(unknown)}{where}: the metadata DB holds {known}")
    out: dict[str, list[Range]] = {}
    for r in rows:
        if r.period in wanted:
            out.setdefault(r.project, []).append((int(r.first_run), int(r.last_run)))
    return {p: tuple(ranges) for p, ranges in out.items()}


def in_periods(row: dict, ranges: dict[str, tuple[Range, ...]]) -> bool:
    """Whether a manifest row's runs lie in the period ranges of its own project.

    Periods select whole datasets (a data dataset holds one run), so a dataset whose runs straddle a period's edge
    is refused rather than counted whole: select it by run range instead."""
    spans = ranges.get(row["project"])
    if not spans or not any(a <= row["last_run"] and row["first_run"] <= b for a, b in spans):
        return False
    if not any(a <= row["first_run"] and row["last_run"] <= b for a, b in spans):
        raise BadSelection(f"dataset {row['name']} holds runs {row['first_run']}-{row['last_run']}, not all in the "
                           f"period(s) selected ({', '.join(f'{a}-{b}' for a, b in spans)}); select its runs by "
                           "run range (--run) instead")
    return True
