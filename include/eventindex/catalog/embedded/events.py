"""Event-level selections over one dataset version of the embedded store, in numpy: which events pass, counted,
gathered into record batches or tallied per trigger pattern.

Cuts are applied from the cheapest column to the dearest: trigger expressions on the dataset's patterns (one
gather per event), then run, lumi block, BCID and GUID from the memory-mapped key file, and last the time range
from the Parquet file, where row-group statistics skip the groups a cut excludes or wholly includes and only the
groups still holding candidates are read. The answer is a boolean mask over the dataset's events (None: all).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import expression
from ..selection import Selection, contained
from .keys import KeyFile
from .patterns import TriggerPatterns

KEY_COLUMNS = ("run_number", "event_number", "lumi_block", "bcid")
THREADS = min(2, os.cpu_count() or 1)  # numpy releases the GIL in gathers and comparisons: datasets side by side

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class ScanStats:
    """What the scans read, for tests and benchmarks: Parquet row groups read and skipped by statistics."""

    row_groups_read: int = 0
    row_groups_skipped: int = 0
    datasets: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, read: int = 0, skipped: int = 0, datasets: int = 0) -> None:
        with self._lock:
            self.row_groups_read += read
            self.row_groups_skipped += skipped
            self.datasets += datasets

    def reset(self) -> None:
        with self._lock:
            self.row_groups_read = self.row_groups_skipped = self.datasets = 0


def prefetched(fn: Callable[[T], R], items: Iterable[T], ahead: int = THREADS) -> Iterator[R]:
    """``fn`` of each item, in order, computed up to ``ahead`` items in advance on worker threads."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        pending = deque(pool.submit(fn, x) for _, x in zip(range(ahead), items))
        while pending:
            done = pending.popleft().result()
            for x in items:
                pending.append(pool.submit(fn, x))
                break
            yield done


@dataclass
class Version:
    """One dataset version's files, opened: manifest row, key file, trigger patterns and Parquet path."""

    row: dict
    keys: KeyFile
    patterns: TriggerPatterns
    parquet: Path
    _file: pq.ParquetFile | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.keys.event)

    @property
    def file(self) -> pq.ParquetFile:
        if self._file is None:
            self._file = pq.ParquetFile(str(self.parquet), memory_map=True)
        return self._file

    def group_starts(self) -> np.ndarray:
        md = self.file.metadata
        return np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])


def in_ranges(values: np.ndarray, ranges) -> np.ndarray:
    out = np.zeros(len(values), bool)
    for lo, hi in ranges:
        out |= (values >= lo) & (values <= hi)
    return out


def pattern_table(trees: list, bits: dict, patterns: TriggerPatterns) -> np.ndarray:
    """Which of the dataset's patterns satisfy every expression (booleans over the patterns)."""
    out = np.ones(patterns.count, bool)
    for tree in trees:
        out &= expression.evaluate(tree, lambda name: patterns.passed(bits[name]),
                                   lambda parts: np.logical_and.reduce(parts), lambda parts: np.logical_or.reduce(parts),
                                   np.logical_not)
    return out


def needs_events(sel: Selection, v: Version) -> bool:
    """Whether a cut other than the triggers needs the events of this dataset."""
    return bool(sel.lumi_blocks or sel.bcids or sel.guid or sel.time_range or
                (sel.runs and not contained(v.row["first_run"], v.row["last_run"], sel.runs)))


def event_mask(sel: Selection, v: Version, bits: dict, stats: ScanStats) -> np.ndarray | None:
    """The events of ``v`` passing ``sel``'s event-level cuts, or None when all do."""
    stats.add(datasets=1)
    keys, mask = v.keys, None

    def cut(m):
        nonlocal mask
        mask = m if mask is None else mask & m

    if sel.triggers:
        table = pattern_table(sel.trigger_trees, bits, v.patterns)
        if not table.any():
            return np.zeros(v.n, bool)
        if not table.all():
            cut(table[keys.pattern])
    if sel.runs and not contained(v.row["first_run"], v.row["last_run"], sel.runs):
        inside = np.zeros(v.n, bool)
        for run, (lo, hi) in keys.run_starts.items():
            inside[lo:hi] = any(a <= run <= b for a, b in sel.runs)
        cut(inside)
    if sel.lumi_blocks:
        cut(in_ranges(keys.lumi_block, sel.lumi_blocks))
    if sel.bcids:
        cut(in_ranges(keys.bcid, sel.bcids))
    if sel.guid:
        idx, _, _ = keys.refs[v.row["datatype"]]
        guids = keys.guids(v.row["datatype"])
        cut(idx == (guids.index(sel.guid) if sel.guid in guids else -1))
    if sel.time_range:
        mask = column_cut(v, "timestamp", [sel.time_range], mask, stats)
    return mask


