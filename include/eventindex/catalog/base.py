"""What every catalogue backend shares: the manifest and the rest of the metadata DB (datasets, files, menus,
per-dataset trigger counts, load history), choosing datasets for a selection, counting from metadata, and the
checks and statistics of a load. Backends store and scan the events themselves.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from .. import metadata as md
from ..errors import BadLoad, BadSelection, DatasetNotFound, EventIndexError, UnknownTrigger
from ..guid import format_guid, guid_bytes
from ..naming import DatasetName, parse
from ..schema import BASE_FIELDS, STAGE_RE, stage_key, stages_of
from ..trigger import TriggerMenu, masks_from_arrow
from .selection import Selection, contained, overlaps_ranges

TRIGGER_COLUMNS = {"L1": "l1_tav", "HLT": "hlt_passed"}
_DATASETS_OF_GUID = sa.text("SELECT dataset_id FROM files WHERE guid = :guid")


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
class PreparedLoad:
    """A dataset's records, checked and sorted by (run, event), with what the manifest keeps about them."""

    ds: DatasetName
    table: pa.Table
    stages: list[str]
    row: dict
    file_rows: list[dict]
    counts: list[dict]


class CatalogBase:
    backend = "base"

    def __init__(self, metadata_url: str):
        self.engine = md.make_engine(metadata_url)
        md.upgrade(self.engine)
        self._lock = threading.Lock()
        self._generation = None
        self._manifest: list[dict] = []
        self._by_run: dict[int, list[dict]] = {}
        self._wide: list[dict] = []
        self._menus: dict[int, TriggerMenu] | None = None
        self._guid_datasets: dict[str, set[int]] = {}

    # --- hooks for backends ---------------------------------------------------------------------------------

    def _generation_key(self):
        """Changes whenever the manifest may have changed (default: ask the metadata DB)."""
        with self.engine.connect() as conn:
            return (conn.execute(sa.select(sa.func.max(md.load_history.c.id))).scalar(),
                    conn.execute(sa.select(sa.func.count()).select_from(md.trigger_menus)).scalar())

    def _bump_generation(self) -> None:
        """Tell readers in other processes that the manifest changed (default: the DB itself tells them)."""

    def _manifest_changed(self, live_load_ids: set[str]) -> None:
        """Drop what was cached about dataset versions that are gone."""

    def _scan_count(self, sel: Selection, rows: list[dict], bits) -> int:
        raise NotImplementedError

    # --- loading --------------------------------------------------------------------------------------------

    def _prepare(self, dataset: str, records, files_meta: dict | None, counts: bool = True) -> PreparedLoad:
        try:
            ds = parse(dataset)
        except EventIndexError as exc:
            raise BadLoad(str(exc)) from None
        table = _as_table(records)
        check_records(ds, table)
        run = table.column("run_number").to_numpy()
        evt = table.column("event_number").to_numpy()
        in_order = (run[1:] > run[:-1]) | ((run[1:] == run[:-1]) & (evt[1:] >= evt[:-1]))
        if not in_order.all():  # producers of Tier-0 data write in order; reprocessed data comes shuffled
            order = pc.sort_indices(table, [("run_number", "ascending"), ("event_number", "ascending")])
            table = table.take(order)
            run = table.column("run_number").to_numpy()
            evt = table.column("event_number").to_numpy()
        same = (run[1:] == run[:-1]) & (evt[1:] == evt[:-1])
        unique = int(len(run) - same.sum())
        stages = sorted(stages_of(table.schema), key=stage_key)
        guid_counts = pc.value_counts(table.column(f"{ds.datatype}_guid"))
        file_rows = [{"guid": format_guid(g), "nevents": int(n), "lfn": None} for g, n in
                     zip(guid_counts.field("values").to_pylist(), guid_counts.field("counts").to_pylist())]
        for f in file_rows:
            f["lfn"] = (files_meta or {}).get(f["guid"], {}).get("lfn")
        smks = sorted(int(s) for s in pc.unique(table.column("smk")).to_pylist())
        ts = table.column("timestamp")
        row = {
            "name": ds.name, "project": ds.project, "run_number": ds.run_number, "dsid": ds.dsid,
            "stream": ds.stream, "prodstep": ds.prodstep, "datatype": ds.datatype, "version": ds.amitag or "",
            "status": "loaded", "nfiles": len(file_rows), "nevents": table.num_rows, "unique_events": unique,
            "duplicates": table.num_rows - unique, "first_run": int(run[0]), "last_run": int(run[-1]),
            "first_time": int(pc.min(ts).as_py() or 0), "last_time": int(pc.max(ts).as_py() or 0),
            "stages": json.dumps(stages), "smks": json.dumps(smks), "storage": "", "load_id": "",
            "loaded_at": md.now(), "obsolete_at": None,
        }
        return PreparedLoad(ds, table, stages, row, file_rows, _trigger_counts(table, smks) if counts else [])

    def _commit(self, p: PreparedLoad, load_id: str, storage: str) -> str | None:
        """Switch the manifest to the new version in one transaction; returns the replaced load id."""
        row = {**p.row, "load_id": load_id, "storage": storage, "loaded_at": md.now()}
        replaced = None
        with self.engine.begin() as conn:
            old = conn.execute(sa.select(md.datasets.c.id, md.datasets.c.load_id)
                               .where(md.datasets.c.name == p.ds.name).with_for_update()).first()
            if old is None:
                dataset_id = conn.execute(md.datasets.insert().values(**row)).inserted_primary_key[0]
            else:
                dataset_id, replaced = old.id, old.load_id
                conn.execute(md.datasets.update().where(md.datasets.c.id == dataset_id).values(**row))
                conn.execute(md.files.delete().where(md.files.c.dataset_id == dataset_id))
                conn.execute(md.trigger_counts.delete().where(md.trigger_counts.c.dataset_id == dataset_id))
            if p.file_rows:
                conn.execute(md.files.insert(), [{"dataset_id": dataset_id, **f} for f in p.file_rows])
            if p.counts:
                conn.execute(md.trigger_counts.insert(), [{"dataset_id": dataset_id, **c} for c in p.counts])
            conn.execute(md.load_history.insert().values(
                dataset=p.ds.name, action="reload" if replaced else "load", load_id=load_id,
                replaced_load_id=replaced, nevents=p.table.num_rows, at=md.now()))
        self._bump_generation()
        return replaced

    # --- manifest, metadata and counts ----------------------------------------------------------------------

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
            raise DatasetNotFound(f"dataset {name} is not in the catalogue")
        with self.engine.connect() as conn:
            row["files"] = [dict(r._mapping) for r in conn.execute(
                sa.select(md.files.c.guid, md.files.c.lfn, md.files.c.nevents)
                .where(md.files.c.dataset_id == row["id"]).order_by(md.files.c.guid))]
            row["history"] = [dict(r._mapping) for r in conn.execute(
                sa.select(md.load_history).where(md.load_history.c.dataset == name).order_by(md.load_history.c.id))]
        return row

    def mark_obsolete(self, dataset: str) -> None:
        name = parse(dataset).name
        with self.engine.begin() as conn:
            done = conn.execute(md.datasets.update().where(md.datasets.c.name == name)
                                .where(md.datasets.c.status == "loaded")
                                .values(status="obsolete", obsolete_at=md.now()))
            if done.rowcount == 0:
                exists = conn.execute(sa.select(md.datasets.c.status).where(md.datasets.c.name == name)).first()
                if exists is None:
                    raise DatasetNotFound(f"dataset {name} is not in the catalogue")
                return
            conn.execute(md.load_history.insert().values(dataset=name, action="obsolete", at=md.now()))
        self._bump_generation()

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
            ids = self._guid_datasets.get(sel.guid)
            if ids is None:  # remembered until the manifest changes
                with self.engine.connect() as conn:
                    ids = {i for (i,) in conn.execute(_DATASETS_OF_GUID, {"guid": sel.guid})}
                if len(self._guid_datasets) > 100_000:
                    self._guid_datasets.clear()
                self._guid_datasets[sel.guid] = ids
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
            total += self._scan_count(sel, scan, bits)
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

    def _row(self, dataset: str) -> dict:
        name = parse(dataset).name
        self._refresh()
        for r in self._manifest:
            if r["name"] == name:
                return r
        raise DatasetNotFound(f"dataset {name} is not in the catalogue")

    def _refresh(self) -> None:
        key = self._generation_key()
        if key == self._generation and self._generation is not None:
            return
        with self._lock:
            with self.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(sa.select(md.datasets).order_by(md.datasets.c.id))]
            for r in rows:
                r["stages"] = json.loads(r["stages"])
                r["smks"] = json.loads(r["smks"])
            self._manifest_changed({r["load_id"] for r in rows})
            self._guid_datasets = {}
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
            self._generation = key


