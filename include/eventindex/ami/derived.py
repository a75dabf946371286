"""AMI's derived quantities of each dataset, kept in the metadata DB (``dataset_quantities``) and recomputed whenever
fresh information arrives: a load, obsolete or restore (the catalogue), a Rucio CLOSE message, a task of the
production system updated, a Tier-0 flag changed.

What AMI knows of the upstream systems is mirrored per dataset in ``upstream_datasets`` (``sync_tasks`` reads the
production system's task table incrementally from a stop point, ``sync_tier0`` the Tier-0 flags); each sync
recomputes the datasets whose news changed, and everything derived from them down the production chain.

- **Production status**, from the task's state, Rucio's and the catalogue's, first rule that applies:
  ``obsolete`` (declared so in the catalogue); ``failed`` (the task failed, broke or was aborted); ``running`` (the
  task is not finished); ``incomplete`` (loaded, but Rucio closed it with more or fewer files than the catalogue
  holds); ``complete`` (loaded); ``stuck`` (its ingestion is stuck or failed); ``indexing`` (on its way into the
  catalogue); ``produced`` (finished upstream, not indexed yet); ``unknown``.
- **Cross-section and filter efficiency** of simulation: the values of the event-generation tasks the dataset
  descends from (through the tasks' input datasets, EVNT -> ... -> AOD -> DAOD), as average, min and max.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa

from .. import metadata as md
from .. import upstream

SOURCE = "ami"  # the stop point of the task reads
FAILED_TASKS = {"failed", "broken", "aborted", "exhausted"}
FINISHED_TASKS = {"done", "finished"}
IN_FLIGHT = {"queued", "waiting", "complete", "closed"}


def _stop_point(conn) -> tuple[datetime, int] | None:
    row = conn.execute(sa.select(md.stop_points).where(md.stop_points.c.source == SOURCE)).first()
    return (row.last_update, row.task_id) if row else None


def _upsert(conn, table: sa.Table, key: str, values: dict) -> None:
    if conn.execute(table.update().where(table.c[key] == values[key]).values(**values)).rowcount == 0:
        conn.execute(table.insert().values(**values))


def sync_tasks(engine: sa.Engine, url: str) -> list[dict]:
    """Read the tasks updated since the last read, mirror their outputs, and recompute what they change."""
    with engine.connect() as conn:
        after = _stop_point(conn)
    tasks = upstream.tasks_updated(url, after)
    if not tasks:
        return []
    changed = []
    with engine.begin() as conn:
        for t in tasks:
            for name in t["output_datasets"]:
                _upsert(conn, md.upstream_datasets, "dataset", {
                    "dataset": name, "source": "prodsys", "task_id": t["task_id"], "status": t["status"],
                    "inputs": json.dumps(t["input_datasets"]), "cross_section_pb": t.get("cross_section_pb"),
                    "filter_efficiency": t.get("filter_efficiency"), "last_update": t["last_update"],
                    "synced_at": md.now()})
                changed.append(name)
        last = tasks[-1]
        _upsert(conn, md.stop_points, "source", {"source": SOURCE, "last_update": last["last_update"],
                                                 "task_id": last["task_id"], "updated": md.now()})
    return refresh(engine, descendants(engine, changed), "prodsys")


def sync_tier0(engine: sa.Engine, url: str) -> list[dict]:
    """Mirror the Tier-0 flags that changed, and recompute those datasets."""
    flags = upstream.tier0_flags(url)
    u = md.upstream_datasets.c
    with engine.connect() as conn:
        known = {r.dataset: r.status for r in conn.execute(sa.select(u.dataset, u.status).where(u.source == "tier0"))}
    changed = [name for name, (status, _) in flags.items() if known.get(name) != status]
    if not changed:
        return []
    with engine.begin() as conn:
        for name in changed:
            status, when = flags[name]
            _upsert(conn, md.upstream_datasets, "dataset", {
                "dataset": name, "source": "tier0", "task_id": None, "status": status, "inputs": "[]",
                "cross_section_pb": None, "filter_efficiency": None, "last_update": when, "synced_at": md.now()})
    return refresh(engine, changed, "tier0")


def descendants(engine: sa.Engine, names) -> list[str]:
    """``names`` and every dataset made from them, down the production chain."""
    u = md.upstream_datasets.c
    children: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name, inputs in conn.execute(sa.select(u.dataset, u.inputs)):
            for i in json.loads(inputs):
                children.setdefault(i, []).append(name)
    out, todo = dict.fromkeys(names), list(names)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out[child] = None
                todo.append(child)
    return list(out)


def refresh(engine: sa.Engine, names, reason: str) -> list[dict]:
    """Recompute and store the quantities of ``names`` (those the catalogue, Rucio or the upstream systems know)."""
    names = list(dict.fromkeys(names))
    if not names:
        return []
    with engine.begin() as conn:
        out = []
        for name in names:
            q = _compute(conn, name)
            if q is None:
                continue
            q.update(computed_at=md.now(), reason=reason)
            _upsert(conn, md.dataset_quantities, "dataset", {**q, "detail": json.dumps(q["detail"]),
                                                             "generation_tasks": json.dumps(q["generation_tasks"])})
            out.append(q)
    return out


def stored(engine: sa.Engine, name: str) -> dict | None:
    """The quantities of a dataset as last computed, or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(md.dataset_quantities).where(md.dataset_quantities.c.dataset == name)).first()
    if row is None:
        return None
    q = dict(row._mapping)
    q["detail"], q["generation_tasks"] = json.loads(q["detail"]), json.loads(q["generation_tasks"])
    q["computed_at"] = q["computed_at"].isoformat(timespec="seconds")
    return q


