"""Planning a picking request: sort and de-duplicate -> split per run (in chunks) -> GUID lookup in the catalogue ->
dataset and replicas of each GUID from Rucio -> extraction jobs (one per group of input files).

Pure (catalogue + data catalogue in, plan out), so that a dry run needs no Airflow and the DAG's tasks are thin.
Events the catalogue lacks are reported with the reason and do not fail the request.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, fields

import numpy as np

from ..ddm import guid_key, split_did
from ..errors import DDMError, DIDNotFound, NotFound

SKIP_DATASET_RE = re.compile(r"^(panda|user|group)\.|(_sub\d+|_dis\d+|_shadow)$")


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
        """The plan as JSON-ready lists and dicts, shared, not copied (``dataclasses.asdict`` would deep-copy every
        found event: seconds for a 100k-event request)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def lookup(catalog, req, pairs: np.ndarray) -> tuple[list[dict], list[dict]]:
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
        known_runs = {int(r[key]) for r in catalog.datasets() for key in ("first_run", "last_run")}
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
            raise NotFound(f"GUID {guid}: no dataset in Rucio holds this file")
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
                raise NotFound(f"{lfn}: no replica in Rucio")
            files[guid] = {"lfn": lfn, "scope": scope, "dataset": name, "pfn": replicas[lfn][0],
                           "oids": sorted(set(by_guid[guid]))}
    datasets = sorted({f["dataset"] for f in files.values()})
    guids = sorted(files, key=lambda g: (files[g]["dataset"], files[g]["lfn"]))
    jobs = [guids[i:i + files_per_job] for i in range(0, len(guids), files_per_job)]
    return files, datasets, jobs


def plan(catalog, ddm, req, files_per_job: int | None = None) -> Plan:
    """The whole plan in one process (dry runs, benchmarks); the DAG runs the same steps mapped over run chunks."""
    found, missing = lookup(catalog, req, req.events)
    files, datasets, jobs = resolve(ddm, found, files_per_job or req.files_per_job)
    return Plan(found, missing, files, datasets, jobs)
