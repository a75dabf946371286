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
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import sqlalchemy as sa

from .. import metadata as md
from ..errors import EventIndexError, UnknownTrigger
from ..guid import format_guid, guid_bytes
from ..naming import DatasetName, parse
from ..schema import BASE_FIELDS, STAGE_RE, stage_key, stages_of
from ..trigger import TriggerMenu, masks_from_arrow
from .selection import BadSelection, Selection, contained, in_ranges, make_selection, overlaps_ranges

PARQUET_OPTIONS = dict(compression="zstd", compression_level=1, row_group_size=128 * 1024,
                       use_dictionary=["stream", "smk", "l1psk", "hltpsk"],
                       write_statistics=["run_number", "event_number", "lumi_block", "timestamp", "bcid"])
TRIGGER_COLUMNS = {"L1": "l1_tav", "HLT": "hlt_passed"}
_DATASETS_OF_GUID = sa.text("SELECT dataset_id FROM files WHERE guid = :guid")
REPLACED_GRACE_S = 300  # how long a replaced version stays on disk for readers still using it


class BadLoad(EventIndexError, ValueError):
    """Records that cannot be loaded as the dataset named; nothing was changed."""


@dataclass
class LoadResult:
    dataset: str
    load_id: str
    nevents: int
    unique_events: int
    duplicates: int
    nfiles: int
    replaced: str | None
    seconds: float


@dataclass
class _Keys:
    """A dataset's lookup columns, memory-mapped."""

    run: np.ndarray
    event: np.ndarray
    lumi_block: np.ndarray
    refs: dict[str, tuple[np.ndarray, list[str], np.ndarray]]  # stage -> (guid index, guid strings, oid)
    run_starts: dict[int, tuple[int, int]]

    @classmethod
    def open(cls, path: Path) -> "_Keys":
        table = ipc.open_file(pa.memory_map(str(path))).read_all()
        col = lambda name: table.column(name).chunk(0)  # noqa: E731
        run = col("run_number").to_numpy()
        refs = {}
        for stage in stages_of(table.schema):
            g = col(f"{stage}_guid")
            refs[stage] = (g.indices.to_numpy(), [format_guid(b) for b in g.dictionary.to_pylist()],
                           col(f"{stage}_oid").to_numpy())
        cuts = np.flatnonzero(np.diff(run)) + 1
        starts = np.concatenate([[0], cuts]).astype(np.int64)
        ends = np.concatenate([cuts, [len(run)]]).astype(np.int64)
        run_starts = {int(run[s]): (int(s), int(e)) for s, e in zip(starts, ends)} if len(run) else {}
        return cls(run, col("event_number").to_numpy(), col("lumi_block").to_numpy(), refs, run_starts)


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


