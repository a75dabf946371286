"""Extraction jobs and what follows them: read the requested entries of each input file into one output ROOT file
per job, stored in the output RSE (:mod:`.outputs`), verify that the outputs hold every found event exactly once,
register the output dataset in Rucio."""

from __future__ import annotations

import tempfile
import uuid
from collections import defaultdict
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from ..errors import VerificationFailed
from ..naming import parse
from ..rootfile import EVENTS_TREE, write_events_file
from .outputs import local_copy, pfn_of, store, without_credentials


def extract(files: dict[str, dict], guids: list[str], output_uri: str, job: int, lfn: str | None = None) -> dict:
    """One extraction job: the requested entries of each input file, all branches, into one output ROOT file at
    ``<output_uri>/<lfn>`` (the request's folder in the output RSE). The file is written to this worker's scratch
    space and copied whole, so a job killed half-way leaves nothing that looks like an output. Returns what the
    verification and the registration need: lfn, guid, uri, nevents, bytes."""
    columns, payload_parts, n = defaultdict(list), defaultdict(list), 0
    for guid in guids:
        info = files[guid]
        entries = np.array(info["oids"], dtype=np.int64)
        with local_copy(info["pfn"], "input file") as path, uproot.open(path) as h:
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
    with tempfile.TemporaryDirectory(prefix="eventindex-extract-") as scratch:
        local = Path(scratch) / lfn
        write_events_file(local, out_guid, cols, payload)
        size = local.stat().st_size
        uri = store(local, output_uri, lfn)
    return {"lfn": lfn, "guid": out_guid, "uri": uri, "nevents": n, "bytes": size}


def verify(outputs: list[dict], found: list[dict]) -> dict:
    """Every found event exactly once in the outputs (read through their URIs), and nothing else."""
    got = []
    for o in outputs:
        with local_copy(o["uri"]) as path, uproot.open(path) as h:
            a = h[EVENTS_TREE].arrays(["run_number", "event_number"], library="np")
        got += list(zip(a["run_number"].tolist(), a["event_number"].tolist()))
    want = sorted((f["run"], f["event"]) for f in found)
    dup = len(got) - len(set(got))
    if sorted(got) != want:
        extra = set(got) - set(want)
        lost = set(want) - set(got)
        raise VerificationFailed(f"verification failed: {len(lost)} requested events missing from the output, "
                              f"{len(extra)} unexpected, {dup} duplicated")
    return {"events": len(got), "duplicates": dup}


def summarize(plan: dict, outputs: list[dict], checked: dict, output_dataset: str | None, backend: str,
              output_uri: str | None = None, output_rse: str | None = None) -> dict:
    """The summary of a finished request (task log, XCom, metadata DB); ``plan`` as :meth:`Plan.to_dict`. The
    files are ``<output_uri>/<lfn>`` (the request's folder in the output RSE, shown without credentials)."""
    return {"found": len(plan["found"]), "missing": len(plan["missing"]), "duplicates": checked["duplicates"],
            "output_dataset": output_dataset, "files": [o["lfn"] for o in outputs],
            "output_uri": without_credentials(output_uri) if output_uri else None, "output_rse": output_rse,
            "datasets": plan["datasets"],
            "input_files": len(plan["files"]),
            "backend": backend, "missing_events": plan["missing"][:1000]}


def output_did(output: str) -> tuple[str, str]:
    """(scope, name) of an output dataset: ``user.<name>`` / ``group.<name>`` scopes, else the project."""
    scope = ".".join(output.split(".")[:2]) if output.startswith(("user.", "group.")) else parse(output).project
    return scope, output


def register_output(ddm, output: str, outputs: list[dict], rse: str = "LOCAL_DISK") -> str:
    """Register the output files as a closed dataset in the requester's scope (``user.<name>``), their replicas at
    ``rse`` with the objects' URIs as PFNs (``file://`` paths on a local disk; no credentials)."""
    scope, _ = output_did(output)
    files = [{"scope": scope, "name": o["lfn"], "bytes": o["bytes"], "pfn": pfn_of(o["uri"]),
              "meta": {"guid": o["guid"], "events": o["nevents"]}} for o in outputs]
    if hasattr(ddm, "ensure_rse"):
        ddm.ensure_rse(rse, [scope], pfns=[f["pfn"] for f in files])
    ddm.register_dataset(scope, output, files, rse)
    return f"{scope}:{output}"
