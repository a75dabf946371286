"""Rucio's DID events, as its Hermes daemon publishes them over STOMP (the feed ATLAS AMI subscribes to).

Hermes sends each row of Rucio's ``messages`` table as ``{"event_type": "close", "payload": {...}, "created_at"}``
(the type lower-cased). Two concern the catalogue:

- ``close`` (scope, name, bytes, length, events): the dataset will not change any more, a completeness signal for
  ingestion, kept in the dataset's progress with what Rucio counted;
- ``erase`` (scope, name, account): the dataset is gone from Rucio (its lifetime ran out and the undertaker deleted
  it): the catalogue hides it from queries and picking, keeping it and its history.

Every other event type (new DIDs, rules, transfers, deletions of replicas), and events about DIDs that are not
ATLAS datasets (files, user datasets, ``_sub``/``_dis`` helpers), are not for us: ``parse_rucio_event`` returns
None and the message is simply acked. A body that is not a Hermes message at all, or a CLOSE/ERASE that fails its
declared schema (no usable scope and name, a count that is not a non-negative integer fitting its column), is
poison: it goes to the dead-letter queue with its reason. Handling is idempotent, as delivery is at least once, and order-insensitive, as Hermes
does not keep the order in which Rucio wrote the messages.
"""

from __future__ import annotations

from typing import Any, Annotated

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from . import progress
from .errors import DatasetNotFound, MalformedDatasetName, PoisonMessage
from .message_schema import Count32, Count64, findings, json_kind, load_json
from .naming import parse

HANDLED = ("close", "erase")

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Stamp = Annotated[str, Field(max_length=64)]


class Envelope(BaseModel):
    """What Hermes sends for every event: its type, a payload object, when Rucio wrote it. Only the envelope is
    checked for the event types we ignore; their payloads are not ours to judge."""

    model_config = ConfigDict(strict=True, extra="allow")
    event_type: Annotated[str, Field(min_length=1, max_length=64)]
    payload: dict[str, Any]


class ClosePayload(BaseModel):
    """CLOSE: the DID and what Rucio counted. ``length`` (files) goes to an INTEGER column, ``events`` to a BIGINT;
    Rucio leaves a count out (or null) when it has none."""

    model_config = ConfigDict(strict=True, extra="allow")
    scope: Text
    name: Text
    length: Count32 | None = None
    events: Count64 | None = None
    bytes: Count64 | None = None


class ErasePayload(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    scope: Text
    name: Text
    account: Annotated[str, Field(max_length=255)] | None = None


class CloseEvent(Envelope):
    payload: ClosePayload
    created_at: Stamp | None = None


class EraseEvent(Envelope):
    payload: ErasePayload
    created_at: Stamp | None = None


def parse_rucio_event(body: str | bytes) -> dict | None:
    """A Hermes message -> ``{"event_type", "scope", "name", "dataset", ...}``, or None when it is not for us.

    CLOSE adds ``files``, ``events`` and ``bytes`` (None when Rucio has no count), ERASE adds ``account``. Anything
    that fails the schema (``Envelope``, then ``CloseEvent`` or ``EraseEvent``) raises ``PoisonMessage`` with one
    line naming the field.
    """
    msg = load_json(body, "not a Rucio event")
    if not isinstance(msg, dict):
        raise PoisonMessage(f"not a Rucio event: a JSON {json_kind(msg)}; expected an object with event_type and "
                            "a payload object (what Rucio's Hermes sends)")
    try:
        envelope = Envelope.model_validate(msg)
    except ValidationError as exc:
        raise PoisonMessage(f"not a Rucio event: {findings(exc)}") from None
    kind = envelope.event_type.lower()
    if kind not in HANDLED:
        return None
    try:
        event = (CloseEvent if kind == "close" else EraseEvent).model_validate(msg)
    except ValidationError as exc:
        raise PoisonMessage(f"Rucio {kind.upper()} event{_about(msg['payload'])}: {findings(exc)}") from None
    p = event.payload
    try:
        ds = parse(f"{p.scope}:{p.name}")
    except MalformedDatasetName:
        return None  # a file, a user or group dataset: Rucio announces every DID it closes or erases
    if ds.is_transient:
        return None
    out = {"event_type": kind, "scope": p.scope, "name": p.name, "dataset": ds.name, "created_at": event.created_at}
    if kind == "close":
        out.update(files=p.length, events=p.events, bytes=p.bytes)
    else:
        out["account"] = p.account
    return out


def _about(payload: dict) -> str:
    """`` for scope:name`` when the payload names a DID that can be shown on a line."""
    scope, name = payload.get("scope"), payload.get("name")
    if isinstance(scope, str) and isinstance(name, str) and f"{scope}{name}".isprintable():
        did = f"{scope.strip()}:{name.strip()}"
        return f" for {did if len(did) <= 120 else did[:117] + '...'}"
    return ""


def handle_rucio_event(engine: sa.Engine, catalog, event: dict | None) -> dict:
    """Record one parsed event; returns what was done (``action``: closed | erased | ignored) and a ``note``.

    CLOSE goes to the dataset's progress (``progress.record_closed``). ERASE marks the dataset erased in the
    catalogue; an ERASE of a dataset the catalogue does not hold (never indexed, or erased before) changes nothing.
    """
    if event is None:
        return {"action": "ignored", "note": "not a CLOSE or ERASE of an ATLAS dataset"}
    dataset, did = event["dataset"], f"{event['scope']}:{event['name']}"
    if event["event_type"] == "close":
        progress.record_closed(engine, dataset, files=event.get("files"), events=event.get("events"))
        return {"action": "closed", "dataset": dataset,
                "note": f"{did} closed in Rucio: {event.get('files')} files, {event.get('events')} events"}
    try:
        changed = catalog.mark_erased(dataset)
    except DatasetNotFound:
        return {"action": "ignored", "dataset": dataset,
                "note": f"{did} erased in Rucio; not in the catalogue, nothing to do"}
    return {"action": "erased", "dataset": dataset,
            "note": f"{did} erased in Rucio: " + ("hidden from queries, kept in the history" if changed
                                                  else "already marked erased")}
