"""``EmbeddedCatalog``: the embedded store's loads, lookups, counts, selections and consistency checks over the
files described in the package docstring, with the manifest kept by ``CatalogBase``.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from ... import metadata as md
from ...errors import NoSpace
from ...schema import BASE_FIELDS, stage_key
from ..base import CatalogBase
from ..records import LoadResult, duplicate_table, is_ref_column, trigger_counts
from ..selection import BadSelection, Selection, check_pairs, event_id, make_selection
from . import events, garbage
from .events import ScanStats, Version
from .files import is_no_space, remove_version, write_atomic
from .keys import KeyFile, lookup_table, match_record, write_keys
from .patterns import TriggerPatterns, pattern_numbers, write_patterns

PARQUET_OPTIONS = dict(compression="zstd", compression_level=1, row_group_size=128 * 1024,
                       use_dictionary=["stream", "smk", "l1psk", "hltpsk"],
                       write_statistics=["run_number", "event_number", "lumi_block", "timestamp", "bcid"])
REPLACED_GRACE_S = 300  # how long a replaced version stays on disk for readers still using it


def _retry_on_vanished_files(method):
    """A reader may resolve a dataset version just as a reload retires it: refresh the manifest and retry."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        for attempt in range(3):
            try:
                return method(self, *args, **kwargs)
            except (FileNotFoundError, duckdb.IOException):
                if attempt == 2:
                    raise
                self._generation = None
                self._keys.clear()

    return wrapper