# --- helpers ------------------------------------------------------------------------------------------------


def row_filters(sel: Selection, rows: list[dict], bits, column, trigger_expr) -> tuple[list[str], list]:
    """The event-level WHERE clauses of a selection, with bound parameters, for any SQL backend.

    ``column(name)`` spells a record column in the backend's SQL; ``trigger_expr({smk: (level, bit)})`` returns
    ``(sql, params)`` for "this trigger passed" (bit positions differ per menu).
    """
    clauses, params = [], []
    for name, ranges in (("run_number", sel.runs), ("lumi_block", sel.lumi_blocks),
                         ("timestamp", (sel.time_range,) if sel.time_range else ())):
        if ranges:
            clauses.append("(" + " OR ".join(f"{column(name)} BETWEEN ? AND ?" for _ in ranges) + ")")
            params += [v for r in ranges for v in r]
    if sel.guid:
        stages = sorted({r["datatype"] for r in rows})
        clauses.append("(" + " OR ".join(f"{column(s + '_guid')} = ?" for s in stages) + ")")
        params += [guid_bytes(sel.guid)] * len(stages)
    for name in sel.triggers:
        e, p = trigger_expr(bits[name])
        clauses.append(f"({e})")
        params += p
    return clauses, params


def duplicate_table(run: np.ndarray, evt: np.ndarray) -> pa.Table:
    """(run, event, copies) for every event present more than once in keys sorted by (run, event)."""
    if len(run):
        same = (run[1:] == run[:-1]) & (evt[1:] == evt[:-1])
        starts = np.flatnonzero(np.concatenate([[True], ~same]))
    else:
        starts = np.empty(0, np.int64)
    copies = np.diff(np.append(starts, len(run)))
    dup = copies > 1
    return pa.table({"run_number": pa.array(run[starts[dup]], pa.uint32()),
                     "event_number": pa.array(evt[starts[dup]], pa.uint64()),
                     "copies": pa.array(copies[dup], pa.int64())})


