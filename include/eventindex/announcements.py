"""Producer announcements received over STOMP: checked, recorded in the metadata DB, and only then acked.

At-least-once delivery means duplicates: a message is identified by (dataset, task id, job id), so a redelivered
or repeated announcement updates the same row and starts no second ingestion; a later attempt of a job (a re-run)
supersedes the earlier one. Announcements accumulate per dataset: which runs they start is ``progress.claim_runs``. A message that cannot be an
announcement (not JSON, no dataset, a malformed name) is poison: it is moved aside, never retried.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from . import metadata as md
from .errors import EventIndexError, PoisonMessage
from .naming import parse


def parse_announcement(body: str) -> dict:
    try:
        msg = json.loads(body)
    except (ValueError, TypeError) as exc:
        raise PoisonMessage(f"not JSON ({exc})") from None
    if not isinstance(msg, dict) or msg.get("type") != "eventindex.produced":
        raise PoisonMessage("not an eventindex.produced announcement")
    try:
        msg["dataset"] = parse(str(msg.get("dataset", ""))).name
        msg["task_id"], msg["job_id"] = int(msg.get("task_id", 0)), int(msg.get("job_id", 0))
        msg["attempt"] = int(msg.get("attempt", 0))
    except (EventIndexError, ValueError) as exc:
        raise PoisonMessage(str(exc)) from None
    if not isinstance(msg.get("guids"), dict):
        raise PoisonMessage(f"announcement for {msg['dataset']} has no per-GUID counts")
    return msg


def record(engine: sa.Engine, msg: dict) -> None:
    """Store one announcement (see ``record_many``)."""
    record_many(engine, [msg])


def record_many(engine: sa.Engine, msgs: list[dict]) -> None:
    """Store a batch of announcements: one upsert statement, one transaction.

    A job's part is identified by (dataset, task id, job id). A later attempt (a re-run of the job) replaces the
    earlier one and is to be handed over again; the same or an earlier attempt (a duplicate, a late redelivery) only
    counts a delivery and changes nothing else.
    """
    latest: dict[tuple, dict] = {}
    deliveries: dict[tuple, int] = {}
    for msg in msgs:
        key = (msg["dataset"], msg["task_id"], msg["job_id"])
        deliveries[key] = deliveries.get(key, 0) + 1
        if key not in latest or msg.get("attempt", 0) > latest[key].get("attempt", 0):
            latest[key] = msg
    if not latest:
        return
    received = md.now()
    rows = [{"dataset": k[0], "task_id": k[1], "job_id": k[2], "attempt": int(m.get("attempt", 0)),
             "message": json.dumps(m), "received_at": received, "deliveries": deliveries[k]}
            for k, m in latest.items()]
    a = md.announcements
    insert = _dialect_insert(engine)(a)
    newer = insert.excluded.attempt > a.c.attempt
    upsert = insert.on_conflict_do_update(
        index_elements=[a.c.dataset, a.c.task_id, a.c.job_id],
        set_={"deliveries": a.c.deliveries + insert.excluded.deliveries,
              "attempt": sa.case((newer, insert.excluded.attempt), else_=a.c.attempt),
              "message": sa.case((newer, insert.excluded.message), else_=a.c.message),
              "received_at": sa.case((newer, insert.excluded.received_at), else_=a.c.received_at),
              "handed_over_at": sa.case((newer, sa.null()), else_=a.c.handed_over_at)})
    with engine.begin() as conn:
        conn.execute(upsert, rows)


def _dialect_insert(engine: sa.Engine):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def for_dataset(engine: sa.Engine, dataset: str) -> list[dict]:
    """Every job's latest announcement of a dataset."""
    a = md.announcements
    with engine.connect() as conn:
        rows = conn.execute(sa.select(a.c.message).where(a.c.dataset == dataset)
                            .order_by(a.c.task_id, a.c.job_id)).all()
    return [json.loads(r.message) for r in rows]
