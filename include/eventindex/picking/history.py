"""The picking requests table of the metadata DB: what `eventindex picks` lists, and the rerun rule (a request
whose output dataset already holds its result changes nothing)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from .. import metadata as md
from ..errors import BadRequest, DIDNotFound
from .extraction import output_did


def previous_result(engine, ddm, output: str, digest: str) -> dict | None:
    """The summary of the finished request that already produced ``output`` from the same request (a rerun changes
    nothing), or None when ``output`` does not exist yet. An output dataset that exists for anything else is refused
    before any work: datasets in Rucio are immutable once closed."""
    scope, name = output_did(output)
    t = md.pick_requests
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).where((t.c.output_dataset == f"{scope}:{name}") & (t.c.state == "done"))
                            .order_by(t.c.created)).all()
    try:
        ddm.get_metadata(scope, name)
    except DIDNotFound:
        return None
    for row in rows:
        if json.loads(row.params).get("digest") == digest:
            return {**json.loads(row.summary), "request_id": row.request_id, "rerun": True}
    owner = f" by the picking request {rows[0].request_id} (other events or parameters)" if rows else ""
    raise BadRequest(f"output dataset {scope}:{name} already exists{owner}; choose another output name")


def record(engine, request_id: str, state: str, params: dict | None = None, requested: int | None = None,
           summary: dict | None = None) -> None:
    """Create or update the request's row in the metadata DB (for `eventindex picks`); what is not given is kept."""
    t = md.pick_requests
    values = {"state": state}
    if params is not None:
        values["params"] = json.dumps(params)
    if requested is not None:
        values["requested"] = requested
    if summary is not None:
        values.update(found=summary.get("found"), missing=summary.get("missing"),
                      output_dataset=summary.get("output_dataset"), summary=json.dumps(summary))
    with engine.begin() as conn:
        if not conn.execute(t.update().where(t.c.request_id == request_id).values(**values)).rowcount:
            values.setdefault("params", "{}")
            values.setdefault("requested", 0)
            conn.execute(t.insert().values(request_id=request_id, created=md.now(), **values))


def requests(engine, limit: int = 50) -> list[dict]:
    t = md.pick_requests
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.created.desc()).limit(limit))]


def listing(engine, limit: int = 50) -> list[dict]:
    """The newest requests as JSON-native rows (what `eventindex picks --json` and the web app show): parameters
    and summary decoded, the summary's error as a column, times in ISO 8601."""
    return [_decoded(r) for r in requests(engine, limit)]


def _decoded(row: dict) -> dict:
    row = dict(row)
    for key in ("params", "summary"):
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass
    summary = row.get("summary")
    row["error"] = summary.get("error") if isinstance(summary, dict) else None
    row["created"] = row["created"].isoformat() if row.get("created") is not None else None
    return row


def request(engine, request_id: str) -> dict | None:
    """One request's row as :func:`listing` gives it, or None."""
    t = md.pick_requests
    with engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.request_id == request_id)).first()
    return None if row is None else _decoded(dict(row._mapping))
