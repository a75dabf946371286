"""What every catalogue backend shares: the manifest and the rest of the metadata DB (datasets, files, menus,
per-dataset trigger counts, load history), choosing datasets for a selection, counting from metadata, and the
``Catalog`` protocol callers program against. Backends store and scan the events themselves.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from .. import metadata as md
from ..ami import derived
from ..ami.periods import in_periods, run_ranges
from ..errors import BadLoad, BadRequest, DatasetNotFound, EventIndexError, UnknownTrigger
from ..guid import format_guid
from ..naming import DatasetName, parse
from ..schema import stage_key, stages_of
from ..trigger import TriggerMenu, close_matches
from .records import LoadResult, as_table, carried_menus, check_records, trigger_counts
from .expression import is_name
from .selection import (Selection, check_known, check_trigger_data, contained, has_trigger_information,
                        menus_missing, overlaps_ranges, row_filters)

__all__ = ["Catalog", "CatalogBase", "LoadResult", "PreparedLoad", "SOURCES", "check_records", "row_filters"]
SOURCES = ("tier0", "grid", "campaign", "manual")  # which ingestion loaded a dataset (column ``datasets.source``)

_DATASETS_OF_GUID = sa.text("SELECT dataset_id FROM files WHERE guid = :guid")


@runtime_checkable
class Catalog(Protocol):
    """The event catalogue as its callers (CLI, use cases, DAG tasks, the web app) see it, whichever backend stores
    the events: the embedded store (Parquet + DuckDB) or HBase through Phoenix. Both share the metadata DB, so the
    answers about datasets, files and menus come from the same tables.

    Selections come from ``make_selection`` (checked values only); a selection naming a project, stream, data type
    or version that no dataset has raises ``BadSelection`` rather than answering 0. The embedded store also offers
    ``gc()`` (remove files of crashed loads) and ``warm()`` (page the key files in), which Phoenix has no use for.
    """

    backend: str  # "embedded" or "phoenix": for messages and reports
    engine: sa.Engine  # the metadata DB, for use cases that keep their own tables next to the manifest

    def load(self, dataset: str, records, *, files_meta: dict[str, dict] | None = None,
             source: str | None = None) -> LoadResult:
        """Make ``records`` (a table, tables or Parquet paths) the dataset's whole content: readers see the previous
        version or the new one, never a mix; a reload replaces it. ``files_meta``: GUID -> {"lfn": ...}; ``source``:
        the ingestion source that loaded it (``SOURCES``; default "manual")."""
        ...

    def mark_obsolete(self, dataset: str) -> bool:
        """Hide the dataset from queries but keep it (and its history) in the manifest; False when it already was."""
        ...

    def restore(self, dataset: str) -> bool:
        """Undo ``mark_obsolete`` (action ``restore``); False when loaded already, BadRequest when it was erased."""
        ...

    def mark_erased(self, dataset: str) -> bool:
        """The dataset was erased in Rucio (its files are gone): hidden from queries and lookups like an obsolete one,
        kept with its history (action ``erase``), ``show`` says status ``erased``; DatasetNotFound when absent.
        Idempotent: False when it was already erased."""
        ...

    def lookup(self, run: int, event: int, *, project: str | None = None, datatype: str | None = None,
               version: str | None = None) -> list[dict]:
        """Where one event is: one dict per record (dataset, project, datatype, version, stream, run_number,
        event_number, lumi_block, refs: {stage: {guid, oid}}), several when formats or duplicates hold it."""
        ...

    def lookup_many(self, pairs, *, project: str | None = None, datatype: str | None = None,
                    version: str | None = None) -> pa.Table:
        """Many (run, event) pairs at once, for picking: one row per match with ``request`` (the pair's index),
        dataset, datatype, version, run_number, event_number, lumi_block and ``<STAGE>_guid``/``_oid`` columns."""
        ...

    def count(self, sel: Selection) -> int:
        """Events passing ``sel``; from the manifest and trigger counts when it can, scanning events only when not."""
        ...

    def select(self, sel: Selection, columns: list[str] | None = None,
               batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        """The records passing ``sel`` as Arrow batches (streamed, so a large selection never sits in memory);
        ``dataset`` and reference columns may be asked for besides the record columns."""
        ...

    def overlaps(self, sel: Selection, *, streams: list[str] | None = None,
                 triggers: list[str] | None = None) -> tuple[list[str], np.ndarray]:
        """How many events two streams (same run and event) or two triggers (within ``sel``) share: the labels and
        a symmetric matrix whose diagonal is each one's own count."""
        ...

    def duplicates(self, dataset: str) -> pa.Table:
        """(run_number, event_number, copies) of every event recorded more than once in the dataset."""
        ...

    def missing(self, dataset: str, reference: str) -> pa.Table:
        """(run_number, event_number) of the events of ``dataset`` that ``reference`` lacks."""
        ...

    def datasets(self, include_obsolete: bool = False) -> list[dict]:
        """The manifest rows (name, nomenclature fields, counts, run and time span, stages, SMKs, status, ...)."""
        ...

    def matching(self, sel: Selection) -> list[dict]:
        """The manifest rows of the datasets a selection reads, before any cut inside them (no scan)."""
        ...

    def show(self, name: str) -> dict:
        """One dataset's manifest row with its ``files`` and load ``history``, whether its events carry
        ``trigger_information`` and the SMKs whose menu is missing (``menu_missing``); DatasetNotFound when absent."""
        ...

    def menus(self) -> dict[int, TriggerMenu]:
        """The trigger menus known to the catalogue, by SMK (trigger names in selections resolve through them)."""
        ...

    def save_menus(self, menus: Iterable[TriggerMenu]) -> None:
        """Add or replace trigger menus (before loading data taken with them)."""
        ...


@dataclass
class PreparedLoad:
    """A dataset's records, checked and sorted by (run, event), with what the manifest keeps about them."""

    ds: DatasetName
    table: pa.Table
    stages: list[str]
    row: dict
    file_rows: list[dict]
    counts: list[dict]
    menus: list[TriggerMenu]  # menus the records carried (real files) that the catalogue saves with the load


class CatalogBase(ABC):
    backend = "base"

    def __init__(self, metadata_url: str):
        self.engine = md.make_engine(metadata_url)  # never migrates: `eventindex db upgrade` does
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

    @abstractmethod
    def _scan_count(self, sel: Selection, rows: list[dict], bits) -> int:
        """Events of ``rows`` passing ``sel`` when the metadata alone cannot say (event-level cuts)."""

    # --- loading --------------------------------------------------------------------------------------------

    def _prepare(self, dataset: str, records, files_meta: dict | None, counts: bool = True,
                 source: str | None = None) -> PreparedLoad:
        try:
            ds = parse(dataset)
        except EventIndexError as exc:
            raise BadLoad(str(exc)) from None
        if (source or "manual") not in SOURCES:
            raise BadLoad(f"source {source!r} is not one of {', '.join(SOURCES)}")
        table = as_table(records)
        check_records(ds, table)
        table, menus = carried_menus(ds, table, self.menus())
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
        smks = sorted(int(s) for s in pc.unique(table.column("smk")).to_pylist() if s is not None)
        ts = table.column("timestamp")
        row = {
            "name": ds.name, "project": ds.project, "run_number": ds.run_number, "dsid": ds.dsid,
            "stream": ds.stream, "prodstep": ds.prodstep, "datatype": ds.datatype, "version": ds.amitag or "",
            "status": "loaded", "nfiles": len(file_rows), "nevents": table.num_rows, "unique_events": unique,
            "duplicates": table.num_rows - unique, "first_run": int(run[0]), "last_run": int(run[-1]),
            "first_time": int(pc.min(ts).as_py() or 0), "last_time": int(pc.max(ts).as_py() or 0),
            "stages": json.dumps(stages), "smks": json.dumps(smks), "storage": "", "load_id": "",
            "loaded_at": md.now(), "obsolete_at": None, "source": source or "manual",
        }
        return PreparedLoad(ds, table, stages, row, file_rows, trigger_counts(table, smks) if counts else [], menus)

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
            if p.menus:
                md.save_menus(conn, p.menus)
            conn.execute(md.load_history.insert().values(
                dataset=p.ds.name, action="reload" if replaced else "load", load_id=load_id,
                replaced_load_id=replaced, nevents=p.table.num_rows, nfiles=p.row["nfiles"], at=md.now()))
        self._bump_generation()
        derived.refresh(self.engine, [p.ds.name], "load")  # AMI's quantities (status, counts) see the load
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

    def matching(self, sel: Selection) -> list[dict]:
        return [dict(r) for r in self._candidates(sel)]

    def show(self, name: str) -> dict:
        name = parse(name).name
        self._refresh()
        row = next((dict(r) for r in self._manifest if r["name"] == name), None)
        if row is None:
            raise DatasetNotFound(f"dataset {name} is not in the catalogue")
        row["trigger_information"] = has_trigger_information(row)
        row["menu_missing"] = menus_missing(row, self.menus()) if row["trigger_information"] else []
        with self.engine.connect() as conn:
            row["files"] = [dict(r._mapping) for r in conn.execute(
                sa.select(md.files.c.guid, md.files.c.lfn, md.files.c.nevents)
                .where(md.files.c.dataset_id == row["id"]).order_by(md.files.c.guid))]
            row["history"] = [dict(r._mapping) for r in conn.execute(
                sa.select(md.load_history).where(md.load_history.c.dataset == name).order_by(md.load_history.c.id))]
        return row

    def mark_obsolete(self, dataset: str) -> bool:
        return self._retire(dataset, "obsolete", "obsolete", ("loaded",))

    def restore(self, dataset: str) -> bool:
        return self._retire(dataset, "loaded", "restore", ("obsolete",))

    def mark_erased(self, dataset: str) -> bool:
        return self._retire(dataset, "erased", "erase", ("loaded", "obsolete"))

    def _retire(self, dataset: str, status: str, action: str, from_states: tuple[str, ...]) -> bool:
        """Hide a dataset from queries (``status``) keeping its history, or show it again; False when it already was."""
        name = parse(dataset).name
        when = None if status == "loaded" else sa.func.coalesce(md.datasets.c.obsolete_at, md.now())
        with self.engine.begin() as conn:
            done = conn.execute(md.datasets.update().where(md.datasets.c.name == name)
                                .where(md.datasets.c.status.in_(from_states)).values(status=status, obsolete_at=when))
            if done.rowcount == 0:
                exists = conn.execute(sa.select(md.datasets.c.status).where(md.datasets.c.name == name)).first()
                if exists is None:
                    raise DatasetNotFound(f"dataset {name} is not in the catalogue")
                if status == "loaded" and exists.status == "erased":
                    raise BadRequest(f"dataset {name} cannot be restored: it was erased in Rucio (its files are "
                                     "gone); ingest it again instead")
                return False
            conn.execute(md.load_history.insert().values(dataset=name, action=action, at=md.now()))
        self._bump_generation()
        derived.refresh(self.engine, [name], "catalogue")
        return True

    def _candidates(self, sel: Selection, rows: list[dict] | None = None) -> list[dict]:
        """The manifest rows (of ``rows``, by default all) whose datasets may hold events passing ``sel``."""
        self._refresh()
        rows = [r for r in (rows if rows is not None else self._manifest)
                if sel.include_obsolete or r["status"] == "loaded"]
        periods = run_ranges(self.engine, sel.periods, sel.project) if sel.periods else None
        out = []
        for r in rows:
            if sel.dataset and r["name"] != sel.dataset or periods is not None and not in_periods(r, periods):
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
        if not out:  # a value no dataset has is a typo, not an empty answer
            check_known(sel, self._manifest)
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
        check_trigger_data(rows, menus)
        smks = sorted({s for r in rows for s in r["smks"]}) or sorted(menus)
        out = {}
        for name in names:
            found = {}
            for smk in smks:
                try:
                    found[smk] = menus[smk].locate(name)
                except UnknownTrigger:
                    pass
            if not found:
                if not smks:
                    raise UnknownTrigger(f"unknown trigger {name!r}: no trigger menu is loaded")
                close = close_matches(name, dict.fromkeys(n for smk in smks for n in menus[smk].names))
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UnknownTrigger(f"unknown trigger {name!r} in the menus of the selected data "
                                     f"(SMK {', '.join(map(str, smks))}){hint}")
            out[name] = found
        return out

    def count(self, sel: Selection) -> int:
        rows = self._candidates(sel)
        total, scan, by_bits = 0, [], []
        bits = self._trigger_bits(sel.trigger_names, rows) if sel.triggers else {}
        for r in rows:
            whole = not sel.event_level and contained(r["first_run"], r["last_run"], sel.runs)
            if whole and not sel.triggers:
                total += r["nevents"]
            elif whole and len(sel.triggers) == 1 and is_name(sel.triggers[0]):
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
