"""The key file of a dataset version: event, lumi block, BCID, trigger pattern number (``patterns``) and the
references of every stage, sorted by (run, event), in uncompressed Arrow IPC so that it is memory-mapped rather
than read. Runs are stored once each (first and last position, in the schema metadata), entries as 32 bits and
GUIDs as 16-bit dictionary indices where they fit. A lookup is two binary searches in it, and selections on these
columns never open the Parquet file.

Key files written before format 2 (a ``run_number`` column, no BCID or patterns) are still read; the store
rebuilds them, with the trigger index, the first time a selection needs what they lack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from ...guid import format_guid
from ...schema import stage_key, stages_of


_NUMPY_TYPES = {pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
                pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64}


def numpy_view(array: pa.Array) -> np.ndarray:
    """A zero-copy view of an integer Arrow array without nulls, on the memory-mapped key file. pyarrow's own
    ``to_numpy`` imports pandas on first use, which alone costs a one-shot ``eventindex lookup`` a third of its time."""
    dtype = _NUMPY_TYPES.get(array.type)
    if dtype is None or array.null_count:
        return array.to_numpy(zero_copy_only=False)
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype().itemsize)


KEYS_FORMAT = "2"


@dataclass
class KeyFile:
    """A dataset's lookup columns, memory-mapped; GUIDs are turned into text only when a result needs them."""

    event: np.ndarray
    lumi_block: np.ndarray
    refs: dict[str, tuple[np.ndarray, pa.Array, np.ndarray]]  # stage -> (guid index, guid dictionary, oid)
    run_starts: dict[int, tuple[int, int]]
    bcid: np.ndarray | None = None  # None in key files of format 1
    pattern: np.ndarray | None = None  # trigger pattern numbers; None in key files of format 1
    _run: np.ndarray | None = None
    _text: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> "KeyFile":
        table = ipc.open_file(pa.memory_map(str(path))).read_all()
        col = lambda name: numpy_view(table.column(name).chunk(0))  # noqa: E731
        refs = {}
        for stage in stages_of(table.schema):
            g = table.column(f"{stage}_guid").chunk(0)
            refs[stage] = (numpy_view(g.indices), g.dictionary, col(f"{stage}_oid"))
        meta = table.schema.metadata or {}
        if meta.get(b"format") == KEYS_FORMAT.encode():
            run_starts = {int(r): (int(s), int(e)) for r, s, e in json.loads(meta[b"runs"])}
            return cls(col("event_number"), col("lumi_block"), refs, run_starts, col("bcid"), col("trigger_pattern"))
        run = col("run_number")
        return cls(col("event_number"), col("lumi_block"), refs, _run_starts(run), _run=run)

    @property
    def run(self) -> np.ndarray:
        """Each event's run (format 2 stores runs once: the array is made on first use)."""
        if self._run is None:
            run = np.zeros(len(self.event), np.uint32)
            for r, (lo, hi) in self.run_starts.items():
                run[lo:hi] = r
            self._run = run
        return self._run

    @property
    def current(self) -> bool:
        """Whether the file has the format-2 columns (BCID, trigger patterns)."""
        return self.pattern is not None

    def guids(self, stage: str) -> list[str]:
        """The stage's file GUIDs as text, in dictionary order."""
        text = self._text.get(stage)
        if text is None:
            text = self._text[stage] = [format_guid(b) for b in self.refs[stage][1].to_pylist()]
        return text

    def warm(self) -> None:
        """Page the lookup columns in (a service does this once, so the first lookups do not wait on the disk)."""
        for array in (self.run, self.event, self.lumi_block):
            int(array[:: max(1, 4096 // array.itemsize)].sum()) if len(array) else None


def _run_starts(run: np.ndarray) -> dict[int, tuple[int, int]]:
    cuts = np.flatnonzero(run[1:] != run[:-1]) + 1
    starts = np.concatenate([[0], cuts]).astype(np.int64)
    ends = np.concatenate([cuts, [len(run)]]).astype(np.int64)
    return {int(run[s]): (int(s), int(e)) for s, e in zip(starts, ends)} if len(run) else {}


def _narrow(column: pa.ChunkedArray, small: pa.DataType) -> pa.Array:
    """An unsigned integer column in a narrower type when every value fits."""
    column = column.combine_chunks()
    top = pc.max(column).as_py()
    return column.cast(small) if top is not None and top < 2 ** (8 * small.byte_width) else column


def write_keys(table: pa.Table, stages: list[str], path, patterns: np.ndarray) -> None:
    """Write the key file of records sorted by (run, event), with their trigger pattern numbers."""
    runs = _run_starts(table.column("run_number").to_numpy())
    cols = {"event_number": table.column("event_number"), "lumi_block": table.column("lumi_block"),
            "bcid": table.column("bcid").fill_null(0), "trigger_pattern": pa.array(patterns)}
    for s in stages:
        g = pc.dictionary_encode(table.column(f"{s}_guid")).combine_chunks()
        if len(g.dictionary) <= 32767:  # a dataset's events come from few files
            g = pa.DictionaryArray.from_arrays(g.indices.cast(pa.int16()), g.dictionary)
        cols[f"{s}_guid"] = g
        cols[f"{s}_oid"] = _narrow(table.column(f"{s}_oid"), pa.uint32())
    keys = pa.table(cols).combine_chunks()
    keys = keys.replace_schema_metadata({"format": KEYS_FORMAT,
                                         "runs": json.dumps([[r, s, e] for r, (s, e) in runs.items()])})
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, keys.schema) as writer:
        writer.write_table(keys, max_chunksize=len(keys) or None)


def match_record(row: dict, keys: KeyFile, i: int, run: int, event: int) -> dict:
    """One ``lookup`` answer: entry ``i`` of the key file of the dataset whose manifest row is ``row``."""
    refs = {}
    for stage, (idx, _, oid) in keys.refs.items():
        refs[stage] = {"guid": keys.guids(stage)[idx[i]], "oid": int(oid[i])}
    return {"dataset": row["name"], "project": row["project"], "datatype": row["datatype"],
            "version": row["version"], "stream": row["stream"], "run_number": run, "event_number": event,
            "lumi_block": int(keys.lumi_block[i]), "refs": refs}


def lookup_table(out: dict) -> pa.Table:
    """The ``lookup_many`` answer from the matches gathered per dataset: ``out`` holds lists of arrays per column,
    and ``refs`` the (key file, positions) of each part, whose references become ``<STAGE>_guid``/``_oid``."""
    if not out:
        return pa.table({"request": pa.array([], pa.int64()), "dataset": pa.array([], pa.string()),
                         "datatype": pa.array([], pa.string()), "version": pa.array([], pa.string()),
                         "run_number": pa.array([], pa.uint32()), "event_number": pa.array([], pa.uint64()),
                         "lumi_block": pa.array([], pa.uint32())})
    cols = {
        "request": pa.array(np.concatenate(out["request"]).astype(np.int64)),
        "dataset": pa.array(np.concatenate(out["dataset"]), pa.string()),
        "datatype": pa.array(np.concatenate(out["datatype"]), pa.string()),
        "version": pa.array(np.concatenate(out["version"]), pa.string()),
        "run_number": pa.array(np.concatenate(out["run_number"])),
        "event_number": pa.array(np.concatenate(out["event_number"])),
        "lumi_block": pa.array(np.concatenate(out["lumi_block"])),
    }
    n = len(cols["request"])
    stages = sorted({s for keys, _ in out["refs"] for s in keys.refs}, key=stage_key)
    for stage in stages:
        guid_parts, oid_parts = [], []
        for keys, pos in out["refs"]:
            if stage in keys.refs:
                idx, _, oid = keys.refs[stage]
                guid_parts.append(np.asarray(keys.guids(stage), dtype=object)[idx[pos]])
                oid_parts.append(oid[pos].astype(np.uint64))
            else:
                guid_parts.append(np.full(len(pos), None, dtype=object))
                oid_parts.append(np.full(len(pos), None, dtype=object))
        cols[f"{stage}_guid"] = pa.array(np.concatenate(guid_parts), pa.string())
        cols[f"{stage}_oid"] = pa.array(np.concatenate(oid_parts), pa.uint64())
    assert all(len(c) == n for c in cols.values())
    return pa.table(cols)