def _event_id(run, event) -> tuple[int, int]:
    try:
        run, event = int(run), int(event)
    except (TypeError, ValueError):
        raise BadSelection(f"run and event must be integers, got {run!r} {event!r}") from None
    if not (0 <= run <= 2**32 - 1) or not (0 <= event <= 2**64 - 1):
        raise BadSelection(f"run {run} or event {event} out of range (run: 32 bits, event: 64 bits)")
    return run, event


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


def check_records(ds: DatasetName, table: pa.Table) -> None:
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


def _trigger_counts(table: pa.Table, smks: list[int]) -> list[dict]:
    """Events with each bit set, per menu. Masks are sparse: only the non-zero 64-bit words are looked at, and the
    bits come from a histogram of (byte position, byte value) times the bits of each byte value."""
    smk_col = table.column("smk").to_numpy()
    out = []
    for level, column in TRIGGER_COLUMNS.items():
        masks = masks_from_arrow(table.column(column))
        for smk in smks:
            sub = masks[smk_col == smk] if len(smks) > 1 else masks
            width = sub.shape[1]
            words = np.ascontiguousarray(sub).view("<u8").reshape(-1)
            nz = np.flatnonzero(words)
            byte_pos = ((nz % (width // 8)) * 8)[:, None] + np.arange(8)
            values = words[nz].view(np.uint8).reshape(-1, 8)
            hist = np.bincount((byte_pos * 256 + values).reshape(-1), minlength=width * 256).reshape(width, 256)
            counts = (hist @ _BITS_OF_BYTE).reshape(-1)
            out += [{"smk": smk, "level": level, "bit": int(b), "nevents": int(counts[b])}
                    for b in np.flatnonzero(counts)]
    return out


def _is_ref_column(name: str) -> bool:
    stage, _, kind = name.rpartition("_")
    return kind in ("guid", "oid") and bool(STAGE_RE.match(stage))
_BITS_OF_BYTE = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little").astype(np.int64)