class EmbeddedCatalog:
    backend = "embedded"

    def __init__(self, root: str | Path, metadata_url: str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.engine = md.make_engine(metadata_url)
        md.upgrade(self.engine)
        self._lock = threading.Lock()
        self._generation = None
        self._manifest: list[dict] = []
        self._by_run: dict[int, list[dict]] = {}
        self._wide: list[dict] = []
        self._keys: dict[str, _Keys] = {}
        self._menus: dict[int, TriggerMenu] | None = None

    # --- manifest -------------------------------------------------------------------------------------------

    @property
    def _generation_file(self) -> Path:
        return self.root / "GENERATION"

    def _bump_generation(self) -> None:
        tmp = self.root / f".GENERATION.{uuid.uuid4().hex}"
        tmp.write_text(f"{time.time_ns()} {uuid.uuid4().hex}\n")
        os.replace(tmp, self._generation_file)

    def _refresh(self) -> None:
        try:
            st = os.stat(self._generation_file)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        if key == self._generation and self._generation is not None:
            return
        with self._lock:
            with self.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(sa.select(md.datasets).order_by(md.datasets.c.id))]
            for r in rows:
                r["stages"] = json.loads(r["stages"])
                r["smks"] = json.loads(r["smks"])
            live = {r["load_id"] for r in rows}
            self._keys = {k: v for k, v in self._keys.items() if k in live}
            self._manifest = rows
            by_run, wide = defaultdict(list), []
            for r in rows:
                if r["status"] != "loaded":
                    continue
                if r["last_run"] - r["first_run"] < 64:
                    for run in range(r["first_run"], r["last_run"] + 1):
                        by_run[run].append(r)
                else:
                    wide.append(r)
            self._by_run, self._wide = dict(by_run), wide
            self._menus = None
            self._generation = key if key is not None else ("empty",)

    def menus(self) -> dict[int, TriggerMenu]:
        self._refresh()
        if self._menus is None:
            with self.engine.connect() as conn:
                self._menus = md.load_menus(conn)
        return self._menus

    def save_menus(self, menus: Iterable[TriggerMenu]) -> None:
        with self.engine.begin() as conn:
            md.save_menus(conn, list(menus))
        self._bump_generation()

    def datasets(self, include_obsolete: bool = False) -> list[dict]:
        self._refresh()
        return [dict(r) for r in self._manifest if include_obsolete or r["status"] == "loaded"]

    def show(self, name: str) -> dict:
        name = parse(name).name
        self._refresh()
        row = next((dict(r) for r in self._manifest if r["name"] == name), None)
        if row is None:
            raise BadSelection(f"dataset {name} is not in the catalogue")
        with self.engine.connect() as conn:
            row["files"] = [dict(r._mapping) for r in conn.execute(
                sa.select(md.files.c.guid, md.files.c.lfn, md.files.c.nevents)
                .where(md.files.c.dataset_id == row["id"]).order_by(md.files.c.guid))]
            row["history"] = [dict(r._mapping) for r in conn.execute(
                sa.select(md.load_history).where(md.load_history.c.dataset == name).order_by(md.load_history.c.id))]
        return row

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
        try:
            ds = parse(dataset)
        except EventIndexError as exc:
            raise BadLoad(str(exc)) from None
        table = _as_table(records)
        _check_records(ds, table)
        order = pc.sort_indices(table, [("run_number", "ascending"), ("event_number", "ascending")])
        table = table.take(order)
        run = table.column("run_number").to_numpy()
        evt = table.column("event_number").to_numpy()
        same = (run[1:] == run[:-1]) & (evt[1:] == evt[:-1])
        unique = int(len(run) - same.sum())
        stages = sorted(stages_of(table.schema), key=stage_key)
        own_guid = table.column(f"{ds.datatype}_guid")
        guid_counts = pc.value_counts(own_guid)
        file_rows = [{"guid": format_guid(g), "nevents": int(n)} for g, n in
                     zip(guid_counts.field("values").to_pylist(), guid_counts.field("counts").to_pylist())]
        if files_meta:
            for f in file_rows:
                f["lfn"] = files_meta.get(f["guid"], {}).get("lfn")
        smks = sorted(int(s) for s in pc.unique(table.column("smk")).to_pylist())
        counts = _trigger_counts(table, smks)
        ts = table.column("timestamp")
        load_id = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        folder = self.root / "data" / f"dataset={ds.name}"
        folder.mkdir(parents=True, exist_ok=True)
        pq_path, keys_path = folder / f"{load_id}.parquet", folder / f"{load_id}.keys.arrow"
        _write_atomic(pq_path, lambda p: pq.write_table(table, p, **PARQUET_OPTIONS))
        _write_atomic(keys_path, lambda p: _write_keys(table, stages, p))
        row = {
            "name": ds.name, "project": ds.project, "run_number": ds.run_number, "dsid": ds.dsid,
            "stream": ds.stream, "prodstep": ds.prodstep, "datatype": ds.datatype, "version": ds.amitag or "",
            "status": "loaded", "nfiles": len(file_rows), "nevents": table.num_rows, "unique_events": unique,
            "duplicates": table.num_rows - unique,
            "first_run": int(run[0]) if len(run) else 0, "last_run": int(run[-1]) if len(run) else 0,
            "first_time": int(pc.min(ts).as_py() or 0), "last_time": int(pc.max(ts).as_py() or 0),
            "stages": json.dumps(stages), "smks": json.dumps(smks), "storage": str(pq_path.relative_to(self.root)),
            "load_id": load_id, "loaded_at": md.now(), "obsolete_at": None,
        }
        replaced = None
        with self.engine.begin() as conn:
            old = conn.execute(sa.select(md.datasets.c.id, md.datasets.c.load_id)
                               .where(md.datasets.c.name == ds.name).with_for_update()).first()
            if old is None:
                dataset_id = conn.execute(md.datasets.insert().values(**row)).inserted_primary_key[0]
            else:
                dataset_id, replaced = old.id, old.load_id
                conn.execute(md.datasets.update().where(md.datasets.c.id == dataset_id).values(**row))
                conn.execute(md.files.delete().where(md.files.c.dataset_id == dataset_id))
                conn.execute(md.trigger_counts.delete().where(md.trigger_counts.c.dataset_id == dataset_id))
            if file_rows:
                conn.execute(md.files.insert(), [{"dataset_id": dataset_id, "lfn": None, **f} for f in file_rows])
            if counts:
                conn.execute(md.trigger_counts.insert(), [{"dataset_id": dataset_id, **c} for c in counts])
            conn.execute(md.load_history.insert().values(
                dataset=ds.name, action="reload" if replaced else "load", load_id=load_id,
                replaced_load_id=replaced, nevents=table.num_rows, at=md.now()))
        self._bump_generation()
        # Replaced versions stay a while for readers that resolved them just before the switch.
        for path in folder.iterdir():
            if not path.name.startswith(load_id) and not _young(path, REPLACED_GRACE_S):
                path.unlink(missing_ok=True)
        return LoadResult(ds.name, load_id, table.num_rows, unique, table.num_rows - unique, len(file_rows),
                          replaced, time.perf_counter() - started)

    def mark_obsolete(self, dataset: str) -> None:
        name = parse(dataset).name
        with self.engine.begin() as conn:
            done = conn.execute(md.datasets.update().where(md.datasets.c.name == name)
                                .where(md.datasets.c.status == "loaded")
                                .values(status="obsolete", obsolete_at=md.now()))
            if done.rowcount == 0:
                exists = conn.execute(sa.select(md.datasets.c.status).where(md.datasets.c.name == name)).first()
                if exists is None:
                    raise BadSelection(f"dataset {name} is not in the catalogue")
                return
            conn.execute(md.load_history.insert().values(dataset=name, action="obsolete", at=md.now()))
        self._bump_generation()

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

    def _candidates(self, sel: Selection, rows: list[dict] | None = None) -> list[dict]:
        self._refresh()
        rows = [r for r in (rows if rows is not None else self._manifest)
                if sel.include_obsolete or r["status"] == "loaded"]
        out = []
        for r in rows:
            if sel.dataset and r["name"] != sel.dataset:
                continue
            if sel.project and r["project"] != sel.project:
                continue
            if sel.stream and r["stream"] != sel.stream:
                continue
            if sel.datatype and r["datatype"] != sel.datatype:
                continue
            if sel.version not in (None, "latest") and r["version"] != sel.version:
                continue
            if not overlaps_ranges(r["first_run"], r["last_run"], sel.runs):
                continue
            if sel.time_range and not (r["first_time"] <= sel.time_range[1] and sel.time_range[0] <= r["last_time"]):
                continue
            out.append(r)
        if sel.version == "latest":
            newest: dict[tuple, dict] = {}
            for r in out:
                sample = (r["project"], r["run_number"], r["dsid"], r["stream"], r["datatype"])
                if sample not in newest or r["loaded_at"] > newest[sample]["loaded_at"]:
                    newest[sample] = r
            out = [r for r in out if newest[(r["project"], r["run_number"], r["dsid"], r["stream"],
                                             r["datatype"])] is r]
        if sel.guid:
            with self.engine.connect() as conn:
                ids = {i for (i,) in conn.execute(_DATASETS_OF_GUID, {"guid": sel.guid})}
            out = [r for r in out if r["id"] in ids]
        return out

    def _trigger_bits(self, names: tuple[str, ...], rows: list[dict]) -> dict[str, dict[int, tuple[str, int]]]:
        """name -> {smk: (level, bit)} over the menus of ``rows``; unknown names raise with close matches."""
        menus = self.menus()
        smks = sorted({s for r in rows for s in r["smks"]}) or sorted(menus)
        out = {}
        for name in names:
            found = {}
            for smk in smks:
                menu = menus.get(smk)
                if menu is None:
                    raise BadSelection(f"no trigger menu for SMK {smk} in the catalogue (load the menus first)")
                try:
                    found[smk] = menu.locate(name)
                except UnknownTrigger:
                    pass
            if not found:
                if not smks:
                    raise UnknownTrigger(f"unknown trigger {name!r}: no trigger menu is loaded")
                menus[smks[0]].locate(name)  # raises with close matches
                raise UnknownTrigger(f"unknown trigger {name!r}")
            out[name] = found
        return out

    # --- lookups --------------------------------------------------------------------------------------------

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

    @_retry_on_vanished_files
    def count(self, sel: Selection) -> int:
        rows = self._candidates(sel)
        total, scan, by_bits = 0, [], []
        bits = self._trigger_bits(sel.triggers, rows) if sel.triggers else {}
        for r in rows:
            whole = not sel.event_level and contained(r["first_run"], r["last_run"], sel.runs)
            if whole and not sel.triggers:
                total += r["nevents"]
            elif whole and len(sel.triggers) == 1:
                by_bits.append(r)
            else:
                scan.append(r)
        if by_bits:
            total += self._trigger_count(by_bits, bits[sel.triggers[0]])
        if scan:
            sql, params = self._where(sel, scan, bits)
            total += self._duck(f"SELECT count(*) FROM {self._source(scan)} WHERE {sql}", params).fetchone()[0]
        return int(total)

    def _trigger_count(self, rows: list[dict], where: dict[int, tuple[str, int]]) -> int:
        """Events of ``rows`` with the trigger's bit set, from the per-dataset bit counts (no scan)."""
        if not rows:
            return 0
        c = md.trigger_counts.c
        ids = [r["id"] for r in rows]
        per_menu = sa.or_(*[(c.smk == smk) & (c.level == level) & (c.bit == bit) for smk, (level, bit) in where.items()])
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(c.nevents), 0))
                                    .where(c.dataset_id.in_(ids)).where(per_menu)).scalar())

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
                idx, guids, _ = keys.refs[r["datatype"]]
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
                        idx, guids, _ = keys.refs[stage]
                        out[c] = pa.DictionaryArray.from_arrays(pa.array(idx[pos]), pa.array(guids, pa.string()))
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
        if not len(keys.run):
            starts = np.empty(0, np.int64)
        else:
            same = (keys.run[1:] == keys.run[:-1]) & (keys.event[1:] == keys.event[:-1])
            starts = np.flatnonzero(np.concatenate([[True], ~same]))
        copies = np.diff(np.append(starts, len(keys.run)))
        dup = copies > 1
        return pa.table({"run_number": pa.array(keys.run[starts[dup]], pa.uint32()),
                         "event_number": pa.array(keys.event[starts[dup]], pa.uint64()),
                         "copies": pa.array(copies[dup], pa.int64())})

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

    def _row(self, dataset: str) -> dict:
        name = parse(dataset).name
        self._refresh()
        for r in self._manifest:
            if r["name"] == name:
                return r
        raise BadSelection(f"dataset {name} is not in the catalogue")

    # --- DuckDB ---------------------------------------------------------------------------------------------

    def _source(self, rows: list[dict]) -> str:
        paths = [str(self._path(r, ".parquet")) for r in rows]
        listing = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
        return f"read_parquet([{listing}], hive_partitioning = true, union_by_name = true)"

    def _where(self, sel: Selection, rows: list[dict], bits) -> tuple[str, list]:
        clauses, params = ["TRUE"], []
        if sel.runs:
            clauses.append("(" + " OR ".join("run_number BETWEEN ? AND ?" for _ in sel.runs) + ")")
            params += [v for r in sel.runs for v in r]
        if sel.lumi_blocks:
            clauses.append("(" + " OR ".join("lumi_block BETWEEN ? AND ?" for _ in sel.lumi_blocks) + ")")
            params += [v for r in sel.lumi_blocks for v in r]
        if sel.time_range:
            clauses.append("timestamp BETWEEN ? AND ?")
            params += list(sel.time_range)
        if sel.guid:
            stages = sorted({r["datatype"] for r in rows})
            clauses.append("(" + " OR ".join(f'"{s}_guid" = ?' for s in stages) + ")")
            params += [guid_bytes(sel.guid)] * len(stages)
        for name in sel.triggers:
            e, p = _trigger_expr(bits[name])
            clauses.append(f"({e})")
            params += p
        return " AND ".join(clauses), params

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