def _one(conn, table: sa.Table, key: str, value: str) -> dict | None:
    row = conn.execute(sa.select(table).where(table.c[key] == value)).first()
    return dict(row._mapping) if row else None


def _compute(conn, name: str) -> dict | None:
    up = _one(conn, md.upstream_datasets, "dataset", name)
    ds = _one(conn, md.datasets, "name", name)
    prog = _one(conn, md.dataset_progress, "dataset", name)
    if up is None and ds is None and prog is None:
        return None
    detail = {
        "task": None if up is None else {"source": up["source"], "task_id": up["task_id"], "status": up["status"]},
        "rucio": None if prog is None or prog["closed_at"] is None else
        {"closed": True, "files": prog["closed_files"], "events": prog["closed_events"]},
        "catalogue": None if ds is None else {"status": ds["status"], "nfiles": ds["nfiles"], "nevents": ds["nevents"]},
        "ingestion": None if prog is None else prog["state"],
    }
    generation = _generation(conn, name)
    q = {"dataset": name, "production_status": _status(up, ds, prog), "detail": detail,
         "generation_tasks": sorted(generation)}
    for key, column in (("cross_section", "cross_section_pb"), ("filter_efficiency", "filter_efficiency")):
        values = [v[column] for v in generation.values() if v[column] is not None]
        q[f"{key}_avg"] = sum(values) / len(values) if values else None
        q[f"{key}_min"] = min(values) if values else None
        q[f"{key}_max"] = max(values) if values else None
    return q


def _status(up: dict | None, ds: dict | None, prog: dict | None) -> str:
    task = up["status"].lower() if up is not None and up["source"] == "prodsys" else None
    if ds is not None and ds["status"] in ("obsolete", "erased"):
        return "obsolete"
    if task in FAILED_TASKS:
        return "failed"
    if task is not None and task not in FINISHED_TASKS:
        return "running"
    if ds is not None:
        closed = prog["closed_files"] if prog and prog["closed_at"] is not None else None
        return "incomplete" if closed is not None and closed != ds["nfiles"] else "complete"
    if prog is not None and prog["state"] in ("stuck", "failed"):
        return "stuck"
    if prog is not None and prog["state"] in IN_FLIGHT:
        return "indexing"
    return "produced" if up is not None else "unknown"


def _generation(conn, name: str) -> dict[int, dict]:
    """The event-generation tasks ``name`` descends from: task id -> its row (cross-section, filter efficiency)."""
    found: dict[int, dict] = {}
    seen, todo = set(), [name]
    while todo:
        d = todo.pop()
        if d in seen:
            continue
        seen.add(d)
        up = _one(conn, md.upstream_datasets, "dataset", d)
        if up is None:
            continue
        if up["cross_section_pb"] is not None or up["filter_efficiency"] is not None:
            found[up["task_id"]] = up
        else:
            todo.extend(json.loads(up["inputs"]))
    return found
