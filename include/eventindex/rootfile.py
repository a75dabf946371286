"""The layout of a data file, shared by the simulator (which writes) and the producer (which reads).

Like a POOL file: TTree ``events`` with one entry per event (the entry number is the event's ``oid``), and a
``##Params`` tree whose ``db_string`` entries carry ``[NAME=FID][VALUE=<GUID>]``, the file's GUID, and for real data
``[NAME=STREAM][VALUE=<stream>]``, the trigger stream the file was written for (as an ATLAS file's in-file metadata
says ``triggerStreamOfFile``). The file name carries the same GUID. Upstream references (provenance) are branches
``prov_<STAGE>_guid`` (16 bytes) and ``prov_<STAGE>_oid``.
"""

from __future__ import annotations

import re

import awkward as ak
import numpy as np
import uproot

from .schema import HLT_BITS, HLT_MASKS, L1_BITS, L1_MASKS

EVENTS_TREE = "events"
PARAMS_TREE = "##Params"
FID_RE = re.compile(r"\[NAME=FID\]\[VALUE=([0-9A-Fa-f-]{36})\]")
STREAM_RE = re.compile(r"\[NAME=STREAM\]\[VALUE=([A-Za-z0-9_]+)\]")

# branch -> numpy dtype (and the inner shape for fixed-size arrays)
INDEX_BRANCHES: dict[str, tuple[str, tuple[int, ...]]] = {
    "run_number": ("<u4", ()),
    "event_number": ("<u8", ()),
    "lumi_block": ("<u4", ()),
    "bcid": ("<u2", ()),
    "timestamp": ("<u4", ()),
    "timestamp_ns": ("<u4", ()),
    "smk": ("<u4", ()),
    "l1psk": ("<u4", ()),
    "hltpsk": ("<u4", ()),
    **{m: ("<u8", (L1_BITS // 64,)) for m in L1_MASKS},
    **{m: ("<u8", (HLT_BITS // 64,)) for m in HLT_MASKS},
}
MC_BRANCHES = {"mc_channel_number": ("<u4", ()), "mc_event_weight": ("<f4", ())}
PROV_RE = re.compile(r"^prov_(.+)_guid$")


def prov_branches(stage: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {f"prov_{stage}_guid": ("u1", (16,)), f"prov_{stage}_oid": ("<u8", ())}


def write_events_file(path, guid: str, columns: dict[str, np.ndarray], payload: dict[str, ak.Array],
                      compression=None, stream: str | None = None) -> None:
    """Write one data file: the index branches in ``columns`` plus jagged physics ``payload`` records; ``stream``:
    the trigger stream of a real-data file (the producer refuses it for a dataset of another stream)."""
    types = {}
    for name, array in columns.items():
        types[name] = (array.dtype, array.shape[1:]) if array.ndim > 1 else array.dtype
    for name, array in payload.items():
        types[name] = array.type.content
    with uproot.recreate(path, compression=compression or uproot.ZSTD(1)) as out:
        out.mktree(EVENTS_TREE, types, title="EventIndex simulated events")
        out[EVENTS_TREE].extend({**columns, **payload})
        params = [f"[NAME=FID][VALUE={guid}]"] + ([f"[NAME=STREAM][VALUE={stream}]"] if stream else [])
        out[PARAMS_TREE] = {"db_string": np.array(params)}


def read_stream(handle: uproot.ReadOnlyDirectory) -> str | None:
    """The trigger stream the file says it was written for (None: it does not say, as files written before it)."""
    if PARAMS_TREE not in handle:
        return None
    for entry in handle[PARAMS_TREE]["db_string"].array(library="np"):
        m = STREAM_RE.search(str(entry))
        if m:
            return m.group(1)
    return None


def read_fid(handle: uproot.ReadOnlyDirectory) -> str | None:
    if PARAMS_TREE not in handle:
        return None
    for entry in handle[PARAMS_TREE]["db_string"].array(library="np"):
        m = FID_RE.search(str(entry))
        if m:
            return m.group(1).upper()
    return None
