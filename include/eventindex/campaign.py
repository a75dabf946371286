"""Production campaigns: the production system's finished tasks -> one ingestion per output dataset, read as AMI reads
the production system, "little and very often".

A scheduled read goes on from the persisted stop point (``stop_points``: the last ``(last_update, task_id)`` read by
a successful run), not from its data interval's start, so that rows arriving late for an interval already read are
not lost. A backfill over past dates reads its own interval and leaves the stop point alone; it is idempotent (the
ingestion runs it starts have the names earlier reads gave them) unless ``reindex`` asks to re-ingest. One read
starts at most ``MAX_PER_READ`` ingestions (below Airflow's ``max_map_length``); what is left over is read by a
continuation of the same read, never refused for its size. Outputs in formats without event records to index
(EVNT, HITS, RDO, HIST: ``NOT_INDEXED``) start nothing; AMI reads their tasks for the physics parameters.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa

from . import metadata as md
from . import upstream
from .ami import derived
from .errors import EventIndexError
from .naming import parse

SOURCE = "prodsys"
MAX_PER_READ = 1000
NOT_INDEXED = {"EVNT", "HITS", "RDO", "HIST"}


def indexed(name: str) -> bool:
    """Whether a task output is a dataset the catalogue indexes (a name it cannot parse is, so that the ingestion
    run refuses it visibly)."""
    try:
        return parse(name).datatype not in NOT_INDEXED
    except EventIndexError:
        return True


def stop_point(engine: sa.Engine, source: str = SOURCE) -> tuple[datetime, int] | None:
    s = md.stop_points
    with engine.connect() as conn:
        row = conn.execute(sa.select(s.c.last_update, s.c.task_id).where(s.c.source == source)).first()
    return (row.last_update, row.task_id) if row else None


def save_stop_point(engine: sa.Engine, cursor: tuple[datetime, int] | None, source: str = SOURCE) -> bool:
    """Persist ``cursor`` as the stop point if it is past the current one (a stop point never moves back)."""
    if cursor is None:
        return False
    current = stop_point(engine, source)
    if current is not None and tuple(cursor) <= current:
        return False
    s = md.stop_points
    values = {"last_update": cursor[0], "task_id": cursor[1], "updated": md.now()}
    with engine.begin() as conn:
        if not conn.execute(s.update().where(s.c.source == source).values(**values)).rowcount:
            conn.execute(s.insert().values(source=source, **values))
    return True


def _cursor_json(cursor) -> list | None:
    return [cursor[0].isoformat(), int(cursor[1])] if cursor else None


def _cursor(value) -> tuple[datetime, int] | None:
    return (datetime.fromisoformat(value[0]), int(value[1])) if value else None


def read(url: str, engine: sa.Engine, start: datetime, end: datetime, *, follow_stop_point: bool,
         after=None, reindex: bool = False, run_key: str = "", max_datasets: int = MAX_PER_READ) -> dict:
    """One read: the ingestion runs to start (``runs``), where it stopped (``cursor``) and, when the window holds
    more, the ``continuation`` conf that reads on from there."""
    derived.sync_tasks(engine, url)  # AMI's view of the production system (its own stop point), every read
    after = _cursor(after)
    if after is None and follow_stop_point:
        after = stop_point(engine)
    batch = upstream.read_finished(url, None if after is not None else start, end, after, max_datasets)
    suffix = f"__reindex_{hashlib.sha1(run_key.encode()).hexdigest()[:10]}" if reindex else ""
    runs = [{"trigger_run_id": f"prodsys__{t['task_id']}__{name}{suffix}",
             "conf": {"dataset": name, "source": "prodsys", "obsolete_older": True, "reindex": reindex}}
            for t in batch.tasks for name in t["output_datasets"] if indexed(name)]
    continuation = None
    if batch.more:
        continuation = {"after": _cursor_json(batch.cursor), "start": start.isoformat(), "end": end.isoformat(),
                        "follow_stop_point": follow_stop_point, "reindex": reindex}
    return {"runs": runs, "ntasks": len(batch.tasks), "cursor": _cursor_json(batch.cursor),
            "continuation": continuation}


def commit(engine: sa.Engine, result: dict, follow_stop_point: bool) -> bool:
    """After the ingestion runs of a read were started: move the stop point (scheduled reads only)."""
    return follow_stop_point and save_stop_point(engine, _cursor(result.get("cursor")))
