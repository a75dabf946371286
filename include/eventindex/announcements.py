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


def record(engine: sa.Engine, msg: dict) -> bool:
    """Store one announcement; returns True when it is new or supersedes an earlier attempt of the same job."""
    return record_many(engine, [msg]) == 1


def record_many(engine: sa.Engine, msgs: list[dict]) -> int:
    """Store a batch of announcements in one transaction; returns how many were new or superseded.

    A job's part is identified by (dataset, task id, job id). A later attempt (a re-run of the job) replaces the
    earlier one and is handed over again; the same or an earlier attempt (a duplicate, a late redelivery) only
    counts a delivery and changes nothing else.
    """
    a = md.announcements
    latest: dict[tuple, dict] = {}
    deliveries: dict[tuple, int] = {}
    for msg in msgs:
        key = (msg["dataset"], msg["task_id"], msg["job_id"])
        deliveries[key] = deliveries.get(key, 0) + 1
        if key not in latest or msg.get("attempt", 0) > latest[key].get("attempt", 0):
            latest[key] = msg
    changed = 0
    with engine.begin() as conn:
        rows = {}
        for dataset in {k[0] for k in latest}:
            for r in conn.execute(sa.select(a.c.task_id, a.c.job_id, a.c.attempt).where(a.c.dataset == dataset)):
                rows[(dataset, r.task_id, r.job_id)] = r.attempt
        inserts = []
        for key, msg in latest.items():
            where = (a.c.dataset == key[0]) & (a.c.task_id == key[1]) & (a.c.job_id == key[2])
            attempt = int(msg.get("attempt", 0))
            if key not in rows:
                inserts.append({"dataset": key[0], "task_id": key[1], "job_id": key[2], "attempt": attempt,
                                "message": json.dumps(msg), "received_at": md.now(), "deliveries": deliveries[key]})
            elif attempt > rows[key]:
                conn.execute(a.update().where(where).values(
                    attempt=attempt, message=json.dumps(msg), received_at=md.now(), handed_over_at=None,
                    deliveries=a.c.deliveries + deliveries[key]))
                changed += 1
            else:
                conn.execute(a.update().where(where).values(deliveries=a.c.deliveries + deliveries[key]))
        if inserts:
            conn.execute(a.insert(), inserts)
    return changed + len(inserts)


def for_dataset(engine: sa.Engine, dataset: str) -> list[dict]:
    """Every job's latest announcement of a dataset."""
    a = md.announcements
    with engine.connect() as conn:
        rows = conn.execute(sa.select(a.c.message).where(a.c.dataset == dataset)
                            .order_by(a.c.task_id, a.c.job_id)).all()
    return [json.loads(r.message) for r in rows]
