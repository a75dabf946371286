"""Producer announcements received over STOMP: checked, recorded in the metadata DB, and only then acked.

At-least-once delivery means duplicates: a message is identified by (dataset, task id, job id), so a redelivered
or repeated announcement updates the same row and starts no second ingestion; a later attempt of a job (a re-run)
supersedes the earlier one. Announcements accumulate per dataset: which runs they start is ``progress.claim_runs``.

Every message is checked against one declared schema (``Announcement``, a strict pydantic model) before anything is
recorded: a message that fails it (not JSON, over 1 MiB, a wrong type, a value out of range, a malformed dataset
name) is poison: moved to the dead-letter queue with its reason, never retried, and never in the way of the good
messages behind it.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import metadata as md
from .errors import PoisonMessage
from .message_schema import Count32, Count64, excerpt, findings, json_kind, load_json
from .naming import parse

TYPE = "eventindex.produced"


def _dataset_name(text: str) -> str:
    return parse(text).name  # MalformedDatasetName is a ValueError: pydantic reports its message, naming the rule


def _guid(text: str) -> str:
    try:
        uuid.UUID(text)  # any spelling Rucio accepts; ingestion compares them normalized (ddm.guid_key)
    except ValueError:
        raise ValueError("not a GUID (a UUID such as 3F2504E0-4F89-11D3-9A0C-0305E82C3301)") from None
    return text


DatasetField = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_dataset_name)]  # String(255)
GuidKey = Annotated[str, Field(max_length=64), AfterValidator(_guid)]
Uri = Annotated[str, Field(max_length=4096)]


class Announcement(BaseModel):
    """The producer's announcement of one job's part (``producer.announcement``), as the catalogue accepts it.

    Identified by (dataset, task_id, job_id), all required: a default would merge different jobs' parts into one
    row. ``task_id`` and ``job_id`` are BIGINT columns, ``attempt`` an INTEGER column. Fields the producer may add
    later pass through untouched (``extra="allow"``), stored with the message.
    """

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    type: Literal["eventindex.produced"]
    version: Annotated[int, Field(ge=1, le=1)] = 1  # a later version may mean something else: not guessed at
    dataset: DatasetField
    task_id: Count64
    job_id: Count64
    attempt: Count32 = 0
    njobs: Count32 | None = None
    staging_uri: Uri | None = None
    summary_uri: Uri | None = None
    nevents: Count64 | None = None
    unique_events: Count64 | None = None
    guids: dict[GuidKey, Count64]
    created: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Announcement":
        keys = {uuid.UUID(g) for g in self.guids}
        if len(keys) < len(self.guids):
            raise ValueError("guids: a GUID appears twice (spelt differently)")
        if self.nevents is not None and sum(self.guids.values()) != self.nevents:
            raise ValueError(f"guids: the per-GUID counts add up to {sum(self.guids.values())}, "
                             f"not nevents {self.nevents}")
        if self.unique_events is not None and self.nevents is not None and self.unique_events > self.nevents:
            raise ValueError(f"unique_events: {self.unique_events} is more than nevents {self.nevents}")
        return self


def parse_announcement(body: str | bytes) -> dict:
    """One message body -> the announcement as a dict (the message as sent, with the dataset's canonical name and
    the attempt filled in); raises ``PoisonMessage`` with one line naming the field for anything else.

    Checked in this order: the size cap (before any JSON parsing), JSON, an object of ``type``
    eventindex.produced, then the ``Announcement`` schema.
    """
    msg = load_json(body, "announcement")
    if not isinstance(msg, dict):
        raise PoisonMessage(f"not an {TYPE} announcement: a JSON {json_kind(msg)}, not an object")
    if msg.get("type") != TYPE:
        raise PoisonMessage(f"not an {TYPE} announcement: type is {excerpt(msg.get('type'))}")
    try:
        valid = Announcement.model_validate(msg)
    except ValidationError as exc:
        raise PoisonMessage(f"announcement{_about(msg)}: {findings(exc)}") from None
    return {**msg, "dataset": valid.dataset, "attempt": valid.attempt}


def _about(msg: dict) -> str:
    """`` of <dataset>`` when the message names one that can be shown on a line (to find the producer)."""
    name = msg.get("dataset")
    return f" of {excerpt(name, 120)}" if isinstance(name, str) and name.isprintable() else ""


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
