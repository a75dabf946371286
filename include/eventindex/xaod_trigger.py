"""The trigger in real ATLAS xAOD files: each event's decisions (``xTrigDecision``) and the menus that name its bits,
from the file's own metadata.

Per event, ``xTrigDecisionAux`` holds the Level-1 words ``tbp``, ``tap``, ``tav`` (before prescale, after prescale,
after veto: 16 32-bit words, one bit per CTP id) and the HLT words ``efPassedPhysics``, ``efPrescaled``,
``efResurrected`` (one bit per chain counter); ``TrigConfKeys`` holds the SMK and the L1 and HLT prescale keys.
Bit ``b`` is bit ``b % 32`` of word ``b // 32``: the words, as little-endian bytes, are our masks as they stand
(bit ``b % 8`` of byte ``b // 8``), so decoding is one copy. Run 2 (TTree ``CollectionTree``) names them
``xTrigDecisionAux.tav``, Run 3 (RNTuple ``EventData``) ``xTrigDecisionAux:tav``.

The menus, keyed by SMK, are in the ``MetaData`` tree: Run 2 as ``xAOD::TriggerMenu`` (``TriggerMenuAux.``: chain
counters and names, CTP ids and item names, L1 seeds), Run 3 as the JSON payloads of ``TriggerMenuJson_HLT``
(chains by name with their ``counter``, ``l1item``, ``streams``) and ``TriggerMenuJson_L1`` (items by name with
their ``ctpid``). The HLT masks get the width the file needs (``schema.hlt_width``): its menus' highest chain
counter and its highest bit set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import awkward as ak
import numpy as np

from .errors import ProducerError
from .schema import HLT_MASKS, HLT_MAX_BITS, L1_BITS, L1_MASKS, hlt_width
from .trigger import TriggerMenu

DECISION = "xTrigDecisionAux"
WORDS = {"l1_tbp": "tbp", "l1_tap": "tap", "l1_tav": "tav",
         "hlt_passed": "efPassedPhysics", "hlt_prescaled": "efPrescaled", "hlt_resurrected": "efResurrected"}
CONF_KEYS = "TrigConfKeys"
KEY_FIELDS = {"smk": "m_smk", "l1psk": "m_l1psk", "hltpsk": "m_hltpsk"}
RUN2_MENU = "TriggerMenuAux"
RUN2_FIELDS = ("smk", "itemCtpIds", "itemNames", "chainIds", "chainNames", "chainParentNames")
RUN3_MENUS = {"HLT": "TriggerMenuJson_HLTAux", "L1": "TriggerMenuJson_L1Aux"}


@dataclass
class Decisions:
    """The trigger decisions of one file's events: the menu keys and the six masks as ``(N, nbytes)`` uint8."""

    keys: dict[str, np.ndarray]  # smk, l1psk, hltpsk (uint32)
    masks: dict[str, np.ndarray]  # l1_* 64 bytes; hlt_* the width ``hlt_nbytes``

    @property
    def hlt_nbytes(self) -> int:
        return self.masks[HLT_MASKS[0]].shape[1]


def _fail(path: str, why: str) -> ProducerError:
    return ProducerError(f"{path}: {why}; nothing written")


def decision_branches(present: set[str], sep: str, path: str) -> dict[str, str]:
    """The branch (field) of each mask column and menu key, or ``{}`` when the file has no trigger decisions."""
    names = {col: f"{DECISION}{sep}{attr}" for col, attr in WORDS.items()}
    found = [n for n in names.values() if n in present]
    if not found:
        return {}
    if len(found) < len(names):
        missing = sorted(set(names.values()) - present)
        raise _fail(path, f"xTrigDecision lacks {', '.join(missing)}")
    if CONF_KEYS in present:
        names[CONF_KEYS] = CONF_KEYS
    elif (smk := f"{DECISION}{sep}smk") in present:
        names["smk"] = smk
    else:
        raise _fail(path, f"xTrigDecision carries no menu key ({CONF_KEYS} or {DECISION}{sep}smk)")
    return names


