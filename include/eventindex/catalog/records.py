"""The records a load brings, checked and summed up before any backend stores them: reading them into one Arrow
table, the schema and the run (or channel) the dataset name promises, per-menu trigger bit counts and duplicates.

Shared by both backends and by ingestion's validation, so that a dataset refused by one is refused by all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import BadLoad
from ..naming import DatasetName
from ..schema import BASE_FIELDS, HLT_MASKS, MENUS_KEY, STAGE_RE, concat_records, is_hlt_mask_type
from ..trigger import TriggerMenu, masks_from_arrow

TRIGGER_COLUMNS = {"L1": "l1_tav", "HLT": "hlt_passed"}


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


def as_table(records) -> pa.Table:
    """One table from what callers hand to ``load``: a table, a record batch, tables or Parquet paths."""
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
        return concat_records(parts)
    except ValueError as exc:
        raise BadLoad(f"the record files do not fit together: {exc}") from None


def carried_menus(ds: DatasetName, table: pa.Table, known: dict[int, TriggerMenu]) -> tuple[pa.Table, list]:
    """The menus the records carry (schema metadata ``eventindex.menus``, from real files) that the catalogue does not
    hold yet, and the table without that metadata. The same SMK with another menu, among them or against ``known``,
    is BadLoad naming the SMK and the first differing name: an SMK names one menu for good."""
    import json

    meta = dict(table.schema.metadata or {})
    raw = meta.pop(MENUS_KEY.encode(), None)
    if raw is None:
        return table, []
    try:
        found = [TriggerMenu.from_json(m) for m in json.loads(raw)]
    except (ValueError, TypeError, KeyError) as exc:
        raise BadLoad(f"{ds.name}: the records' trigger menus are malformed ({type(exc).__name__}: {exc})") from None
    new: dict[int, TriggerMenu] = {}
    for menu in found:
        held = known.get(menu.smk) or new.get(menu.smk)
        why = held.difference(menu) if held is not None else None
        if why:
            raise BadLoad(f"{ds.name}: SMK {menu.smk} names another menu than the one already known: {why}")
        if held is None:
            new[menu.smk] = menu
    return table.replace_schema_metadata(meta), list(new.values())


def check_records(ds: DatasetName, table: pa.Table) -> None:
    for f in BASE_FIELDS:
        if f.name not in table.schema.names:
            raise BadLoad(f"{ds.name}: records lack the column {f.name}")
        got = table.schema.field(f.name).type
        if f.name in HLT_MASKS:
            if not is_hlt_mask_type(got) or got != table.schema.field(HLT_MASKS[0]).type:
                raise BadLoad(f"{ds.name}: column {f.name} is {got}, expected fixed_size_binary of a multiple of 8 "
                              f"bytes from {f.type.byte_width}, the same for {', '.join(HLT_MASKS)}")
        elif got != f.type:
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


def trigger_counts(table: pa.Table, smks: list[int]) -> list[dict]:
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


def is_ref_column(name: str) -> bool:
    """Whether ``name`` is a reference column (``<STAGE>_guid`` or ``<STAGE>_oid``), which any stage may have."""
    stage, _, kind = name.rpartition("_")
    return kind in ("guid", "oid") and bool(STAGE_RE.match(stage))


_BITS_OF_BYTE = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little").astype(np.int64)
