"""Producer announcements received over STOMP: checked, recorded in the metadata DB, and only then acked.

At-least-once delivery means duplicates: a message is identified by (dataset, task id, job id), so a redelivered
or repeated announcement updates the same row and starts no second ingestion. A message that cannot be an
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
    except (EventIndexError, ValueError) as exc:
        raise PoisonMessage(str(exc)) from None
    if not isinstance(msg.get("guids"), dict):
        raise PoisonMessage(f"announcement for {msg['dataset']} has no per-GUID counts")
    return msg


def record(engine: sa.Engine, msg: dict) -> bool:
    """Store (or refresh) an announcement; returns True when it is new."""
    a = md.announcements
    key = (a.c.dataset == msg["dataset"]) & (a.c.task_id == msg["task_id"]) & (a.c.job_id == msg["job_id"])
    with engine.begin() as conn:
        done = conn.execute(a.update().where(key).values(message=json.dumps(msg), deliveries=a.c.deliveries + 1))
        if done.rowcount:
            return False
        conn.execute(a.insert().values(dataset=msg["dataset"], task_id=msg["task_id"], job_id=msg["job_id"],
                                       message=json.dumps(msg), received_at=md.now(), deliveries=1))
    return True


def pending(engine: sa.Engine, loaded: set[str], limit: int = 500) -> list[dict]:
    """Announcements whose dataset is not handed over yet; those now loaded are marked handed over."""
    a = md.announcements
    with engine.begin() as conn:
        rows = conn.execute(sa.select(a).where(a.c.handed_over_at.is_(None))
                            .order_by(a.c.received_at).limit(limit)).all()
        done = [r for r in rows if r.dataset in loaded]
        for r in done:
            conn.execute(a.update().where((a.c.dataset == r.dataset) & (a.c.task_id == r.task_id)
                                          & (a.c.job_id == r.job_id)).values(handed_over_at=md.now()))
    return [json.loads(r.message) for r in rows if r.dataset not in loaded]
