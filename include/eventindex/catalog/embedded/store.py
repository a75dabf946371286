"""The embedded event store: one sorted Parquet file per dataset version, a memory-mapped key file for lookups,
and a manifest in the metadata DB; queried with DuckDB (scans) and numpy (lookups).

Layout under the catalogue folder::

    data/dataset=<name>/<load_id>.parquet      all index records of the dataset, sorted by (run, event)
    data/dataset=<name>/<load_id>.keys.arrow   uncompressed Arrow IPC: run, event, lumi block and references,
                                               same order; memory-mapped, so a lookup is two binary searches
    GENERATION                                 replaced after every commit; readers stat it to see changes

A load writes both files under new names, then switches the manifest row in one transaction: a crash before the
commit leaves the previous version fully visible (the orphan files are removed by ``gc``), and a reload replaces
the dataset as a whole. Different datasets load concurrently from different processes.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..guid import format_guid
from ..schema import BASE_FIELDS, stage_key, stages_of
from .base import (TRIGGER_COLUMNS, BadLoad, CatalogBase, LoadResult, _event_id, _is_ref_column,  # noqa: F401
                   _trigger_counts, duplicate_table, row_filters)
from .selection import BadSelection, Selection, contained, make_selection

PARQUET_OPTIONS = dict(compression="zstd", compression_level=1, row_group_size=128 * 1024,
                       use_dictionary=["stream", "smk", "l1psk", "hltpsk"],
                       write_statistics=["run_number", "event_number", "lumi_block", "timestamp", "bcid"])
REPLACED_GRACE_S = 300  # how long a replaced version stays on disk for readers still using it


@dataclass
class _Keys:
    """A dataset's lookup columns, memory-mapped; GUIDs are turned into text only when a result needs them."""

    run: np.ndarray
    event: np.ndarray
    lumi_block: np.ndarray
    refs: dict[str, tuple[np.ndarray, pa.Array, np.ndarray]]  # stage -> (guid index, guid dictionary, oid)
    run_starts: dict[int, tuple[int, int]]
    _text: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> "_Keys":
        table = ipc.open_file(pa.memory_map(str(path))).read_all()
        col = lambda name: table.column(name).chunk(0)  # noqa: E731
        run = col("run_number").to_numpy()
        refs = {}
        for stage in stages_of(table.schema):
            g = col(f"{stage}_guid")
            refs[stage] = (g.indices.to_numpy(), g.dictionary, col(f"{stage}_oid").to_numpy())
        cuts = np.flatnonzero(run[1:] != run[:-1]) + 1
        starts = np.concatenate([[0], cuts]).astype(np.int64)
        ends = np.concatenate([cuts, [len(run)]]).astype(np.int64)
        run_starts = {int(run[s]): (int(s), int(e)) for s, e in zip(starts, ends)} if len(run) else {}
        return cls(run, col("event_number").to_numpy(), col("lumi_block").to_numpy(), refs, run_starts)

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