def _event_id(run, event) -> tuple[int, int]:
    try:
        run, event = int(run), int(event)
    except (TypeError, ValueError):
        raise BadSelection(f"run and event must be integers, got {run!r} {event!r}") from None
    if not (0 <= run <= 2**32 - 1) or not (0 <= event <= 2**64 - 1):
        raise BadSelection(f"run {run} or event {event} out of range (run: 32 bits, event: 64 bits)")
    return run, event


def _match(row: dict, keys: _Keys, i: int, run: int, event: int) -> dict:
    refs = {}
    for stage, (idx, guids, oid) in keys.refs.items():
        refs[stage] = {"guid": guids[idx[i]], "oid": int(oid[i])}
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
                idx, guids, oid = keys.refs[stage]
                guid_parts.append(np.asarray(guids, dtype=object)[idx[pos]])
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


def _is_ref_column(name: str) -> bool:
    stage, _, kind = name.rpartition("_")
    return kind in ("guid", "oid") and bool(STAGE_RE.match(stage))


def _quote_col(name: str, stages: set[str]) -> str:
    if _is_ref_column(name) and name.rpartition("_")[0] not in stages:
        return f'NULL AS "{name}"'
    if name.endswith("_guid"):  # 16 bytes -> the upper-case UUID text POOL writes
        h = f'hex("{name}")'
        parts = "|| '-' ||".join(f"substr({h}, {a}, {n})" for a, n in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)))
        return f'({parts}) AS "{name}"'
    return f'"{name}"'


