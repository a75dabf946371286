"""Extraction jobs and what follows them: read the requested entries of each input file into one output ROOT file
per job, verify that the outputs hold every found event exactly once, register the output dataset in Rucio."""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

import awkward as ak
import numpy as np
import uproot

from ..errors import VerificationFailed
from ..naming import parse
from ..rootfile import EVENTS_TREE, write_events_file


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
        raise VerificationFailed(f"verification failed: {len(lost)} requested events missing from the output, "
                              f"{len(extra)} unexpected, {dup} duplicated")
    return {"events": len(got), "duplicates": dup}


def summarize(plan: dict, outputs: list[dict], checked: dict, output_dataset: str | None, backend: str) -> dict:
    """The summary of a finished request (task log, XCom, metadata DB); ``plan`` as :meth:`Plan.to_dict`."""
    return {"found": len(plan["found"]), "missing": len(plan["missing"]), "duplicates": checked["duplicates"],
            "output_dataset": output_dataset, "files": [o["lfn"] for o in outputs], "datasets": plan["datasets"],
            "input_files": len(plan["files"]),
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