class EmbeddedCatalog(CatalogBase):
    backend = "embedded"

    def __init__(self, root: str | Path, metadata_url: str):
        self.root = Path(root)  # made by the first write, not here: opening the catalogue writes nothing
        self._keys: dict[str, KeyFile] = {}
        self._patterns: dict[str, TriggerPatterns] = {}
        self.scan_stats = ScanStats()
        super().__init__(metadata_url)

    def _generation_key(self):
        try:
            st = os.stat(self._generation_file)
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return ("empty",)

    def _manifest_changed(self, live_load_ids: set[str]) -> None:
        self._keys = {k: v for k, v in self._keys.items() if k in live_load_ids}
        self._patterns = {k: v for k, v in self._patterns.items() if k in live_load_ids}

    @_retry_on_vanished_files
    def count(self, sel: Selection) -> int:
        return super().count(sel)

    def _scan_count(self, sel: Selection, rows: list[dict], bits) -> int:
        return sum(events.prefetched(lambda r: events.count(sel, self._version(r), bits, self.scan_stats), rows))

    # --- manifest -------------------------------------------------------------------------------------------

    @property
    def _generation_file(self) -> Path:
        return self.root / "GENERATION"

    def _bump_generation(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".GENERATION.{uuid.uuid4().hex}"
        tmp.write_text(f"{time.time_ns()} {uuid.uuid4().hex}\n")
        os.replace(tmp, self._generation_file)

    def _path(self, row: dict, suffix: str) -> Path:
        return self.root / "data" / f"dataset={row['name']}" / f"{row['load_id']}{suffix}"

    def _keys_of(self, row: dict) -> KeyFile:
        keys = self._keys.get(row["load_id"])
        if keys is None:
            keys = self._keys[row["load_id"]] = KeyFile.open(self._path(row, ".keys.arrow"))
        return keys

    def _version(self, row: dict) -> Version:
        """The dataset version's key file and trigger index; those of a store written before them are built
        from the Parquet file first (once, atomically, as a load writes them)."""
        keys = self._keys_of(row)
        if not keys.current:
            table = pq.read_table(self._path(row, ".parquet"))
            self._write_index(table, sorted(keys.refs, key=stage_key), row["load_id"], self._path(row, "").parent)
            self._keys.pop(row["load_id"], None)
            self._patterns.pop(row["load_id"], None)
            keys = self._keys_of(row)
        patterns = self._patterns.get(row["load_id"])
        if patterns is None:
            patterns = self._patterns[row["load_id"]] = TriggerPatterns(self._path(row, ".triggers.arrow"))
        return Version(row, keys, patterns, self._path(row, ".parquet"))

    @staticmethod
    def _write_index(table: pa.Table, stages: list[str], load_id: str, folder: Path) -> None:
        """The key file and the trigger index of records sorted by (run, event)."""
        codes, index = pattern_numbers(table)
        write_atomic(folder / f"{load_id}.triggers.arrow", lambda path: write_patterns(index, path))
        write_atomic(folder / f"{load_id}.keys.arrow", lambda path: write_keys(table, stages, path, codes))

    # --- loading --------------------------------------------------------------------------------------------

    def load(self, dataset: str, records: pa.Table | Iterable[pa.Table] | Iterable[str], *,
             files_meta: dict[str, dict] | None = None, source: str | None = None) -> LoadResult:
        """Make ``records`` the dataset's content, atomically. ``records``: a table, tables, or Parquet paths."""
        started = time.perf_counter()
        p = self._prepare(dataset, records, files_meta, counts=False, source=source)
        load_id = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        folder = self.root / "data" / f"dataset={p.ds.name}"
        folder.mkdir(parents=True, exist_ok=True)
        pq_path = folder / f"{load_id}.parquet"
        try:
            # The Parquet writer releases the GIL: write it on a second core while the key file and counts are made.
            with ThreadPoolExecutor(max_workers=1) as pool:
                parquet = pool.submit(write_atomic, pq_path,
                                      lambda path: pq.write_table(p.table, path, **PARQUET_OPTIONS))
                try:
                    self._write_index(p.table, p.stages, load_id, folder)
                    p.counts = trigger_counts(p.table, json.loads(p.row["smks"]))
                finally:
                    parquet.result()
            replaced = self._commit(p, load_id, str(pq_path.relative_to(self.root)))
        except BaseException as exc:
            self._abandon(p.ds.name, folder, load_id, exc)
            raise
        # Replaced versions stay a while (from their replacement) for readers that resolved them just before it.
        garbage.tidy(self.root, self.engine, folder, REPLACED_GRACE_S)
        n = p.table.num_rows
        return LoadResult(p.ds.name, load_id, n, p.row["unique_events"], n - p.row["unique_events"],
                          len(p.file_rows), replaced, time.perf_counter() - started)

    def _abandon(self, dataset: str, folder: Path, load_id: str, exc: BaseException) -> None:
        """A load failed: its files go unless the manifest already names them (the switch committed, and what
        failed came after it); a full disk becomes one line naming the dataset (``NoSpace``)."""
        try:
            with self.engine.connect() as conn:
                live = conn.execute(sa.select(md.datasets.c.load_id).where(md.datasets.c.name == dataset)).scalar()
        except Exception:  # the metadata DB cannot say: keep the files (gc removes them once it is sure)
            live = ...
        if live not in (load_id, ...):
            remove_version(folder, load_id)
        if is_no_space(exc):
            state = "the load is in the catalogue, what follows a load failed" if live == load_id else \
                "nothing changed (the previous version, if any, stays visible)"
            raise NoSpace(f"{dataset}: no space left on the disk of {self.root} (or of the metadata DB) while loading; "
                          f"{state}; free space and load again") from None

    def warm(self) -> int:
        """Open and page in the key files of every live dataset; returns how many."""
        rows = self.datasets()
        for r in rows:
            self._keys_of(r).warm()
        return len(rows)

    def gc(self, min_age_s: float = 3600, *, dry_run: bool = False) -> garbage.GcResult:
        """Remove the files no reader can need any more: those of crashed loads (partial or never committed) and
        replaced versions, ``min_age_s`` after they were written or replaced; never a live version nor a file a
        process holds open (``garbage`` says how each is told apart). ``dry_run``: only say what would go."""
        return garbage.collect(self.root, self.engine, min_age_s, dry_run=dry_run)

    # --- lookups --------------------------------------------------------------------------------------------

    @_retry_on_vanished_files
    def lookup(self, run: int, event: int, *, project: str | None = None, datatype: str | None = None,
               version: str | None = None) -> list[dict]:
        """Every record of (run, event) with its references per format."""
        run, event = event_id(run, event)
        sel = make_selection(project=project, datatype=datatype, version=version, runs=[(run, run)])
        self._refresh()
        rows = self._by_run.get(run, []) + self._wide
        if project or datatype or version:
            rows = self._candidates(sel, rows)
        matches = []
        for r in rows:
            keys = self._keys_of(r)
            span = keys.run_starts.get(run)
            if span is None:
                continue
            lo, hi = span
            i = lo + int(np.searchsorted(keys.event[lo:hi], np.uint64(event), "left"))  # a Python int would copy
            while i < hi and keys.event[i] == event:
                matches.append(match_record(r, keys, i, run, event))
                i += 1
        return matches

    @_retry_on_vanished_files
    def lookup_many(self, pairs, *, project: str | None = None, datatype: str | None = None,
                    version: str | None = None) -> pa.Table:
        """Vectorized lookup of many (run, event) pairs: one row per match, with the request index."""
        pairs = check_pairs(pairs)
        runs, events = pairs[:, 0], pairs[:, 1]
        sel = make_selection(project=project, datatype=datatype, version=version)
        rows = self._candidates(sel)
        order = np.argsort(runs, kind="stable")
        sorted_runs = runs[order]
        out = defaultdict(list)
        for r in rows:
            keys = self._keys_of(r)
            for run, (lo, hi) in keys.run_starts.items():
                a = int(np.searchsorted(sorted_runs, run, side="left"))
                b = int(np.searchsorted(sorted_runs, run, side="right"))
                if a == b:
                    continue
                req = order[a:b]
                ev = keys.event[lo:hi]
                first = np.searchsorted(ev, events[req], "left")
                copies = np.searchsorted(ev, events[req], "right") - first  # > 1 for duplicated events
                total = int(copies.sum())
                if not total:
                    continue
                starts = np.cumsum(copies) - copies
                pos = np.repeat(first, copies) + (np.arange(total) - np.repeat(starts, copies)) + lo
                out["request"].append(np.repeat(req, copies))
                out["dataset"].append(np.full(total, r["name"], dtype=object))
                out["datatype"].append(np.full(total, r["datatype"], dtype=object))
                out["version"].append(np.full(total, r["version"], dtype=object))
                out["run_number"].append(keys.run[pos])
                out["event_number"].append(keys.event[pos])
                out["lumi_block"].append(keys.lumi_block[pos])
                out["refs"].append((keys, pos))
        return lookup_table(out)

    # --- counts and selections ------------------------------------------------------------------------------

    def select(self, sel: Selection, columns: list[str] | None = None,
               batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        """The records passing ``sel``, as Arrow record batches (``dataset`` is a column), dataset by dataset in
        (run, event) order."""
        rows = self._candidates(sel)
        columns = list(columns or ["dataset", "run_number", "event_number", "lumi_block", "stream"])
        allowed = {f.name for f in BASE_FIELDS} | {"dataset"}
        stages = {s for r in rows for s in r["stages"]}
        allowed |= {f"{s}_{k}" for s in stages for k in ("guid", "oid")}
        bad = [c for c in columns if c not in allowed and not is_ref_column(c)]
        if bad:
            raise BadSelection(f"unknown column(s) {', '.join(map(repr, bad))}; choose from {', '.join(sorted(allowed))}")
        bits = self._trigger_bits(sel.trigger_names, rows) if sel.triggers and rows else {}
        return self._select(sel, rows, columns, bits, batch_size)

    def _select(self, sel, rows, columns, bits, batch_size) -> Iterator[pa.RecordBatch]:
        def cut(r):
            v = self._version(r)
            return v, events.event_mask(sel, v, bits, self.scan_stats)

        for v, mask in events.prefetched(cut, rows):
            yield from events.batches(v, mask, columns, batch_size, self.scan_stats)

    def overlaps(self, sel: Selection, *, streams: list[str] | None = None,
                 triggers: list[str] | None = None) -> tuple[list[str], np.ndarray]:
        """Events shared between streams (same run and event) or between triggers (within the selection)."""
        if bool(streams) == bool(triggers):
            raise BadSelection("give either streams or triggers to compare")
        if streams:
            for s in streams:
                make_selection(stream=s)
            per_stream = []
            for s in streams:
                keys = [self._keys_of(r) for r in self._candidates(sel.with_(stream=s))]
                if keys:
                    run = np.concatenate([k.run for k in keys]).astype(np.uint64)
                    evt = np.concatenate([k.event for k in keys])
                    per_stream.append(pa.table({"run": run, "event": evt, "s": pa.array([s] * len(run))}))
            matrix = np.zeros((len(streams), len(streams)), dtype=np.int64)
            if per_stream:
                con = duckdb.connect()
                con.register("k", pa.concat_tables(per_stream))
                q = ("WITH u AS (SELECT DISTINCT s, run, event FROM k) SELECT a.s, b.s, count(*) FROM u a "
                     "JOIN u b ON a.run = b.run AND a.event = b.event GROUP BY 1, 2")
                index = {s: i for i, s in enumerate(streams)}
                for a, b, n in con.execute(q).fetchall():
                    matrix[index[a], index[b]] = n
            return list(streams), matrix
        triggers = list(dict.fromkeys(triggers))
        make_selection(triggers=triggers)
        rows = self._candidates(sel)
        k = len(triggers)
        matrix = np.zeros((k, k), dtype=np.int64)
        if not rows:
            return triggers, matrix
        bits = self._trigger_bits(tuple(dict.fromkeys((*triggers, *sel.trigger_names))), rows)
        trees = [("name", t) for t in triggers]
        for part in events.prefetched(lambda r: events.overlap_counts(sel, self._version(r), trees, bits,
                                                                      self.scan_stats), rows):
            matrix += part
        return triggers, matrix

    # --- consistency ----------------------------------------------------------------------------------------

    @_retry_on_vanished_files
    def duplicates(self, dataset: str) -> pa.Table:
        """(run, event, copies) of every event recorded more than once in the dataset."""
        keys = self._keys_of(self._row(dataset))
        return duplicate_table(keys.run, keys.event)

    @_retry_on_vanished_files
    def missing(self, dataset: str, reference: str) -> pa.Table:
        """Events of ``dataset`` that ``reference`` lacks (e.g. RAW events that reconstruction did not write)."""
        a, b = self._keys_of(self._row(dataset)), self._keys_of(self._row(reference))
        runs, events = [], []
        for run, (lo, hi) in a.run_starts.items():
            ea = np.unique(a.event[lo:hi])
            span = b.run_starts.get(run)
            eb = b.event[span[0]:span[1]] if span else np.empty(0, np.uint64)
            lost = ea[~np.isin(ea, eb, assume_unique=False)]
            runs.append(np.full(len(lost), run, np.uint32))
            events.append(lost)
        return pa.table({"run_number": np.concatenate(runs) if runs else np.empty(0, np.uint32),
                         "event_number": np.concatenate(events) if events else np.empty(0, np.uint64)})
