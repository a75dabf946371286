"""Event picking: "give me these events in this format".

request -> sort and de-duplicate -> split per run (in chunks) -> GUID lookup in the catalogue -> dataset and replicas
of each GUID from Rucio -> extraction jobs (one per group of input files) -> verify -> register the output.

The planner is pure (catalogue + data catalogue in, plan out) so that a dry run needs no Airflow and the DAG tasks
are thin. Events the catalogue lacks are reported with the reason and do not fail the request.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import awkward as ak
import numpy as np
import uproot

from .ddm import guid_key
from .errors import BadRequest, BadSelection, DDMError, DIDNotFound, EventIndexError
from .naming import DATATYPE_RE, PROJECT_RE, STREAM_RE, TAG_RE, parse
from .rootfile import EVENTS_TREE, write_events_file

PAIR_RE = re.compile(r"^\s*(\d{1,10})[\s,;:]+(\d{1,20})\s*$")
SKIP_DATASET_RE = re.compile(r"^(panda|user|group)\.|(_sub\d+|_dis\d+|_shadow)$")


@dataclass
class Request:
    events: np.ndarray  # (N, 2) uint64 run, event: sorted, unique
    datatype: str
    project: str | None = None
    stream: str | None = None
    version: str | None = None  # None: the newest loaded
    output: str | None = None
    max_events: int | None = None
    duplicates_in_request: int = 0


def parse_events(text: str) -> tuple[np.ndarray, int]:
    """'run event' pairs, one per line ('#' comments and blank lines allowed) -> sorted unique pairs, duplicates."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0]
        if not line.strip():
            continue
        m = PAIR_RE.match(line)
        if not m:
            raise BadRequest(f"line {number}: {line.strip()[:80]!r} is not a 'run event' pair")
        run, event = int(m.group(1)), int(m.group(2))
        if run > 2**32 - 1 or event > 2**64 - 1:
            raise BadRequest(f"line {number}: run {run} or event {event} out of range")
        pairs.append((run, event))
    if not pairs:
        raise BadRequest("the request holds no events")
    arr = np.array(pairs, dtype=np.uint64)
    uniq = np.unique(arr, axis=0)
    return uniq, len(arr) - len(uniq)


def make_request(events: str, datatype: str, project: str | None = None, stream: str | None = None,
                 version: str | None = None, output: str | None = None, max_events: int | None = None) -> Request:
    """Check everything before any work: the events (text, or a path to a file of them) and every parameter."""
    if events and "\n" not in events and Path(events).is_file():
        events = Path(events).read_text()
    if not DATATYPE_RE.match(datatype or ""):
        raise BadRequest(f"data type {datatype!r} is not a known format (RAW, AOD, DAOD_<NAME>, ...)")
    if project is not None and not PROJECT_RE.match(project):
        raise BadRequest(f"project {project!r} is not a project tag like data18_13TeV")
    if stream is not None and not STREAM_RE.match(stream):
        raise BadRequest(f"stream {stream!r} is not a stream name like physics_Main")
    if version not in (None, "", "latest") and not all(TAG_RE.match(t) for t in version.split("_")):
        raise BadRequest(f"version {version!r} is not an AMI tag chain")
    if output is not None:
        try:
            out = parse(output) if "." in output and output.count(".") >= 4 else None
        except EventIndexError:
            out = None
        if out is None and not re.fullmatch(r"user\.[a-z0-9_-]+\.[A-Za-z0-9_.-]{1,200}", output):
            raise BadRequest(f"output dataset {output!r} must be a user dataset like user.jdoe.picked.AOD")
    if max_events is not None and max_events < 1:
        raise BadRequest("max_events must be positive")
    pairs, dups = parse_events(events or "")
    if max_events is not None and len(pairs) > max_events:
        raise BadRequest(f"the request holds {len(pairs)} events, more than its maximum {max_events}")
    return Request(pairs, datatype, project, stream, version or None, output, max_events, dups)


