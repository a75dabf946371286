"""What operators and analysts ask of the catalogue from the CLI and the web app: the datasets (listed, filtered,
paged), one dataset with its reports and progress, the state of ingestion, ingestion rates, events per run or lumi
block, and overlaps. One function per question, shared by ``eventindex ... --json`` and the REST API so that both
answer the same; every answer is JSON-native (datetimes as ISO-8601 text, plain ints).

Bad parameters raise :class:`~eventindex.errors.BadRequest` naming the parameter, before anything is read.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime

import numpy as np
import sqlalchemy as sa

from . import metadata as md
from . import progress
from .ami import derived
from .ami.lumi import lost_lumi_blocks
from .ami.provenance import history_counts, provenance
from .catalog.base import SOURCES
from .errors import BadRequest

STATES = ("loaded", "obsolete", "erased")  # catalogue statuses of a dataset
ROW_KEYS = ("name", "status", "source", "project", "run_number", "dsid", "stream", "datatype", "version", "nfiles",
            "nevents", "unique_events", "duplicates", "loaded_at", "obsolete_at")
MAX_LIMIT = 1000
IN_FLIGHT_MAX, VALIDATION_MAX = 200, 50
BUCKETS = ("hour", "day")
EVENTS_BY = {"run": ["run_number"], "lumi_block": ["run_number", "lumi_block"]}
DEFAULT_STREAMS = ["physics_Main", "physics_MinBias", "express_express"]


def jsonable(value):
    """``value`` with datetimes as ISO-8601 text and numpy scalars and arrays as Python values, recursively."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _one_of(name: str, value, allowed) -> None:
    if value is not None and value not in allowed:
        raise BadRequest(f"{name} {value!r} is not one of {', '.join(allowed)}")


def _whole(name: str, value, lo: int, hi: int | None = None) -> int:
    text = value.strip() if isinstance(value, str) else None
    if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) or (text and text.lstrip("-").isdigit())):
        raise BadRequest(f"{name} {value!r} is not a whole number")
    n = int(value)
    if n < lo or (hi is not None and n > hi):
        raise BadRequest(f"{name} {n} is out of range: {lo} to {hi}" if hi is not None else
                         f"{name} {n} is out of range: at least {lo}")
    return n


def dataset_row(row: dict) -> dict:
    """The keys of a manifest row that a listing shows, JSON-native."""
    return jsonable({k: row.get(k) for k in ROW_KEYS})


def dataset_list(catalog, *, state: str | None = None, source: str | None = None, project: str | None = None,
                 datatype: str | None = None, offset: int = 0, limit: int = 100) -> dict:
    """The datasets of the catalogue (every status unless ``state``), sorted by name, filtered and paged:
    ``{"total": matches, "offset", "limit", "datasets": [row]}`` with the keys of ``ROW_KEYS``."""
    _one_of("state", state, STATES)
    _one_of("source", source, SOURCES)
    offset, limit = _whole("offset", offset, 0), _whole("limit", limit, 1, MAX_LIMIT)
    rows = [r for r in catalog.datasets(include_obsolete=True)
            if (state is None or r["status"] == state) and (source is None or r.get("source") == source)
            and (project is None or r["project"] == project) and (datatype is None or r["datatype"] == datatype)]
    rows.sort(key=lambda r: r["name"])
    return {"total": len(rows), "offset": offset, "limit": limit,
            "datasets": [dataset_row(r) for r in rows[offset:offset + limit]]}


def dataset_detail(catalog, name: str) -> dict:
    """Everything ``catalog.show`` says of one dataset, with its ``validation_reports``, ``consistency_reports``
    and ``progress`` (its row of ``dataset_progress``, or None), and ``lost_lumi_blocks`` (``{"run": [lumi block,
    ...]}`` in its RAW and not in it, ``{}`` when none; null for what has no RAW to compare with: see
    ``ami.lumi``), its ``provenance`` (parents and children by name) and ``history_counts`` (nfiles and nevents
    per load, see ``ami.provenance``) and ``ami``: AMI's derived quantities (production status and its detail,
    cross-section and filter efficiency, see ``ami.derived``); DatasetNotFound when absent."""
    row = catalog.show(name)
    name = row["name"]
    v, c = md.validation_reports, md.consistency_reports
    with catalog.engine.connect() as conn:
        row["validation_reports"] = [dict(r._mapping) for r in conn.execute(
            sa.select(v.c.file, v.c.problem, v.c.created).where(v.c.dataset == name).order_by(v.c.id))]
        row["consistency_reports"] = [dict(r._mapping) for r in conn.execute(
            sa.select(c.c.run_at, c.c.check_name, c.c.detail, c.c.count).where(c.c.dataset == name)
            .order_by(c.c.id))]
    row["progress"] = _progress_row(progress.get(catalog.engine, name))
    lost = lost_lumi_blocks(catalog, row)
    row["lost_lumi_blocks"] = None if lost is None else {str(run): lbs for run, lbs in lost.items()}
    row["provenance"] = provenance(catalog, row)
    row["history_counts"] = history_counts(row["history"])
    ami = derived.stored(catalog.engine, name)
    if ami is None:  # a catalogue that predates them: computed now, and kept
        derived.refresh(catalog.engine, [name], "request")
        ami = derived.stored(catalog.engine, name)
    row["ami"] = ami
    return jsonable(row)