def column_cut(v: Version, name: str, ranges, mask: np.ndarray | None, stats: ScanStats) -> np.ndarray:
    """``mask`` narrowed to the events whose Parquet column ``name`` lies in ``ranges``, reading only the row groups
    that still hold candidates and that the statistics neither exclude nor wholly include."""
    out = np.ones(v.n, bool) if mask is None else mask.copy()
    md = v.file.metadata
    index = v.file.schema_arrow.get_field_index(name)
    starts = v.group_starts()
    for g in range(md.num_row_groups):
        lo, hi = int(starts[g]), int(starts[g + 1])
        if not out[lo:hi].any():
            continue
        st = md.row_group(g).column(index).statistics
        if st is not None and st.has_min_max:
            if not any(a <= st.max and st.min <= b for a, b in ranges):
                out[lo:hi] = False
                stats.add(skipped=1)
                continue
            if any(a <= st.min and st.max <= b for a, b in ranges):
                stats.add(skipped=1)
                continue
        values = v.file.read_row_group(g, columns=[name]).column(0).to_numpy()
        out[lo:hi] &= in_ranges(values, ranges)
        stats.add(read=1)
    return out


def overlap_counts(sel: Selection, v: Version, trees: list, bits: dict, stats: ScanStats) -> np.ndarray:
    """The k x k matrix of events of ``v`` passing ``sel`` and both of two trigger expressions.

    Each pattern gets a signature (bit i: expression i passes); events are tallied per signature, and the matrix
    comes from the few signatures present, not from the patterns or the events."""
    k = len(trees)
    table = np.stack([pattern_table([t], bits, v.patterns) for t in trees], axis=1)
    counts = v.patterns.nevents
    if sel.triggers or needs_events(sel, v):
        mask = event_mask(sel, v, bits, stats)
        if mask is not None:
            counts = np.bincount(v.keys.pattern[mask], minlength=v.patterns.count)
    if k <= 20:  # the signatures present, with their events (at most 2**k, usually far fewer than the patterns)
        signature = np.zeros(len(table), np.int64)
        for i in range(k):
            signature |= table[:, i].astype(np.int64) << i
        tally = np.bincount(signature, weights=counts, minlength=1 << k)
        present = np.flatnonzero(tally)
        table, counts = ((present[:, None] >> np.arange(k)) & 1).astype(bool), tally[present]
    flags = table.astype(np.float64)
    # exact: float64 holds counts below 2**53
    return np.rint(flags.T @ (flags * np.asarray(counts, np.float64)[:, None])).astype(np.int64)


def count(sel: Selection, v: Version, bits: dict, stats: ScanStats) -> int:
    if not needs_events(sel, v):  # triggers alone: add up the counts of the patterns that pass
        if not sel.triggers:
            return v.n
        return int(v.patterns.nevents[pattern_table(sel.trigger_trees, bits, v.patterns)].sum())
    mask = event_mask(sel, v, bits, stats)
    return v.n if mask is None else int(np.count_nonzero(mask))


def _key_column(v: Version, name: str, pos) -> pa.Array:
    keys = v.keys
    if name == "dataset":
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(pos), np.int32)), pa.array([v.row["name"]]))
    if name in KEY_COLUMNS:
        return pa.array({"run_number": keys.run, "event_number": keys.event, "lumi_block": keys.lumi_block,
                         "bcid": keys.bcid}[name][pos])
    stage, _, kind = name.rpartition("_")
    if stage not in keys.refs:
        return pa.nulls(len(pos), pa.dictionary(pa.int16(), pa.string()) if kind == "guid" else pa.uint64())
    idx, _, oid = keys.refs[stage]
    if kind == "guid":
        return pa.DictionaryArray.from_arrays(pa.array(idx[pos]), pa.array(keys.guids(stage), pa.string()))
    return pa.array(oid[pos].astype(np.uint64))


def is_key_column(name: str) -> bool:
    return name == "dataset" or name in KEY_COLUMNS or name.endswith(("_guid", "_oid"))


def batches(v: Version, mask: np.ndarray | None, columns: list[str], batch_size: int,
            stats: ScanStats) -> Iterator[pa.RecordBatch]:
    """The columns of the events of ``v`` in ``mask``: key columns from the key file, the others from the row
    groups of the Parquet file that hold selected events."""
    pos = np.arange(v.n) if mask is None else np.flatnonzero(mask)
    if not len(pos):
        return
    wanted = [c for c in columns if not is_key_column(c)]
    if not wanted:
        for a in range(0, len(pos), batch_size):
            part = pos[a:a + batch_size]
            yield pa.RecordBatch.from_arrays([_key_column(v, c, part) for c in columns], names=columns)
        return
    starts = v.group_starts()
    group_of = np.searchsorted(starts, pos, side="right") - 1
    for g in np.unique(group_of):
        part = pos[group_of == g]
        group = v.file.read_row_group(int(g), columns=wanted)
        stats.add(read=1)
        local = pa.array(part - starts[g])
        arrays = []
        for c in columns:
            if is_key_column(c):
                arrays.append(_key_column(v, c, part))
            else:
                a = group.column(c).take(local).combine_chunks()
                arrays.append(a.cast(pa.binary()) if pa.types.is_fixed_size_binary(a.type) else a)
        for a in range(0, len(part), batch_size):
            yield pa.RecordBatch.from_arrays([x[a:a + batch_size] for x in arrays], names=columns)