def _retry_on_vanished_files(method):
    """A reader may resolve a dataset version just as a reload retires it: refresh the manifest and retry."""
    import functools

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
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._keys: dict[str, _Keys] = {}
        super().__init__(metadata_url)

    def _generation_key(self):
        try:
            st = os.stat(self._generation_file)
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return ("empty",)

    def _manifest_changed(self, live_load_ids: set[str]) -> None:
        self._keys = {k: v for k, v in self._keys.items() if k in live_load_ids}

    @_retry_on_vanished_files
    def count(self, sel: Selection) -> int:
        return super().count(sel)

    def _scan_count(self, sel: Selection, rows: list[dict], bits) -> int:
        sql, params = self._where(sel, rows, bits)
        return self._duck(f"SELECT count(*) FROM {self._source(rows)} WHERE {sql}", params).fetchone()[0]

    # --- manifest -------------------------------------------------------------------------------------------

    @property
    def _generation_file(self) -> Path:
        return self.root / "GENERATION"

    def _bump_generation(self) -> None:
        tmp = self.root / f".GENERATION.{uuid.uuid4().hex}"
        tmp.write_text(f"{time.time_ns()} {uuid.uuid4().hex}\n")
        os.replace(tmp, self._generation_file)






    def _path(self, row: dict, suffix: str) -> Path:
        return self.root / "data" / f"dataset={row['name']}" / f"{row['load_id']}{suffix}"

    def _keys_of(self, row: dict) -> _Keys:
        keys = self._keys.get(row["load_id"])
        if keys is None:
            keys = self._keys[row["load_id"]] = _Keys.open(self._path(row, ".keys.arrow"))
        return keys

    # --- loading --------------------------------------------------------------------------------------------

    def load(self, dataset: str, records: pa.Table | Iterable[pa.Table] | Iterable[str], *,
             files_meta: dict[str, dict] | None = None) -> LoadResult:
        """Make ``records`` the dataset's content, atomically. ``records``: a table, tables, or Parquet paths."""
        started = time.perf_counter()
        p = self._prepare(dataset, records, files_meta, counts=False)
        load_id = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        folder = self.root / "data" / f"dataset={p.ds.name}"
        folder.mkdir(parents=True, exist_ok=True)
        pq_path, keys_path = folder / f"{load_id}.parquet", folder / f"{load_id}.keys.arrow"
        # The Parquet writer releases the GIL: write it on a second core while the key file and counts are made.
        with ThreadPoolExecutor(max_workers=1) as pool:
            parquet = pool.submit(_write_atomic, pq_path,
                                  lambda path: pq.write_table(p.table, path, **PARQUET_OPTIONS))
            try:
                _write_atomic(keys_path, lambda path: _write_keys(p.table, p.stages, path))
                p.counts = _trigger_counts(p.table, json.loads(p.row["smks"]))
            finally:
                parquet.result()
        replaced = self._commit(p, load_id, str(pq_path.relative_to(self.root)))
        # Replaced versions stay a while for readers that resolved them just before the switch.
        for path in folder.iterdir():
            if not path.name.startswith(load_id) and not _young(path, REPLACED_GRACE_S):
                path.unlink(missing_ok=True)
        n = p.table.num_rows
        return LoadResult(p.ds.name, load_id, n, p.row["unique_events"], n - p.row["unique_events"],
                          len(p.file_rows), replaced, time.perf_counter() - started)

    def warm(self) -> int:
        """Open and page in the key files of every live dataset; returns how many."""
        rows = self.datasets()
        for r in rows:
            self._keys_of(r).warm()
        return len(rows)

    def gc(self, min_age_s: float = 3600) -> list[Path]:
        """Remove files that no manifest row points at (left by a crashed load), once older than ``min_age_s``."""
        self._refresh()
        live = {r["load_id"] for r in self._manifest}
        removed = []
        for path in (self.root / "data").glob("dataset=*/*"):
            load_id = path.name.split(".")[0]
            if load_id not in live and not _young(path, min_age_s):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    # --- choosing datasets ----------------------------------------------------------------------------------



    @_retry_on_vanished_files
    def lookup(self, run: int, event: int, *, project: str | None = None, datatype: str | None = None,
               version: str | None = None) -> list[dict]:
        """Every record of (run, event) with its references per format."""
        run, event = _event_id(run, event)
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
                matches.append(_match(r, keys, i, run, event))
                i += 1
        return matches

    @_retry_on_vanished_files
    def lookup_many(self, pairs, *, project: str | None = None, datatype: str | None = None,
                    version: str | None = None) -> pa.Table:
        """Vectorized lookup of many (run, event) pairs: one row per match, with the request index."""
        pairs = np.asarray(pairs, dtype=np.uint64).reshape(-1, 2)
        runs, events = pairs[:, 0], pairs[:, 1]
        if len(runs) and int(runs.max()) > 2**32 - 1:
            raise BadSelection("run numbers must fit in 32 bits")
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
                out["_refs"].append((r, pos))
        return _lookup_table(out, self)

    # --- counts and selections ------------------------------------------------------------------------------



    def select(self, sel: Selection, columns: list[str] | None = None,
               batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        """The records passing ``sel``, as Arrow record batches (``dataset`` is a column)."""
        rows = self._candidates(sel)
        columns = list(columns or ["dataset", "run_number", "event_number", "lumi_block", "stream"])
        allowed = {f.name for f in BASE_FIELDS} | {"dataset"}
        stages = {s for r in rows for s in r["stages"]}
        allowed |= {f"{s}_{k}" for s in stages for k in ("guid", "oid")}
        bad = [c for c in columns if c not in allowed and not _is_ref_column(c)]
        if bad:
            raise BadSelection(f"unknown column(s) {', '.join(map(repr, bad))}; choose from {', '.join(sorted(allowed))}")
        if not rows:
            return iter(())
        keys_columns = {"dataset", "run_number", "event_number", "lumi_block"} | \
            {f"{s}_{k}" for s in stages for k in ("guid", "oid")}
        if not sel.triggers and not sel.time_range and set(columns) <= keys_columns:
            return self._select_from_keys(sel, rows, columns)
        bits = self._trigger_bits(sel.triggers, rows) if sel.triggers else {}
        sql, params = self._where(sel, rows, bits)
        cols = ", ".join(_quote_col(c, stages) for c in columns)
        con = self._connect()
        reader = con.sql(f"SELECT {cols} FROM {self._source(rows)} WHERE {sql}", params=params) \
            .to_arrow_reader(batch_size)
        return _batches(reader, con)

    @_retry_on_vanished_files
    def _select_from_keys(self, sel: Selection, rows: list[dict], columns: list[str]) -> Iterator[pa.RecordBatch]:
        """Selections on run, lumi block and GUID that want only lookup columns: answered from the key files."""
        for r in rows:
            keys = self._keys_of(r)
            keep = np.ones(len(keys.run), dtype=bool)
            if sel.runs and not contained(r["first_run"], r["last_run"], sel.runs):
                keep &= np.logical_or.reduce([(keys.run >= lo) & (keys.run <= hi) for lo, hi in sel.runs])
            if sel.lumi_blocks:
                keep &= np.logical_or.reduce([(keys.lumi_block >= lo) & (keys.lumi_block <= hi)
                                              for lo, hi in sel.lumi_blocks])
            if sel.guid:
                idx, _, _ = keys.refs[r["datatype"]]
                guids = keys.guids(r["datatype"])
                keep &= idx == (guids.index(sel.guid) if sel.guid in guids else -1)
            pos = np.flatnonzero(keep)
            if not len(pos):
                continue
            out = {}
            for c in columns:
                if c == "dataset":
                    out[c] = pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(pos), np.int32)),
                                                            pa.array([r["name"]]))
                elif c in ("run_number", "event_number", "lumi_block"):
                    out[c] = pa.array({"run_number": keys.run, "event_number": keys.event,
                                       "lumi_block": keys.lumi_block}[c][pos])
                else:
                    stage, _, kind = c.rpartition("_")
                    if stage not in keys.refs and kind == "guid":
                        out[c] = pa.DictionaryArray.from_arrays(pa.nulls(len(pos), pa.int32()), pa.array([], pa.string()))
                    elif stage not in keys.refs:
                        out[c] = pa.nulls(len(pos), pa.uint64())
                    elif kind == "guid":
                        idx = keys.refs[stage][0]
                        out[c] = pa.DictionaryArray.from_arrays(pa.array(idx[pos]),
                                                                pa.array(keys.guids(stage), pa.string()))
                    else:
                        out[c] = pa.array(keys.refs[stage][2][pos])
            yield pa.RecordBatch.from_pydict(out)

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
        bits = self._trigger_bits(tuple(triggers), rows)
        sql, params = self._where(sel, rows, self._trigger_bits(sel.triggers, rows) if sel.triggers else {})
        exprs, eparams = [], []
        for t in triggers:
            e, p = _trigger_expr(bits[t])
            exprs.append(e)
            eparams.append(p)
        sums, sparams = [], []
        for i in range(k):
            for j in range(i, k):
                sums.append(f"count_if(({exprs[i]}) AND ({exprs[j]}))")
                sparams += eparams[i] + eparams[j]
        result = self._duck(f"SELECT {', '.join(sums)} FROM {self._source(rows)} WHERE {sql}", sparams + params) \
            .fetchone()
        it = iter(result)
        for i in range(k):
            for j in range(i, k):
                matrix[i, j] = matrix[j, i] = next(it)
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


    def _source(self, rows: list[dict]) -> str:
        paths = [str(self._path(r, ".parquet")) for r in rows]
        listing = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
        return f"read_parquet([{listing}], hive_partitioning = true, union_by_name = true)"

    def _where(self, sel: Selection, rows: list[dict], bits) -> tuple[str, list]:
        clauses, params = row_filters(sel, rows, bits, lambda name: f'"{name}"', _trigger_expr)
        return " AND ".join(["TRUE", *clauses]), params

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute(f"SET threads TO {min(2, os.cpu_count() or 1)}")
        return con

    def _duck(self, sql: str, params: list):
        return self._connect().execute(sql, params)


