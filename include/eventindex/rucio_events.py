"""Rucio's DID events, as its Hermes daemon publishes them over STOMP (the feed ATLAS AMI subscribes to).

Hermes sends each row of Rucio's ``messages`` table as ``{"event_type": "close", "payload": {...}, "created_at"}``
(the type lower-cased). Two concern the catalogue:

- ``close`` (scope, name, bytes, length, events): the dataset will not change any more, a completeness signal for
  ingestion, kept in the dataset's progress with what Rucio counted;
- ``erase`` (scope, name, account): the dataset is gone from Rucio (its lifetime ran out and the undertaker deleted
  it): the catalogue hides it from queries and picking, keeping it and its history.

Every other event type (new DIDs, rules, transfers, deletions of replicas), and events about DIDs that are not
ATLAS datasets (files, user datasets, ``_sub``/``_dis`` helpers), are not for us: ``parse_rucio_event`` returns
None and the message is simply acked. A body that is not a Hermes message at all, or a CLOSE/ERASE without a usable
scope and name, is poison. Handling is idempotent, as delivery is at least once, and order-insensitive, as Hermes
does not keep the order in which Rucio wrote the messages.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from . import progress
from .errors import DatasetNotFound, MalformedDatasetName, PoisonMessage
from .naming import parse

HANDLED = ("close", "erase")


def parse_rucio_event(body: str) -> dict | None:
    """A Hermes message -> ``{"event_type", "scope", "name", "dataset", ...}``, or None when it is not for us.

    CLOSE adds ``files``, ``events`` and ``bytes`` (None when Rucio has no count), ERASE adds ``account``.
    """
    try:
        msg = json.loads(body)
    except (ValueError, TypeError) as exc:
        raise PoisonMessage(f"not a Rucio event: not JSON ({exc})") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("event_type"), str) or \
            not isinstance(msg.get("payload"), dict):
        raise PoisonMessage("not a Rucio event: expected a JSON object with event_type and a payload object "
                            "(what Rucio's Hermes sends)")
    kind = msg["event_type"].lower()
    if kind not in HANDLED:
        return None
    payload = msg["payload"]
    scope, name = payload.get("scope"), payload.get("name")
    if not isinstance(scope, str) or not isinstance(name, str) or not scope.strip() or not name.strip():
        raise PoisonMessage(f"Rucio {kind.upper()} event without a scope and a name: {_excerpt(payload)}")
    try:
        ds = parse(f"{scope.strip()}:{name.strip()}")
    except MalformedDatasetName:
        return None  # a file, a user or group dataset: Rucio announces every DID it closes or erases
    if ds.is_transient:
        return None
    event = {"event_type": kind, "scope": scope.strip(), "name": name.strip(), "dataset": ds.name,
             "created_at": msg.get("created_at")}
    if kind == "close":
        for key, src in (("files", "length"), ("events", "events"), ("bytes", "bytes")):
            value = payload.get(src)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise PoisonMessage(f"Rucio CLOSE event for {scope}:{name}: {src} {value!r} is not a count")
            event[key] = value
    else:
        event["account"] = payload.get("account")
    return event


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


def _excerpt(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "..."