def _as_table(records) -> pa.Table:
    if isinstance(records, pa.Table):
        return records
    if isinstance(records, pa.RecordBatch):
        return pa.Table.from_batches([records])
    parts = []
    for item in records:
        if isinstance(item, pa.Table):
            parts.append(item)
        elif isinstance(item, (str, os.PathLike)):
            try:
                parts.append(pq.read_table(item))
            except (OSError, pa.ArrowException) as exc:
                raise BadLoad(f"{item}: not a readable Parquet file ({exc})") from None
        else:
            raise BadLoad(f"cannot load records from {type(item).__name__}")
    if not parts:
        raise BadLoad("no records given")
    try:
        return pa.concat_tables(parts, promote_options="none")
    except pa.ArrowInvalid as exc:
        raise BadLoad(f"the record files have different schemas: {exc}") from None


def _check_records(ds: DatasetName, table: pa.Table) -> None:
    for f in BASE_FIELDS:
        if f.name not in table.schema.names:
            raise BadLoad(f"{ds.name}: records lack the column {f.name}")
        got = table.schema.field(f.name).type
        if got != f.type:
            raise BadLoad(f"{ds.name}: column {f.name} is {got}, expected {f.type}")
    own = f"{ds.datatype}_guid"
    if own not in table.schema.names:
        raise BadLoad(f"{ds.name}: records carry no reference to their own {ds.datatype} files ({own})")
    if table.num_rows == 0:
        raise BadLoad(f"{ds.name}: no records")
    if ds.is_mc:
        bad = pc.not_equal(table.column("mc_channel_number"), pa.scalar(ds.dsid, pa.uint32()))
        if pc.any(bad).as_py() or table.column("mc_channel_number").null_count:
            raise BadLoad(f"{ds.name}: records of another channel than {ds.dsid}")
    else:
        runs = pc.unique(table.column("run_number")).to_pylist()
        if runs != [ds.run_number]:
            other = [r for r in runs if r != ds.run_number]
            raise BadLoad(f"{ds.name}: records of run {other[0] if other else '?'}, not {ds.run_number}")


_BITS_OF_BYTE = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little").astype(np.int64)


def _trigger_counts(table: pa.Table, smks: list[int]) -> list[dict]:
    """Events with each bit set, per menu: a histogram of the (byte position, value) of every non-zero mask byte,
    times the bits of each byte value. Masks are sparse, so this touches few bytes."""
    smk_col = table.column("smk").to_numpy()
    out = []
    for level, column in TRIGGER_COLUMNS.items():
        masks = masks_from_arrow(table.column(column))
        for smk in smks:
            sub = masks[smk_col == smk] if len(smks) > 1 else masks
            width = sub.shape[1]
            flat = sub.reshape(-1)
            nz = np.flatnonzero(flat)
            hist = np.bincount((nz % width) * 256 + flat[nz], minlength=width * 256).reshape(width, 256)
            counts = (hist @ _BITS_OF_BYTE).reshape(-1)
            out += [{"smk": smk, "level": level, "bit": int(b), "nevents": int(counts[b])}
                    for b in np.flatnonzero(counts)]
    return out


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
