"""Housekeeping that keeps the catalogue's disk and the metadata DB from growing without bound; the daily maintenance
DAG and ``eventindex gc`` run it.

- ``collect_garbage``: the event store's files no reader can need any more (crashed loads, replaced versions);
  the embedded store's ``gc``; Phoenix keeps its events in HBase tables, so there is nothing to collect there.
- ``prune_rucio_closes``: Rucio's Hermes sends a CLOSE for every dataset it closes, and most are not ours: each
  leaves a ``dataset_progress`` row in state ``closed`` ("closed in Rucio; nothing announced yet"). Those that
  nobody announced within a retention never will be: their rows (and the AMI quantities derived from them alone)
  go. A CLOSE arriving later for such a dataset simply records it again.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from . import metadata as md
from .ami import derived
from .errors import BadInput
from .progress import CLOSED

DEFAULT_MIN_AGE_S = 3600
DEFAULT_CLOSE_RETENTION_DAYS = 30


def collect_garbage(catalog, min_age_s: float = DEFAULT_MIN_AGE_S, *, dry_run: bool = False):
    """Remove the catalogue's garbage files (``EmbeddedCatalog.gc``); returns a ``GcResult``, empty for a backend
    without files.

    ``min_age_s``: how long a replaced version outlives its replacement and how old a crashed load's file must be
    (a load in progress never waits that long between writing a file and committing it); ``dry_run``: report only.
    """
    if not isinstance(min_age_s, (int, float)) or isinstance(min_age_s, bool) or not min_age_s >= 0:  # NaN too
        raise BadInput(f"min age {min_age_s!r} is not a number of seconds >= 0")
    gc = getattr(catalog, "gc", None)
    if gc is None:
        from .catalog.embedded.garbage import GcResult

        return GcResult(dry_run=dry_run)
    return gc(min_age_s, dry_run=dry_run)


def prune_rucio_closes(engine: sa.Engine, retention_days: float = DEFAULT_CLOSE_RETENTION_DAYS, *,
                       dry_run: bool = False) -> list[str]:
    """Delete the ``closed`` progress rows of datasets nobody announced and the catalogue does not hold, whose last
    CLOSE is older than ``retention_days``; returns their names (sorted). One transaction: the rows and the AMI
    quantities derived from them alone go together (a dataset the production system also knows is recomputed
    right after, from what is left)."""
    if not isinstance(retention_days, (int, float)) or isinstance(retention_days, bool) or not retention_days >= 0:
        raise BadInput(f"retention {retention_days!r} is not a number of days >= 0")
    p, a, d, u = md.dataset_progress, md.announcements, md.datasets, md.upstream_datasets
    cutoff = md.now() - timedelta(days=retention_days)
    stale = (sa.select(p.c.dataset).where(p.c.state == CLOSED).where(p.c.closed_at < cutoff)
             .where(~sa.exists().where(a.c.dataset == p.c.dataset))
             .where(~sa.exists().where(d.c.name == p.c.dataset)))
    with engine.begin() as conn:
        names = sorted(r[0] for r in conn.execute(stale))
        if dry_run or not names:
            return names
        pruned, upstream = [], set()
        for chunk in _chunks(names, 500):
            # the same conditions again: a CLOSE or an announcement that arrived since the select keeps its row
            gone = [r[0] for r in conn.execute(
                p.delete().where(p.c.dataset.in_(chunk)).where(p.c.state == CLOSED).where(p.c.closed_at < cutoff)
                .where(~sa.exists().where(a.c.dataset == p.c.dataset))
                .where(~sa.exists().where(d.c.name == p.c.dataset)).returning(p.c.dataset))]
            known = {r[0] for r in conn.execute(sa.select(u.c.dataset).where(u.c.dataset.in_(gone)))}
            alone = [n for n in gone if n not in known]
            if alone:
                conn.execute(md.dataset_quantities.delete().where(md.dataset_quantities.c.dataset.in_(alone)))
            pruned += gone
            upstream |= known
    if upstream:
        derived.refresh(engine, sorted(upstream), "rucio")
    return sorted(pruned)


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
