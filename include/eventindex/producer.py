"""The EventIndex producer: data files -> per-event index records (one Parquet file per producer job) plus a
per-GUID summary in the staging area, then an announcement (STOMP) when a broker is configured.

Every input file is read and checked before anything is written, so bad input (an unreadable or truncated file,
missing branches, a GUID that does not match the file, a run, channel or trigger stream that does not belong to the
dataset, a malformed dataset name) leaves the staging area untouched and announces nothing. If only the announcement
fails (broker unreachable), the files stay in the staging area and the error says so: running the same job
again overwrites them and announces, since consumers are idempotent.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uproot

from . import __version__, naming, xaod
from .errors import ProducerError
from .guid import guid_in_name
from .rootfile import EVENTS_TREE, INDEX_BRANCHES, MC_BRANCHES, PROV_RE, read_fid, read_stream
from .schema import (HLT_MASKS, L1_MASKS, SCHEMA_VERSION, TRIGGER_KEY, concat_records, identity_columns,
                     record_schema, ref_columns)
from .staging import atomic_output, open_staging, uri_of
from .trigger import masks_to_arrow

# Dictionary pages only where values repeat (stream, menu keys): on the masks they cost time and bytes.
# Min/max statistics only on the columns that queries prune by.
PARQUET_OPTIONS = dict(compression="zstd", compression_level=1, row_group_size=1 << 20,
                       use_dictionary=["stream", "smk", "l1psk", "hltpsk"],
                       write_statistics=["run_number", "event_number", "lumi_block", "timestamp", "bcid"])


@dataclass
class IndexedFile:
    path: str
    guid: str
    table: pa.Table
    unique: int
    first_event: tuple[int, int]
    last_event: tuple[int, int]


@dataclass
class ProducerResult:
    dataset: str
    task_id: int
    job_id: int
    parquet_uri: str
    summary_uri: str
    nevents: int
    unique_events: int
    files: list[dict]
    seconds: float
    announced: bool = False
    summary: dict = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.nevents / self.seconds if self.seconds else float("inf")


def _fail(path: str, why: str) -> ProducerError:
    return ProducerError(f"{path}: {why}; nothing written")


def _unique_and_range(run: np.ndarray, evt: np.ndarray) -> tuple[int, tuple[int, int], tuple[int, int]]:
    if not len(run):
        return 0, (0, 0), (0, 0)
    order = np.lexsort((evt, run))
    r, e = run[order], evt[order]
    dup = (r[1:] == r[:-1]) & (e[1:] == e[:-1])
    return int(len(r) - dup.sum()), (int(r[0]), int(e[0])), (int(r[-1]), int(e[-1]))


def index_file(path: str | Path, dataset: naming.DatasetName) -> IndexedFile:
    """Read one data file's index fields with uproot and turn them into index records (Arrow).

    The file is ours (TTree ``events``, written by the simulator) or a real ATLAS xAOD file (TTree
    ``CollectionTree``, Run 2, or RNTuple ``EventData``, Run 3): see ``eventindex.xaod``.
    """
    path = str(path)
    try:
        handle = uproot.open(path)
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except Exception as exc:  # uproot raises many types for a damaged file
        raise _fail(path, f"not a readable ROOT file ({type(exc).__name__}: {exc})") from None
    with handle:
        try:
            if EVENTS_TREE in handle:
                (arrays, prov), events = _read_events(handle, path, dataset), None
            elif xaod.holds_xaod(handle):
                arrays, prov, events = None, None, xaod.read_xaod(handle, path, dataset.is_mc)
            else:
                raise _fail(path, f"neither our TTree '{EVENTS_TREE}' nor an xAOD TTree '{xaod.XAOD_TREE}' or "
                                  f"RNTuple '{xaod.XAOD_RNTUPLE}' (keys: {', '.join(handle.keys()) or 'none'})")
            fid = read_fid(handle)
            stream = read_stream(handle)
        except ProducerError:
            raise
        except Exception as exc:
            raise _fail(path, f"cannot read the events ({type(exc).__name__}: {exc}); the file may be truncated") \
                from None
    if fid is None:
        raise _fail(path, "no file GUID in the ##Params tree ([NAME=FID])")
    in_name = guid_in_name(os.path.basename(path))
    # real file names carry no GUID: the FID is then checked against Rucio when the index is ingested
    if in_name is not None and in_name != fid:
        raise _fail(path, f"GUID mismatch: the file name says {in_name} but the file holds {fid}")
    # the stream column of every record is the dataset's: a file of another stream would be relabelled silently
    if stream is not None and dataset.stream != stream:
        raise _fail(path, f"is a file of stream {stream}, but dataset {dataset.name} is "
                          f"{'stream ' + dataset.stream if dataset.stream else 'simulation (no stream)'}")
    columns = events.columns if events is not None else arrays
    run, evt = columns["run_number"], columns["event_number"]
    if dataset.is_mc:
        channel = columns["mc_channel_number"]
        bad = channel != dataset.dsid
        if bad.any():
            raise _fail(path, f"holds mc_channel_number {int(channel[bad][0])}, "
                              f"but dataset {dataset.name} is channel {dataset.dsid}")
    elif (run != dataset.run_number).any():
        raise _fail(path, f"holds run {int(run[run != dataset.run_number][0])}, "
                          f"but dataset {dataset.name} is run {dataset.run_number}")
    if events is not None:
        why = xaod.stream_refusal(events, dataset)
        if why:
            raise _fail(path, why)
        table = xaod.to_records(events, fid, dataset)
    else:
        table = _records(arrays, prov, fid, dataset)
    unique, first, last = _unique_and_range(run, evt)
    return IndexedFile(path, fid, table, unique, first, last)


def _read_events(handle, path: str, dataset: naming.DatasetName) -> tuple[dict, list[str]]:
    """Our own layout: the index branches, checked for their types, and the upstream stages they refer to."""
    tree = handle[EVENTS_TREE]
    branches = set(tree.keys())
    wanted = dict(INDEX_BRANCHES, **(MC_BRANCHES if dataset.is_mc else {}))
    missing = sorted(set(wanted) - branches)
    if missing:
        raise _fail(path, f"missing branches {', '.join(missing)}")
    prov = sorted(m.group(1) for b in branches if (m := PROV_RE.match(b)))
    names = list(wanted) + [b for s in prov for b in (f"prov_{s}_guid", f"prov_{s}_oid")]
    arrays = tree.arrays(names, library="np")
    for name, (dtype, shape) in wanted.items():
        a = arrays[name]
        if a.dtype != np.dtype(dtype) or a.shape[1:] != shape:
            raise _fail(path, f"branch {name} has type {a.dtype}{list(a.shape[1:])}, expected {dtype}{list(shape)}")
    if dataset.datatype in prov:
        raise _fail(path, f"refers to its own format {dataset.datatype} as upstream")
    return arrays, prov


def _records(arrays: dict, prov: list[str], fid: str, dataset: naming.DatasetName) -> pa.Table:
    """Index records of one of our own files: every field straight from its branch, trigger masks included."""
    n = len(arrays["event_number"])
    stages = [dataset.datatype, *prov]
    schema = record_schema(stages)
    cols: dict[str, pa.Array] = {
        name: pa.array(arrays[name]) for name in
        ("run_number", "event_number", "lumi_block", "bcid", "timestamp", "timestamp_ns", "smk", "l1psk", "hltpsk")
    }
    for m in (*L1_MASKS, *HLT_MASKS):
        cols[m] = masks_to_arrow(np.ascontiguousarray(arrays[m]).view(np.uint8))
    cols.update(identity_columns(dataset, fid, n, arrays.get("mc_channel_number"), arrays.get("mc_event_weight")))
    for stage in prov:
        g, o = ref_columns(stage)
        cols[g] = masks_to_arrow(arrays[f"prov_{stage}_guid"])
        cols[o] = pa.array(arrays[f"prov_{stage}_oid"].astype(np.uint64, copy=False))
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


def produce(dataset: str, files: list[str | Path], staging: str, task_id: int = 0, job_id: int = 0,
            stomp_target=None, attempt: int = 0, njobs: int | None = None) -> ProducerResult:
    """Index ``files`` of ``dataset`` into ``<staging>/<dataset>/`` and announce them when a broker is given.

    One job's part of a dataset written by a production task of many jobs; ``attempt`` counts re-runs of the job
    (a later attempt replaces the earlier part: same staged file name) and ``njobs`` is the task's number of jobs
    when the production system says it (ingestion then waits for that many parts)."""
    started = time.perf_counter()
    ds = naming.parse(dataset)
    if not files:
        raise ProducerError(f"no input files for {ds.name}; nothing written")
    indexed = [index_file(f, ds) for f in files]
    seen: dict[str, str] = {}
    for f in indexed:
        if f.guid in seen:
            raise _fail(f.path, f"has the same GUID {f.guid} as {seen[f.guid]}")
        seen[f.guid] = f.path
    stage_sets = {tuple(f.table.schema.names) for f in indexed}
    if len(stage_sets) > 1:
        raise ProducerError(f"files of {ds.name} carry different upstream references; nothing written")
    if len({f.table.schema.metadata.get(TRIGGER_KEY.encode()) for f in indexed}) > 1:
        raise ProducerError(f"files of {ds.name} mix files with and without trigger masks (ours and real xAOD); "
                            "nothing written")
    meta = {"eventindex.dataset": ds.name, "eventindex.task_id": str(task_id), "eventindex.job_id": str(job_id),
            "eventindex.producer": __version__}
    table = concat_records([f.table for f in indexed])
    table = table.replace_schema_metadata({**table.schema.metadata,
                                           **{k.encode(): v.encode() for k, v in meta.items()}})
    run = table.column("run_number").to_numpy()
    evt = table.column("event_number").to_numpy()
    unique, _, _ = _unique_and_range(run, evt)

    stem = f"ei.{task_id:08d}.{job_id:06d}"
    fs, base = open_staging(staging)
    parquet_path = f"{base}/{ds.name}/{stem}.parquet"
    with atomic_output(fs, parquet_path) as out:
        checksum = _ChecksumStream(out)
        pq.write_table(table, checksum, **PARQUET_OPTIONS)
    files_summary = [{"guid": f.guid, "lfn": os.path.basename(f.path), "nevents": f.table.num_rows,
                      "unique": f.unique, "first_event": list(f.first_event), "last_event": list(f.last_event)}
                     for f in indexed]
    summary = {
        "dataset": ds.name, "did": ds.did, "datatype": ds.datatype, "task_id": task_id, "job_id": job_id,
        "attempt": attempt, "njobs": njobs,
        "producer": f"eventindex {__version__}", "schema_version": SCHEMA_VERSION, "created": time.time(),
        "stages": [n[:-5] for n in table.schema.names if n.endswith("_guid")],
        "nevents": table.num_rows, "unique_events": unique,
        "parquet": f"{stem}.parquet", "bytes": checksum.size, "adler32": f"{checksum.adler32:08x}",
        "guids": files_summary,
    }
    with atomic_output(fs, f"{base}/{ds.name}/{stem}.summary.json") as out:
        out.write(json.dumps(summary, indent=1).encode())
    result = ProducerResult(
        dataset=ds.name, task_id=task_id, job_id=job_id,
        parquet_uri=uri_of(staging, ds.name, f"{stem}.parquet"),
        summary_uri=uri_of(staging, ds.name, f"{stem}.summary.json"),
        nevents=table.num_rows, unique_events=unique, files=files_summary,
        seconds=time.perf_counter() - started, summary=summary,
    )
    if stomp_target is not None:
        from .messaging import announce

        announce(stomp_target, announcement(result))
        result.announced = True
    return result


def announcement(result: ProducerResult) -> dict:
    """The message the ATLAS producer sends since the move to an object store: where the index is, and counts."""
    return {
        "type": "eventindex.produced", "version": 1, "dataset": result.dataset, "task_id": result.task_id,
        "job_id": result.job_id, "attempt": result.summary["attempt"], "njobs": result.summary["njobs"],
        "staging_uri": result.parquet_uri, "summary_uri": result.summary_uri,
        "nevents": result.nevents, "unique_events": result.unique_events,
        "guids": {f["guid"]: f["nevents"] for f in result.files}, "created": result.summary["created"],
    }


class _ChecksumStream:
    """A write-through wrapper that computes Rucio's adler32 and the size of what passes through."""

    def __init__(self, stream):
        self.stream, self.adler32, self.size = stream, 1, 0

    def write(self, data) -> int:
        data = memoryview(data)
        self.adler32 = zlib.adler32(data, self.adler32)
        self.size += data.nbytes
        return self.stream.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self):
        return self.stream.flush()

    @property
    def closed(self) -> bool:
        return False

    def close(self):
        pass

