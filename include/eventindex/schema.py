"""The index record: one Arrow schema for every event of every format.

Masks are fixed-size binary (bit ``b`` is bit ``b % 8`` of byte ``b // 8``, which is also bit ``b % 32`` of the
little-endian 32-bit word ``b // 32`` that ATLAS's xTrigDecision stores): 512 bits for each Level-1 mask (before
prescale, after prescale, after veto: the CTP's 512 items) and, for each HLT mask (passed, prescaled, resurrected),
a width per dataset: 1024 bits by default (our simulated menus), wider where a real menu's chain counters go
further (a 2018 menu reaches counter 4241, a 2023 one ~2,500 chains). The width is a multiple of 64 bits and the
three HLT masks of a record share it; ``widen_hlt`` pads narrower records with zeros when parts are combined.
References are one ``(guid, oid)`` pair of columns per processing stage present: the record's own file and its
upstream ones (an AOD record also points at its RAW entry): that is the event's provenance.
"""

from __future__ import annotations

import re

import pyarrow as pa

SCHEMA_VERSION = "1"
L1_BITS = 512
HLT_BITS = 1024  # the default (and least) HLT mask width
HLT_MAX_BITS = 65536  # the widest HLT mask (chain counters below it); the trigger index keys bits by level * 65536
L1_MASKS = ("l1_tbp", "l1_tap", "l1_tav")
HLT_MASKS = ("hlt_passed", "hlt_prescaled", "hlt_resurrected")
STAGE_ORDER = ("RAW", "ESD", "AOD")  # then DAOD_* alphabetically
STAGE_RE = re.compile(r"^(RAW|ESD|AOD|EVNT|HITS|RDO|(DAOD|DESD|DRAW)_[A-Z0-9]+)$")

GUID_TYPE = pa.binary(16)
TRIGGER_KEY = "eventindex.trigger"  # schema metadata: "none" when the records carry no trigger masks
MENUS_KEY = "eventindex.menus"  # schema metadata: JSON list of the menus (TriggerMenu.to_json) the files carried