def _words(path: str, name: str, array: ak.Array) -> np.ndarray:
    """A jagged array of uint32 words per event -> ``(N, 4 * longest)`` little-endian bytes, shorter rows zero-padded."""
    content = array.layout.content if array.ndim == 2 else None
    if content is None or not getattr(content, "is_numpy", False) or np.dtype(content.dtype).kind not in "ui":
        raise _fail(path, f"branch {name} is {array.type.content}, expected a vector of 32-bit words per event")
    counts = ak.to_numpy(ak.num(array, axis=1))
    flat = ak.to_numpy(ak.flatten(array, axis=1))
    if len(flat) and (flat.max() > 0xFFFFFFFF or flat.min() < 0):
        raise _fail(path, f"branch {name} holds a value that is not a 32-bit word")
    n, width = len(counts), int(counts.max()) if len(counts) else 0
    if len(counts) and (counts == width).all():
        words = flat.astype("<u4", copy=False).reshape(n, width)
    else:
        words = np.zeros((n, width), "<u4")
        rows = np.repeat(np.arange(n), counts)
        cols = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
        words[rows, cols] = flat
    return np.ascontiguousarray(words).view(np.uint8).reshape(n, 4 * width)


def _fit(masks: np.ndarray, nbytes: int, path: str, name: str) -> np.ndarray:
    """``masks`` cut or zero-padded to ``nbytes`` per row; a bit set beyond is refused."""
    have = masks.shape[1]
    if have > nbytes:
        if masks[:, nbytes:].any():
            raise _fail(path, f"branch {name} sets a bit beyond {nbytes * 8}")
        return np.ascontiguousarray(masks[:, :nbytes])
    if have < nbytes:
        out = np.zeros((len(masks), nbytes), np.uint8)
        out[:, :have] = masks
        return out
    return masks


def _highest_bit(masks: np.ndarray) -> int:
    used = np.flatnonzero(masks.any(axis=0))
    return int(used[-1]) * 8 + 7 if len(used) else -1


