"""The index record: one Arrow schema for every event of every format.

Masks are fixed-size binary (bit ``b`` is bit ``b % 8`` of byte ``b // 8``): 512 bits for each Level-1 mask
(before prescale, after prescale, after veto) and 1024 for each HLT mask (passed, prescaled, resurrected).
References are one ``(guid, oid)`` pair of columns per processing stage present: the record's own file and its
upstream ones (an AOD record also points at its RAW entry): that is the event's provenance.
"""

from __future__ import annotations

import re

import pyarrow as pa

SCHEMA_VERSION = "1"
L1_BITS = 512
HLT_BITS = 1024
L1_MASKS = ("l1_tbp", "l1_tap", "l1_tav")
HLT_MASKS = ("hlt_passed", "hlt_prescaled", "hlt_resurrected")
STAGE_ORDER = ("RAW", "ESD", "AOD")  # then DAOD_* alphabetically
STAGE_RE = re.compile(r"^(RAW|ESD|AOD|EVNT|HITS|RDO|(DAOD|DESD|DRAW)_[A-Z0-9]+)$")

GUID_TYPE = pa.binary(16)
TRIGGER_KEY = "eventindex.trigger"  # schema metadata: "none" when the records carry no trigger masks

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
                  trigger: bool = True) -> pa.Schema:
    """The schema of index records that carry references to ``stages`` (the own stage and its upstream ones).

    ``trigger=False``: records of files without trigger information (real xAOD): the masks are nullable (and
    null) and the metadata says ``eventindex.trigger = none``.
    """
    fields = list(BASE_FIELDS) if trigger else [f.with_nullable(True) if f.name in (*L1_MASKS, *HLT_MASKS) else f
                                                for f in BASE_FIELDS]
    if not trigger:
        metadata = {TRIGGER_KEY: "none", **(metadata or {})}
    for stage in sorted(set(stages), key=stage_key):
        guid_col, oid_col = ref_columns(stage)
        fields += [pa.field(guid_col, GUID_TYPE, nullable=False), pa.field(oid_col, pa.uint64(), nullable=False)]
    meta = {"eventindex.schema_version": SCHEMA_VERSION, **(metadata or {})}
    return pa.schema(fields, metadata={k.encode(): v.encode() for k, v in meta.items()})


def stages_of(schema: pa.Schema) -> list[str]:
    return [name[: -len("_guid")] for name in schema.names if name.endswith("_guid")]