BASE_FIELDS = [
    pa.field("run_number", pa.uint32(), nullable=False),
    pa.field("event_number", pa.uint64(), nullable=False),
    pa.field("lumi_block", pa.uint32(), nullable=False),
    pa.field("bcid", pa.uint16(), nullable=False),
    pa.field("timestamp", pa.uint32(), nullable=False),  # seconds since the epoch (UTC)
    pa.field("timestamp_ns", pa.uint32(), nullable=False),
    pa.field("stream", pa.dictionary(pa.int8(), pa.string())),  # null for simulation
    pa.field("smk", pa.uint32(), nullable=False),  # super master key: which menu decodes the masks
    pa.field("l1psk", pa.uint32(), nullable=False),
    pa.field("hltpsk", pa.uint32(), nullable=False),
    *[pa.field(m, pa.binary(L1_BITS // 8), nullable=False) for m in L1_MASKS],
    *[pa.field(m, pa.binary(HLT_BITS // 8), nullable=False) for m in HLT_MASKS],
    pa.field("mc_channel_number", pa.uint32()),  # null for real data
    pa.field("mc_event_weight", pa.float32()),
]


def hlt_width(max_bit: int) -> int:
    """The HLT mask width in bytes that holds bit ``max_bit`` (-1: none): a multiple of 8, at least ``HLT_BITS``."""
    if max_bit >= HLT_MAX_BITS:
        raise ValueError(f"HLT bit {max_bit} is beyond the widest mask ({HLT_MAX_BITS} bits)")
    return max(HLT_BITS // 8, (max_bit // 64 + 1) * 8)


def is_hlt_mask_type(t: pa.DataType) -> bool:
    """Whether ``t`` is an HLT mask column type: fixed-size binary of a width ``hlt_width`` can give."""
    return pa.types.is_fixed_size_binary(t) and t.byte_width % 8 == 0 and \
        HLT_BITS // 8 <= t.byte_width <= HLT_MAX_BITS // 8


def hlt_bytes(schema: pa.Schema) -> int:
    return schema.field(HLT_MASKS[0]).type.byte_width


def widen_hlt(table: pa.Table, nbytes: int) -> pa.Table:
    """``table`` with its HLT masks padded with zero bytes to ``nbytes`` (nulls stay null)."""
    import numpy as np

    have = hlt_bytes(table.schema)
    if have == nbytes:
        return table
    if have > nbytes:
        raise ValueError(f"cannot narrow HLT masks from {have} to {nbytes} bytes")
    for name in HLT_MASKS:
        i = table.schema.get_field_index(name)
        column = table.column(i).combine_chunks()
        n = len(column)
        wide = np.zeros((n, nbytes), np.uint8)
        if n:
            data = np.frombuffer(column.buffers()[1], np.uint8)[column.offset * have:(column.offset + n) * have]
            wide[:, :have] = data.reshape(n, have)
        validity = column.buffers()[0] if column.null_count else None
        if validity is not None and column.offset:
            validity = pa.array(column.is_valid()).buffers()[1]
        array = pa.FixedSizeBinaryArray.from_buffers(pa.binary(nbytes), n, [validity, pa.py_buffer(wide)],
                                                     null_count=column.null_count)
        table = table.set_column(i, table.schema.field(i).with_type(pa.binary(nbytes)), array)
    return table


def unify_hlt(tables: list[pa.Table]) -> list[pa.Table]:
    """Tables of records whose HLT masks may differ in width, widened to the widest."""
    widths = {hlt_bytes(t.schema) for t in tables if HLT_MASKS[0] in t.schema.names}
    if len(widths) <= 1:
        return tables
    return [widen_hlt(t, max(widths)) if HLT_MASKS[0] in t.schema.names else t for t in tables]


def merged_menus(tables: list[pa.Table]) -> bytes | None:
    """The ``eventindex.menus`` metadata of ``tables`` as one JSON list (each distinct menu once, by content);
    ValueError when one is not a JSON list."""
    import json

    found: dict[str, dict] = {}
    for t in tables:
        raw = (t.schema.metadata or {}).get(MENUS_KEY.encode())
        if raw:
            try:
                menus = json.loads(raw)
            except ValueError:
                raise ValueError(f"the records' {MENUS_KEY} metadata is not JSON") from None
            if not isinstance(menus, list) or not all(isinstance(m, dict) for m in menus):
                raise ValueError(f"the records' {MENUS_KEY} metadata is not a list of menus")
            for m in menus:
                found.setdefault(json.dumps(m, sort_keys=True), m)
    return json.dumps(list(found.values())).encode() if found else None


def concat_records(tables: list[pa.Table]) -> pa.Table:
    """Record tables as one: HLT masks widened to the widest (``unify_hlt``), the first table's metadata with the
    menus of all (``merged_menus``). ValueError (pyarrow's ArrowInvalid is one) when they do not fit together."""
    menus = merged_menus(tables)
    table = pa.concat_tables(unify_hlt(tables), promote_options="none")
    if menus:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), MENUS_KEY.encode(): menus})
    return table


def stage_key(stage: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(stage), stage) if stage in STAGE_ORDER else (len(STAGE_ORDER), stage)


def ref_columns(stage: str) -> tuple[str, str]:
    """The column names of the reference to a processing stage: ``(<stage>_guid, <stage>_oid)``."""
    if not STAGE_RE.match(stage):
        raise ValueError(f"not a processing stage: {stage!r}")
    return f"{stage}_guid", f"{stage}_oid"


def identity_columns(dataset, fid: str, n: int, mc_channel=None, mc_weight=None) -> dict[str, pa.Array]:
    """The columns every reader of data files fills alike for ``n`` events of one file of ``dataset`` (a
    ``naming.DatasetName``): the dataset's stream, the MC fields (null for real data) and the record's own
    reference, ``(fid, entry number)``."""
    import numpy as np

    from .guid import guid_bytes

    cols: dict[str, pa.Array] = {"stream": pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, np.int8) if dataset.stream else np.full(n, None), type=pa.int8()),
        pa.array([dataset.stream or ""]))}
    if dataset.is_mc:
        cols["mc_channel_number"] = pa.array(mc_channel)
        cols["mc_event_weight"] = pa.nulls(n, pa.float32()) if mc_weight is None else pa.array(mc_weight)
    else:
        cols["mc_channel_number"] = pa.nulls(n, pa.uint32())
        cols["mc_event_weight"] = pa.nulls(n, pa.float32())
    own_guid, own_oid = ref_columns(dataset.datatype)
    cols[own_guid] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n,
                                                          [None, pa.py_buffer(guid_bytes(fid) * n)])
    cols[own_oid] = pa.array(np.arange(n, dtype=np.uint64))
    return cols


def record_schema(stages: list[str] | tuple[str, ...], metadata: dict[str, str] | None = None,
                  trigger: bool = True, hlt_nbytes: int = HLT_BITS // 8) -> pa.Schema:
    """The schema of index records that carry references to ``stages`` (the own stage and its upstream ones).

    ``trigger=False``: records of files without trigger information (real xAOD): the masks are nullable (and
    null) and the metadata says ``eventindex.trigger = none``. ``hlt_nbytes``: the HLT masks' width (``hlt_width``).
    """
    fields = [f.with_type(pa.binary(hlt_nbytes)) if f.name in HLT_MASKS else f for f in BASE_FIELDS]
    if not trigger:
        fields = [f.with_nullable(True) if f.name in (*L1_MASKS, *HLT_MASKS) else f for f in fields]
    if not trigger:
        metadata = {TRIGGER_KEY: "none", **(metadata or {})}
    for stage in sorted(set(stages), key=stage_key):
        guid_col, oid_col = ref_columns(stage)
        fields += [pa.field(guid_col, GUID_TYPE, nullable=False), pa.field(oid_col, pa.uint64(), nullable=False)]
    meta = {"eventindex.schema_version": SCHEMA_VERSION, **(metadata or {})}
    return pa.schema(fields, metadata={k.encode(): v.encode() for k, v in meta.items()})


def stages_of(schema: pa.Schema) -> list[str]:
    return [name[: -len("_guid")] for name in schema.names if name.endswith("_guid")]