def decisions(arrays: ak.Array, names: dict[str, str], menus: list[TriggerMenu], path: str) -> Decisions:
    """The decisions of every event from the branches ``names`` (``decision_branches``) read into ``arrays``."""
    raw = {col: _words(path, names[col], arrays[names[col]]) for col in WORDS}
    top = max([len(m.hlt_chains) - 1 for m in menus] + [_highest_bit(raw[c]) for c in HLT_MASKS])
    if top >= HLT_MAX_BITS:
        raise _fail(path, f"HLT bit {top} is beyond the widest mask ({HLT_MAX_BITS} bits)")
    nbytes = {**{c: L1_BITS // 8 for c in L1_MASKS}, **{c: hlt_width(top) for c in HLT_MASKS}}
    masks = {col: _fit(m, nbytes[col], path, names[col]) for col, m in raw.items()}
    n = len(arrays)
    if CONF_KEYS in names:
        conf = arrays[CONF_KEYS]
        keys = {col: ak.to_numpy(conf[attr]).astype(np.uint32) for col, attr in KEY_FIELDS.items()}
    else:
        keys = {"smk": ak.to_numpy(arrays[names["smk"]]).astype(np.uint32),
                "l1psk": np.zeros(n, np.uint32), "hltpsk": np.zeros(n, np.uint32)}
    return Decisions(keys, masks)


# --- the menus in the file's metadata ------------------------------------------------------------------------------


def read_menus(handle, path: str) -> list[TriggerMenu]:
    """The trigger menus in an open file's ``MetaData`` (TTree or RNTuple), Run 2 or Run 3 layout; ``[]`` without."""
    if "MetaData" not in handle:
        return []
    meta = handle["MetaData"]
    present = set(meta.keys(full_paths=False) if hasattr(meta, "branches") else meta.keys())
    for sep in (".", ":"):
        run2 = {f: f"{RUN2_MENU}{sep}{f}" for f in RUN2_FIELDS}
        if all(n in present for n in run2.values()):
            return _run2_menus({f: meta[n].array(library="np") for f, n in run2.items()}, path)
        run3 = {(level, f): f"{store}{sep}{f}" for level, store in RUN3_MENUS.items() for f in ("key", "payload")}
        if run3[("HLT", "key")] in present and run3[("HLT", "payload")] in present:
            arrays = {k: ak.flatten(meta[n].array(library="ak"), axis=None).tolist()
                      for k, n in run3.items() if n in present}
            return _run3_menus(arrays, path)
    return []


def _run2_menus(data: dict, path: str) -> list[TriggerMenu]:
    menus: dict[int, TriggerMenu] = {}
    for entry in range(len(data["smk"])):
        for i, smk in enumerate(int(s) for s in data["smk"][entry]):
            if smk and smk not in menus:
                l1 = {int(c): str(n) for c, n in zip(data["itemCtpIds"][entry][i], data["itemNames"][entry][i])
                      if int(c) < L1_BITS}
                chains = list(zip(data["chainIds"][entry][i], data["chainNames"][entry][i],
                                  data["chainParentNames"][entry][i]))
                menus[smk] = _menu(smk, "from file metadata (xAOD::TriggerMenu)", l1,
                                   {int(c): str(n) for c, n, _ in chains}, {str(n): str(s) for _, n, s in chains if s},
                                   {}, path)
    return list(menus.values())


def _run3_menus(arrays: dict, path: str) -> list[TriggerMenu]:
    l1_by_key = {}
    for key, payload in zip(arrays.get(("L1", "key"), []), arrays.get(("L1", "payload"), [])):
        items = _json(payload, path, f"L1 menu {key}").get("items", {})
        l1_by_key[int(key)] = {int(item["ctpid"]): name for name, item in items.items()
                               if isinstance(item, dict) and 0 <= int(item.get("ctpid", -1)) < L1_BITS}
    menus: dict[int, TriggerMenu] = {}
    for key, payload in zip(arrays[("HLT", "key")], arrays[("HLT", "payload")]):
        smk = int(key)
        if not smk or smk in menus:
            continue
        doc = _json(payload, path, f"HLT menu {smk}")
        chains = doc.get("chains")
        if not isinstance(chains, dict) or not all(isinstance(c, dict) and "counter" in c for c in chains.values()):
            raise _fail(path, f"HLT menu {smk} in TriggerMenuJson_HLT has no chains with counters")
        streams = {}
        for name, chain in chains.items():
            named = [s if isinstance(s, str) else s.get("name") for s in chain.get("streams") or []]
            if named and named[0]:
                streams[name] = str(named[0])
        menus[smk] = _menu(smk, str(doc.get("name") or "from file metadata (TriggerMenuJson)"),
                           l1_by_key.get(smk, {}), {int(c["counter"]): name for name, c in chains.items()},
                           {name: str(c["l1item"]) for name, c in chains.items() if c.get("l1item")}, streams, path)
    return list(menus.values())


def _json(payload: str, path: str, what: str) -> dict:
    try:
        doc = json.loads(payload)
    except (ValueError, TypeError):
        raise _fail(path, f"{what} in the file's metadata is not JSON") from None
    if not isinstance(doc, dict):
        raise _fail(path, f"{what} in the file's metadata is not a JSON object")
    return doc


def _menu(smk: int, origin: str, l1: dict[int, str], hlt: dict[int, str], seeds: dict, streams: dict,
          path: str) -> TriggerMenu:
    bad = [c for c in hlt if not 0 <= c < HLT_MAX_BITS]
    if bad:
        raise _fail(path, f"menu SMK {smk} has HLT chain counter {bad[0]}, outside 0-{HLT_MAX_BITS - 1}")
    items = [None] * (max(l1, default=-1) + 1)
    for ctp, name in l1.items():
        items[ctp] = name
    chains = [None] * (max(hlt, default=-1) + 1)
    for counter, name in hlt.items():
        chains[counter] = name
    try:
        return TriggerMenu(smk=smk, name=f"SMK {smk} {origin}", l1_items=tuple(items), hlt_chains=tuple(chains),
                           hlt_seeds=seeds, hlt_streams=streams)
    except ValueError as exc:  # a name twice
        raise _fail(path, str(exc)) from None
