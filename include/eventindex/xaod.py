"""Reading real ATLAS xAOD files: the index fields of every event, in both storage formats the experiment writes.

Run 2 (TTree): ``CollectionTree``, one entry per event, with EventInfo in its static aux store
(``EventInfoAux.runNumber``, ...) or, once slimmed, in the dynamic one (``EventInfoAuxDyn.mcChannelNumber``, ...).
Run 3 (RNTuple): ``EventData``, one entry per event, with fields ``EventInfoAuxDyn:runNumber``, ... (plus the
``DataHeader`` and ``EventTag`` RNTuples, which the index does not need). In both, ``##Params`` holds the file's
GUID (``[NAME=FID]``) and the entry number is the event's ``oid``.

The trigger decisions are in ``xTrigDecision`` and the menus in the file's metadata (``eventindex.xaod_trigger``):
records carry the six masks and the menu keys, and their schema metadata ``eventindex.menus`` the file's menus,
which the catalogue saves at load. A file without ``xTrigDecision`` gives null L1/HLT masks (not zero ones: zero
would claim the event passed no trigger), menu keys 0, and the schema metadata ``eventindex.trigger = none``.
Simulation has no stream; data gets the dataset's stream, as with our own files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import uproot

from . import xaod_trigger
from .errors import ProducerError
from .naming import DatasetName
from .schema import HLT_MASKS, L1_MASKS, MENUS_KEY, identity_columns, record_schema
from .trigger import TriggerMenu, masks_to_arrow

XAOD_TREE = "CollectionTree"
XAOD_RNTUPLE = "EventData"
# the static aux store first (Run 2 AOD), then the dynamic one (slimmed DAODs, Run 3)
STORES = ("EventInfoAux", "EventInfoAuxDyn")
SEPARATOR = {"TTree": ".", "RNTuple": ":"}

# record column -> (EventInfo attribute, record dtype)
REQUIRED = {
    "run_number": ("runNumber", np.uint32),
    "event_number": ("eventNumber", np.uint64),
    "lumi_block": ("lumiBlock", np.uint32),
    "bcid": ("bcid", np.uint16),
    "timestamp": ("timeStamp", np.uint32),
}
OPTIONAL = {"timestamp_ns": ("timeStampNSOffset", np.uint32)}
MC_CHANNEL = ("mc_channel_number", "mcChannelNumber", np.uint32)
MC_WEIGHTS = "mcEventWeights"
STREAM_TAGS = "streamTagNames"


@dataclass
class XAODEvents:
    """The index fields of one xAOD file, one row per entry (the entry number is the ``oid``)."""

    layout: str  # "TTree" | "RNTuple"
    columns: dict[str, np.ndarray]  # REQUIRED and OPTIONAL columns, plus mc_channel_number for simulation
    mc_event_weight: pa.Array | None  # the first MC weight (float32, null where an event has none)
    stream_tags: list[str]  # the stream tag names any event carries (empty when the file has none)
    decisions: xaod_trigger.Decisions | None = None  # None: the file has no xTrigDecision
    menus: tuple[TriggerMenu, ...] = ()  # the menus in the file's metadata

    def __len__(self) -> int:
        return len(self.columns["event_number"])


def _fail(path: str, why: str) -> ProducerError:
    return ProducerError(f"{path}: {why}; nothing written")


def holds_xaod(handle: uproot.ReadOnlyDirectory) -> bool:
    return XAOD_TREE in handle or XAOD_RNTUPLE in handle


def read_xaod(handle: uproot.ReadOnlyDirectory, path: str, mc: bool) -> XAODEvents:
    """Read EventInfo of every event in one vectorised read; ``mc`` makes the MC channel number required."""
    if XAOD_TREE in handle:
        layout, events = "TTree", handle[XAOD_TREE]
        present = set(events.keys(full_paths=False))
    else:
        layout, events = "RNTuple", handle[XAOD_RNTUPLE]
        present = set(events.keys())
    container = XAOD_TREE if layout == "TTree" else XAOD_RNTUPLE

    def find(attr: str) -> str | None:
        return next((n for s in STORES if (n := f"{s}{SEPARATOR[layout]}{attr}") in present), None)

    wanted = {**REQUIRED, **OPTIONAL, **({MC_CHANNEL[0]: MC_CHANNEL[1:]} if mc else {})}
    names = {col: find(attr) for col, (attr, _) in wanted.items()}
    missing = [f"{STORES[0]}{SEPARATOR[layout]}{wanted[c][0]}" for c, n in names.items()
               if n is None and c not in OPTIONAL]
    if missing:
        raise _fail(path, f"xAOD {layout} '{container}' lacks EventInfo {', '.join(missing)}")
    extra = {k: find(a) for k, a in (("weights", MC_WEIGHTS), ("streams", STREAM_TAGS))}
    trigger = xaod_trigger.decision_branches(present, SEPARATOR[layout], path)
    branches = [n for n in (*names.values(), *extra.values(), *trigger.values()) if n]
    try:
        arrays = events.arrays(branches, library="ak")
    except Exception as exc:  # uproot raises many types for a damaged file
        raise _fail(path, f"cannot read EventInfo from '{container}' ({type(exc).__name__}: {exc}); "
                          "the file may be truncated") from None

    n = len(arrays)
    columns = {}
    for col, name in names.items():
        attr, dtype = wanted[col]
        columns[col] = np.zeros(n, dtype) if name is None else _as_integers(path, name, arrays[name], dtype)
    weight = None
    if extra["weights"]:
        first = ak.firsts(_numeric(path, extra["weights"], arrays[extra["weights"]], jagged=True), axis=1)
        weight = pa.array(ak.to_numpy(ak.fill_none(first, 0)).astype(np.float32),
                          mask=ak.to_numpy(ak.is_none(first)))
    tags: list[str] = []
    if extra["streams"]:
        flat = ak.flatten(arrays[extra["streams"]], axis=None)
        if len(flat):
            tags = sorted(pc.unique(ak.to_arrow(flat, extensionarray=False)).to_pylist())
    menus = tuple(xaod_trigger.read_menus(handle, path))
    decisions = xaod_trigger.decisions(arrays, trigger, list(menus), path) if trigger else None
    return XAODEvents(layout, columns, weight, tags, decisions, menus)


def _numeric(path: str, name: str, array: ak.Array, jagged: bool = False) -> ak.Array:
    content = array.layout.content if jagged and array.ndim == 2 else array.layout
    ok = array.ndim == (2 if jagged else 1) and getattr(content, "is_numpy", False) \
        and np.dtype(content.dtype).kind in ("uif" if jagged else "ui")
    if not ok:
        raise _fail(path, f"branch {name} is {array.type.content}, expected "
                          f"{'a vector of numbers' if jagged else 'an integer'} per event")
    return array


def _as_integers(path: str, name: str, array: ak.Array, dtype) -> np.ndarray:
    values = ak.to_numpy(_numeric(path, name, array))
    if len(values) and (values.min() < 0 or values.max() > np.iinfo(dtype).max):
        raise _fail(path, f"branch {name} holds {values.max() if values.max() > 0 else values.min()}, "
                          f"out of range for {np.dtype(dtype).name}")
    return values.astype(dtype, copy=False)


def stream_refusal(events: XAODEvents, dataset: DatasetName) -> str | None:
    """Why a data file's stream tags say it is not of the dataset's stream (None when they agree or are absent).

    A dataset ``<type>_<name>`` (``physics_Main``) holds events the trigger tagged ``<name>``; a file none of whose
    events carries that tag belongs to another stream. Simulation copies the tags of its pile-up: not checked.
    """
    if dataset.is_mc or not dataset.stream or not events.stream_tags:
        return None
    name = dataset.stream.split("_", 1)[-1]
    if name in events.stream_tags:
        return None
    return f"no event carries the stream tag {name!r} of {dataset.stream} (the file's tags: " \
           f"{', '.join(events.stream_tags)})"


def to_records(events: XAODEvents, fid: str, dataset: DatasetName) -> pa.Table:
    """Index records of one xAOD file: EventInfo, the own reference ``(fid, entry)``, the trigger decisions (null
    masks without them), and the file's menus in the schema metadata."""
    n = len(events)
    found = events.decisions
    meta = {MENUS_KEY: json.dumps([m.to_json() for m in events.menus])} if events.menus else None
    schema = record_schema([dataset.datatype], meta, trigger=found is not None,
                           **({"hlt_nbytes": found.hlt_nbytes} if found else {}))
    cols: dict[str, pa.Array] = {name: pa.array(events.columns[name]) for name in (*REQUIRED, *OPTIONAL)}
    cols.update(identity_columns(dataset, fid, n, events.columns.get("mc_channel_number"), events.mc_event_weight))
    for key in ("smk", "l1psk", "hltpsk"):
        cols[key] = pa.array(found.keys[key] if found else np.zeros(n, np.uint32))
    for m in (*L1_MASKS, *HLT_MASKS):
        cols[m] = masks_to_arrow(found.masks[m]) if found else null_masks(n, schema.field(m).type.byte_width)
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


def null_masks(n: int, width: int) -> pa.FixedSizeBinaryArray:
    """``n`` null masks whose (ignored) bytes are zero, so code that reads the buffer sees no bit set."""
    validity = pa.py_buffer(np.zeros((n + 7) // 8, np.uint8))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [validity, pa.py_buffer(np.zeros(n * width,
                                                                                                    np.uint8))],
                                                null_count=n)