def _progress_row(row: dict | None) -> dict | None:
    if row is not None and row.get("loaded_parts"):
        row = {**row, "loaded_parts": json.loads(row["loaded_parts"])}
    return row


def operations(catalog) -> dict:
    """The state of ingestion at a glance: datasets and events per state and source (catalogue statuses, and the
    states of datasets on their way in, whose source is not known yet: null), the datasets in flight (newest
    first), the latest validation reports and the findings of the latest consistency run (a run that found
    nothing leaves one row, check_name "all", count 0)."""
    by_state: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in catalog.datasets(include_obsolete=True):
        acc = by_state[(r["status"], r.get("source"))]
        acc[0] += 1
        acc[1] += int(r["nevents"])
    p, v, c = md.dataset_progress, md.validation_reports, md.consistency_reports
    with catalog.engine.connect() as conn:
        for state, n, events in conn.execute(
                sa.select(p.c.state, sa.func.count(), sa.func.coalesce(sa.func.sum(p.c.closed_events), 0))
                .where(p.c.state != progress.LOADED).group_by(p.c.state)):
            by_state[(state, None)] = [int(n), int(events)]
        in_flight = [_progress_row(dict(r._mapping)) for r in conn.execute(
            sa.select(p).where(p.c.state != progress.LOADED).order_by(p.c.updated.desc()).limit(IN_FLIGHT_MAX))]
        validation = [dict(r._mapping) for r in conn.execute(
            sa.select(v.c.dataset, v.c.file, v.c.problem, v.c.created).order_by(v.c.id.desc()).limit(VALIDATION_MAX))]
        latest = conn.execute(sa.select(sa.func.max(c.c.run_at))).scalar()
        consistency = [] if latest is None else [dict(r._mapping) for r in conn.execute(
            sa.select(c.c.run_at, c.c.check_name, c.c.dataset, c.c.detail, c.c.count).where(c.c.run_at == latest)
            .order_by(c.c.id))]
    order = {s: i for i, s in enumerate(STATES)}
    rows = [{"state": s, "source": src, "datasets": n, "events": e} for (s, src), (n, e) in
            sorted(by_state.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][0], kv[0][1] or ""))]
    return jsonable({"by_state": rows, "in_flight": in_flight, "validation": validation, "consistency": consistency})


def ingestion_rates(catalog, bucket: str = "hour") -> list[dict]:
    """Loads (and reloads) per hour or day from the load history: ``[{"t": bucket start, "datasets": loads,
    "events": events loaded}]``, oldest first, buckets without loads left out."""
    _one_of("bucket", bucket, BUCKETS)
    h = md.load_history
    with catalog.engine.connect() as conn:
        loads = conn.execute(sa.select(h.c.at, h.c.nevents).where(h.c.action.in_(("load", "reload")))).all()
    per: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    for at, nevents in loads:
        start = at.replace(minute=0, second=0, microsecond=0)
        if bucket == "day":
            start = start.replace(hour=0)
        per[start][0] += 1
        per[start][1] += int(nevents or 0)
    return [{"t": t.isoformat(), "datasets": n, "events": e} for t, (n, e) in sorted(per.items())]


def events_per(catalog, sel, by: str = "run") -> list[dict]:
    """Records passing ``sel`` per run (``[{"run_number", "events"}]``) or per lumi block (``[{"run_number",
    "lumi_block", "events"}]``), sorted; they add up to ``catalog.count(sel)``. Counted batch by batch, vectorized."""
    _one_of("by", by, tuple(EVENTS_BY))
    columns = EVENTS_BY[by]
    keys, counts = [], []
    for batch in catalog.select(sel, columns=columns):
        if not batch.num_rows:
            continue
        k = np.column_stack([batch.column(i).to_numpy(zero_copy_only=False).astype(np.int64)
                             for i in range(len(columns))])
        u, n = np.unique(k, axis=0, return_counts=True)
        keys.append(u)
        counts.append(n)
    if not keys:
        return []
    u, inverse = np.unique(np.concatenate(keys), axis=0, return_inverse=True)
    n = np.bincount(inverse.reshape(-1), weights=np.concatenate(counts)).astype(np.int64)
    return [dict(zip([*columns, "events"], map(int, (*key, count)))) for key, count in zip(u.tolist(), n.tolist())]


def overlaps(catalog, sel, streams: list[str] | None = None, triggers: list[str] | None = None) -> dict:
    """Events shared between streams or triggers: ``{"labels": [...], "matrix": [[int]]}`` (diagonal: each one's
    own count). With neither: the three streams. Either way on RAW unless ``sel`` names a data type (or a dataset
    or file): an event is counted once, not once per format, and simulated datasets, whose DAODs carry no trigger
    decisions, do not make a trigger comparison of all data an error."""
    if not streams and not triggers:
        streams = DEFAULT_STREAMS
    if sel.datatype is None and sel.dataset is None and sel.guid is None:
        sel = sel.with_(datatype="RAW")
    labels, matrix = catalog.overlaps(sel, streams=streams or None, triggers=triggers or None)
    return {"labels": list(labels), "matrix": np.asarray(matrix, dtype=np.int64).tolist()}