# --- helpers ------------------------------------------------------------------------------------------------


def _batches(reader, con) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader
    finally:
        con.close()




def _match(row: dict, keys: _Keys, i: int, run: int, event: int) -> dict:
    refs = {}
    for stage, (idx, _, oid) in keys.refs.items():
        refs[stage] = {"guid": keys.guids(stage)[idx[i]], "oid": int(oid[i])}
    return {"dataset": row["name"], "project": row["project"], "datatype": row["datatype"],
            "version": row["version"], "stream": row["stream"], "run_number": run, "event_number": event,
            "lumi_block": int(keys.lumi_block[i]), "refs": refs}


def _lookup_table(out: dict, catalog: EmbeddedCatalog) -> pa.Table:
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
    stages = sorted({s for r, _ in out["_refs"] for s in catalog._keys_of(r).refs}, key=stage_key)
    for stage in stages:
        guid_parts, oid_parts = [], []
        for r, pos in out["_refs"]:
            keys = catalog._keys_of(r)
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


def _trigger_expr(where: dict[int, tuple[str, int]]) -> tuple[str, list]:
    """SQL for 'this trigger passed' over events of several menus (bit positions differ per SMK)."""
    parts, params = [], []
    for smk, (level, bit) in sorted(where.items()):
        # DuckDB's BIT type numbers bits from the most significant bit of the first byte
        parts.append(f"(smk = ? AND get_bit(CAST({TRIGGER_COLUMNS[level]} AS BIT), ?) = 1)")
        params += [smk, (bit // 8) * 8 + 7 - bit % 8]
    return " OR ".join(parts), params




def _quote_col(name: str, stages: set[str]) -> str:
    if _is_ref_column(name) and name.rpartition("_")[0] not in stages:
        return f'NULL AS "{name}"'
    if name.endswith("_guid"):  # 16 bytes -> the upper-case UUID text POOL writes
        h = f'hex("{name}")'
        parts = "|| '-' ||".join(f"substr({h}, {a}, {n})" for a, n in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)))
        return f'({parts}) AS "{name}"'
    return f'"{name}"'










def _write_keys(table: pa.Table, stages: list[str], path) -> None:
    cols = {"run_number": table.column("run_number"), "event_number": table.column("event_number"),
            "lumi_block": table.column("lumi_block")}
    for s in stages:
        cols[f"{s}_guid"] = pc.dictionary_encode(table.column(f"{s}_guid")).combine_chunks()
        cols[f"{s}_oid"] = table.column(f"{s}_oid")
    keys = pa.table(cols).combine_chunks()
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, keys.schema) as writer:
        writer.write_table(keys, max_chunksize=len(keys) or None)


def _write_atomic(path: Path, write) -> None:
    part = path.with_name(path.name + ".part")
    try:
        write(str(part))
        with open(part, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _young(path: Path, seconds: float = 3600) -> bool:
    """A file a load in progress may still be writing (gc leaves it alone)."""
    try:
        return time.time() - path.stat().st_mtime < seconds
    except FileNotFoundError:
        return False