def run_chunks(pairs: np.ndarray, max_chunks: int = 200) -> list[np.ndarray]:
    """Whole runs grouped into at most ``max_chunks`` chunks of similar size (for task mapping, never per event)."""
    runs, starts = np.unique(pairs[:, 0], return_index=True)
    bounds = list(starts) + [len(pairs)]
    per_run = [pairs[bounds[i]:bounds[i + 1]] for i in range(len(runs))]
    target = max(1, -(-len(pairs) // max_chunks))
    chunks, current, size = [], [], 0
    for block in per_run:
        current.append(block)
        size += len(block)
        if size >= target and len(chunks) < max_chunks - 1:
            chunks.append(np.concatenate(current))
            current, size = [], 0
    if current:
        chunks.append(np.concatenate(current))
    return chunks


@dataclass
class Plan:
    found: list[dict] = field(default_factory=list)  # run, event, guid, oid, dataset
    missing: list[dict] = field(default_factory=list)  # run, event, reason
    files: dict[str, dict] = field(default_factory=dict)  # guid -> {lfn, dataset, pfn, events: [oids]}
    datasets: list[str] = field(default_factory=list)
    jobs: list[list[str]] = field(default_factory=list)  # guids per job

    def summary(self) -> dict:
        return {"found": len(self.found), "missing": len(self.missing), "datasets": self.datasets,
                "files": len(self.files), "jobs": len(self.jobs)}

    def to_dict(self) -> dict:
        return asdict(self)


def lookup(catalog, req: Request, pairs: np.ndarray) -> tuple[list[dict], list[dict]]:
    """Find each pair in the requested format/version; explain the misses."""
    version = req.version or "latest"
    table = catalog.lookup_many(pairs, project=req.project, datatype=req.datatype, version=version)
    rows = table.to_pylist()
    if req.stream:
        streams = {r["name"]: r["stream"] for r in catalog.datasets()}
        rows = [r for r in rows if streams.get(r["dataset"]) == req.stream]
    guid_col, oid_col = f"{req.datatype}_guid", f"{req.datatype}_oid"
    best: dict[int, dict] = {}
    for r in rows:  # one record per request (the first stream in name order when events sit in several)
        if r["request"] not in best or r["dataset"] < best[r["request"]]["dataset"]:
            best[r["request"]] = r
    found = [{"run": int(r["run_number"]), "event": int(r["event_number"]), "guid": r[guid_col],
              "oid": int(r[oid_col]), "dataset": r["dataset"]} for r in best.values()]
    missing = []
    lost = [i for i in range(len(pairs)) if i not in best]
    if lost:
        anywhere = catalog.lookup_many(pairs[lost], project=req.project)
        seen_any = set(anywhere.column("request").to_pylist())
        known_runs = {int(r["first_run"]) for r in catalog.datasets()} | {int(r["last_run"])
                                                                          for r in catalog.datasets()}
        for k, i in enumerate(lost):
            run, event = int(pairs[i, 0]), int(pairs[i, 1])
            if k in seen_any:
                reason = f"not in {req.datatype}" + (f" {req.version}" if req.version else "") + \
                         (f" {req.stream}" if req.stream else "")
            elif run not in known_runs:
                reason = "unknown run"
            else:
                reason = "event not found"
            missing.append({"run": run, "event": event, "reason": reason})
    return found, missing


def resolve(ddm, found: list[dict], files_per_job: int = 10) -> tuple[dict, list[str], list[list[str]]]:
    """GUID -> dataset and a readable replica, from Rucio; helper datasets are skipped, replicas at RSEs that hold
    the whole dataset are preferred.

    The catalogue already says which dataset each GUID was indexed from, so Rucio is asked once per dataset (its file
    list, then one bulk replica query); ``get_dataset_by_guid`` (one call per file) is the fallback for GUIDs that
    Rucio does not list there any more."""
    from .ddm import split_did

    by_guid = defaultdict(list)
    indexed_in: dict[str, str] = {}
    for f in found:
        g = guid_key(f["guid"])
        by_guid[g].append(f["oid"])
        indexed_in.setdefault(g, f.get("dataset"))
    owner: dict[str, dict] = {}
    listed: dict[tuple[str, str], set[str]] = {}
    for guid, name in indexed_in.items():
        if name:
            scope, dsname = split_did(name)
            if (scope, dsname) not in listed:
                try:
                    listed[(scope, dsname)] = {guid_key(f["guid"]) for f in ddm.list_files(scope, dsname)}
                except (DDMError, DIDNotFound):
                    listed[(scope, dsname)] = set()
            if guid in listed[(scope, dsname)]:
                owner[guid] = {"scope": scope, "name": dsname}
                continue
        candidates = [d for d in ddm.get_dataset_by_guid(guid) if not SKIP_DATASET_RE.search(d["name"])]
        if not candidates:
            raise EventIndexError(f"GUID {guid}: no dataset in Rucio holds this file")
        owner[guid] = candidates[0]
    files: dict[str, dict] = {}
    per_dataset = defaultdict(list)
    for guid, ds in owner.items():
        per_dataset[(ds["scope"], ds["name"])].append(guid)
    for (scope, name), guids in per_dataset.items():
        lfn_of = {guid_key(f["guid"]): f["name"] for f in ddm.list_files(scope, name)}
        # complete dataset replicas first (as PanDA's event picker): all inputs of a job then sit at one site
        complete = {r["rse"] for r in ddm.list_dataset_replicas(scope, name)
                    if r.get("length") and r.get("available_length") == r.get("length")}
        replicas = {r["name"]: [p for rse in sorted(r["rses"], key=lambda rse: (rse not in complete, rse))
                                for p in r["rses"][rse]]
                    for r in ddm.list_replicas([{"scope": scope, "name": lfn_of[g]} for g in guids])}
        for guid in guids:
            lfn = lfn_of[guid]
            if not replicas.get(lfn):
                raise EventIndexError(f"{lfn}: no replica")
            files[guid] = {"lfn": lfn, "scope": scope, "dataset": name, "pfn": replicas[lfn][0],
                           "oids": sorted(set(by_guid[guid]))}
    datasets = sorted({f["dataset"] for f in files.values()})
    guids = sorted(files, key=lambda g: (files[g]["dataset"], files[g]["lfn"]))
    jobs = [guids[i:i + files_per_job] for i in range(0, len(guids), files_per_job)]
    return files, datasets, jobs


def plan(catalog, ddm, req: Request, files_per_job: int = 10) -> Plan:
    """The whole plan in one process (dry runs, benchmarks); the DAG runs the same steps mapped over run chunks."""
    found, missing = lookup(catalog, req, req.events)
    files, datasets, jobs = resolve(ddm, found, files_per_job)
    return Plan(found, missing, files, datasets, jobs)


def extract(files: dict[str, dict], guids: list[str], out_dir: str | Path, job: int, lfn: str | None = None) -> dict:
    """One extraction job: the requested entries of each input file, all branches, into one output ROOT file
    (written under a temporary name and renamed, so a job killed half-way leaves no file that looks whole)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns, payload_parts, n = defaultdict(list), defaultdict(list), 0
    for guid in guids:
        info = files[guid]
        path = urlparse(info["pfn"]).path if info["pfn"].startswith("file://") else info["pfn"]
        entries = np.array(info["oids"], dtype=np.int64)
        with uproot.open(path) as h:
            tree = h[EVENTS_TREE]
            arrays = tree.arrays(library="ak", entry_start=int(entries.min()), entry_stop=int(entries.max()) + 1)
        arrays = arrays[entries - entries.min()]
        for name in arrays.fields:
            if "_" in name and name.split("_", 1)[0] in ("jet", "mu"):
                payload_parts[name].append(arrays[name])
            elif name not in ("njet", "nmu"):
                columns[name].append(ak.to_numpy(arrays[name]))
        n += len(entries)
    out_guid = str(uuid.uuid4()).upper()
    cols = {k: np.concatenate(v) for k, v in columns.items()}
    payload = {}
    for prefix in ("jet", "mu"):
        fields = {k.split("_", 1)[1]: ak.concatenate(v) for k, v in payload_parts.items() if k.startswith(prefix + "_")}
        if fields:
            payload[prefix] = ak.zip(fields)
    lfn = lfn or f"picked._{job:06d}.{out_guid}.pool.root"
    partial = out_dir / f".{lfn}.part"
    write_events_file(partial, out_guid, cols, payload)
    partial.replace(out_dir / lfn)
    return {"lfn": lfn, "guid": out_guid, "path": str(out_dir / lfn), "nevents": n}


def verify(outputs: list[dict], found: list[dict]) -> dict:
    """Every found event exactly once in the outputs, and nothing else."""
    got = []
    for o in outputs:
        with uproot.open(o["path"]) as h:
            a = h[EVENTS_TREE].arrays(["run_number", "event_number"], library="np")
        got += list(zip(a["run_number"].tolist(), a["event_number"].tolist()))
    want = sorted((f["run"], f["event"]) for f in found)
    dup = len(got) - len(set(got))
    if sorted(got) != want:
        extra = set(got) - set(want)
        lost = set(want) - set(got)
        raise EventIndexError(f"verification failed: {len(lost)} requested events missing from the output, "
                              f"{len(extra)} unexpected, {dup} duplicated")
    return {"events": len(got), "duplicates": dup}


def summarize(plan: dict, outputs: list[dict], checked: dict, output_dataset: str | None, backend: str) -> dict:
    """The summary of a finished request (task log, XCom, metadata DB); ``plan`` as :meth:`Plan.to_dict`."""
    return {"found": len(plan["found"]), "missing": len(plan["missing"]), "duplicates": checked["duplicates"],
            "output_dataset": output_dataset, "files": [o["lfn"] for o in outputs], "datasets": plan["datasets"],
            "backend": backend, "missing_events": plan["missing"][:1000]}


def output_did(output: str) -> tuple[str, str]:
    """(scope, name) of an output dataset: ``user.<name>`` / ``group.<name>`` scopes, else the project."""
    scope = ".".join(output.split(".")[:2]) if output.startswith(("user.", "group.")) else parse(output).project
    return scope, output


def register_output(ddm, output: str, outputs: list[dict], rse: str = "LOCAL_DISK") -> str:
    """Register the output files as a closed dataset in the requester's scope (``user.<name>``)."""
    scope, _ = output_did(output)
    if hasattr(ddm, "ensure_rse"):
        ddm.ensure_rse(rse, [scope])
    files = [{"scope": scope, "name": o["lfn"], "bytes": Path(o["path"]).stat().st_size,
              "meta": {"guid": o["guid"], "events": o["nevents"]}, "pfn": "file://" + str(Path(o["path"]).resolve())}
             for o in outputs]
    ddm.register_dataset(scope, output, files, rse)
    return f"{scope}:{output}"


def request_digest(req: Request) -> str:
    """What identifies a request's result: its events and the format, project, stream and version asked for."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(req.events, dtype=np.uint64).tobytes())
    h.update(repr((req.datatype, req.project, req.stream, req.version)).encode())
    return h.hexdigest()


def previous_result(engine, ddm, output: str, digest: str) -> dict | None:
    """The summary of the finished request that already produced ``output`` from the same request (a rerun changes
    nothing), or None when ``output`` does not exist yet. An output dataset that exists for anything else is refused
    before any work: datasets in Rucio are immutable once closed."""
    import json

    import sqlalchemy as sa

    from . import metadata as md
    scope, name = output_did(output)
    md.upgrade(engine)
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
    import json

    from . import metadata as md

    md.upgrade(engine)
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


def run_in_process(catalog, ddm, engine, req: Request, output: str, work_dir: str | Path, request_id: str) -> dict:
    """A whole request in this process with the local backend (no Airflow): the steps of eventindex_pick, its rerun
    rule and its record in the metadata DB. Returns the summary; ``rerun`` is set when the output already held it."""
    digest = request_digest(req)
    previous = previous_result(engine, ddm, output, digest)
    if previous is not None:
        return previous
    record(engine, request_id, "planned", {"datatype": req.datatype, "output": output, "digest": digest},
           len(req.events))
    p = plan(catalog, ddm, req)
    outputs = [extract(p.files, job, work_dir, k) for k, job in enumerate(p.jobs)]
    checked = verify(outputs, p.found)
    did = register_output(ddm, output, outputs) if outputs else None
    summary = summarize(p.to_dict(), outputs, checked, did, "local")
    record(engine, request_id, "done", summary=summary)
    return {**summary, "request_id": request_id}


def requests(engine, limit: int = 50) -> list[dict]:
    import sqlalchemy as sa

    from . import metadata as md

    md.upgrade(engine)
    t = md.pick_requests
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.created.desc()).limit(limit))]


__all__ = ["BadRequest", "BadSelection", "Plan", "Request", "extract", "make_request", "plan", "verify"]
