"""Trigger menus and the bit masks of trigger decisions.

A menu is identified by its super master key (SMK): it maps Level-1 bit positions to item names (L1_EM22VHI)
and HLT bit positions to chain names (HLT_e26_lhtight_ivarloose_L1EM22VHI), and names each chain's L1 seed.
Prescale sets (L1 and HLT prescale keys) say how often each item or chain is kept; they change during a run,
the menu does not. Masks decode through the menu of the run they were taken in: the same name can sit at
different bits in two menus.

Masks are handled as ``(N, nbytes)`` uint8 matrices, bit ``b`` at bit ``b % 8`` of byte ``b // 8``, so that
encoding, decoding and selecting are whole-array numpy operations.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from .errors import BadRequest, UnknownTrigger
from .schema import HLT_BITS, HLT_MAX_BITS, L1_BITS, hlt_width


def close_matches(word: str, possibilities, n: int = 5) -> list[str]:
    """The ``n`` names nearest to ``word``, nearest first, for "did you mean" hints.

    Names that extend what was typed come first, shortest first (``HLT_mu26_ivarmedium`` -> the chain
    ``HLT_mu26_ivarmedium_L1MU14FCH``, whose L1 seed was left off): by edits alone that one is 13 characters away
    and five shorter chains with another threshold would be offered instead. Then names holding it elsewhere
    (``mu26`` -> the ``HLT_mu26_...`` chains), case ignored. The rest is drawn up by difflib, whose ratio alone
    ranks by shared substrings: for HLT_xe10z_cell_L1XE50 it offers xe120 and xe110 before xe100, one typed
    character away, and equal scores come out in reverse alphabetical order. So difflib only draws up the
    shortlist, which is ordered by edits (case ignored, two swapped neighbours count as one), then by difflib's
    ratio, then by name.
    """
    names = list(dict.fromkeys(possibilities))
    low = word.lower()
    extending = sorted((name for name in names if low and low in name.lower()),
                       key=lambda name: (not name.lower().startswith(low), len(name), name))
    if len(extending) >= n:
        return extending[:n]
    shortlist = difflib.get_close_matches(word, names, n=max(4 * n, 20), cutoff=0.6)
    ranked = sorted(shortlist, key=lambda name: (_edits(word.lower(), name.lower()),
                                                 -difflib.SequenceMatcher(None, name, word).ratio(), name))
    return list(dict.fromkeys(extending + ranked))[:n]


LEVELS = ("L1", "HLT")


def trigger_names(menus: dict[int, TriggerMenu], like: str | None = None, level: str | None = None) -> list[dict]:
    """The L1 items and HLT chains of ``menus`` (what a selection's trigger names resolve through), for listing
    and for the suggestions of the Queries form: one entry per name, ``{"name", "level", "smks", "l1_seed",
    "stream"}`` (``smks``: the menus holding it; ``l1_seed`` and ``stream`` of an HLT chain, as its newest menu
    has them), L1 before HLT, then by name.

    ``like``: names holding this text, case ignored; with ``*`` (any characters) or ``?`` (one) it is a pattern
    the whole name matches (``HLT_mu*_L1MU14FCH``). ``level``: ``L1`` or ``HLT``. A bad value raises BadRequest
    naming it.
    """
    import fnmatch

    if level is not None and level.upper() not in LEVELS:
        raise BadRequest(f"level {level!r} is not one of {', '.join(LEVELS)}")
    if like is not None and not like.strip():
        raise BadRequest("like is empty: give a part of the names (or a pattern with * and ?), or leave it out")
    if like is not None and len(like) > 200:
        raise BadRequest(f"like is {len(like)} characters long: at most 200")
    text = like.strip().lower() if like is not None else None
    pattern = text is not None and ("*" in text or "?" in text)
    found: dict[str, dict] = {}
    for smk in sorted(menus):
        menu = menus[smk]
        for lvl in LEVELS:
            if level is not None and lvl != level.upper():
                continue
            for name in menu.names_by_bit(lvl):
                if name is None or (text is not None and not (
                        fnmatch.fnmatchcase(name.lower(), text) if pattern else text in name.lower())):
                    continue
                entry = found.setdefault(name, {"name": name, "level": lvl, "smks": [], "l1_seed": None,
                                                "stream": None})
                entry["smks"].append(smk)
                if lvl == "HLT":
                    entry["l1_seed"] = menu.hlt_seeds.get(name, entry["l1_seed"])
                    entry["stream"] = menu.hlt_streams.get(name, entry["stream"])
    return sorted(found.values(), key=lambda e: (LEVELS.index(e["level"]), e["name"]))


def _edits(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours that turn ``a`` into ``b`` (each counts one)."""
    before, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], before[j - 2] + 1)
        before, prev = prev, cur
    return prev[-1]


@dataclass(frozen=True)
class TriggerMenu:
    smk: int
    name: str
    l1_items: tuple[str | None, ...]  # index = bit
    hlt_chains: tuple[str | None, ...]
    hlt_seeds: dict[str, str] = field(default_factory=dict)  # chain -> L1 item
    hlt_streams: dict[str, str] = field(default_factory=dict)  # chain -> stream it feeds

    def __post_init__(self) -> None:
        if len(self.l1_items) > L1_BITS or len(self.hlt_chains) > HLT_MAX_BITS:
            raise ValueError(f"menu {self.smk} has more items than the masks hold ({L1_BITS} L1, {HLT_MAX_BITS} HLT)")
        index = {}
        for level, names in (("L1", self.l1_items), ("HLT", self.hlt_chains)):
            for bit, name in enumerate(names):
                if name is None:
                    continue
                if name in index:
                    raise ValueError(f"menu {self.smk}: {name} appears twice")
                index[name] = (level, bit)
        object.__setattr__(self, "_index", index)

    @property
    def names(self) -> list[str]:
        return list(self._index)

    def locate(self, name: str) -> tuple[str, int]:
        """``(level, bit)`` of an item or chain; an unknown name raises UnknownTrigger listing close matches."""
        try:
            return self._index[name]
        except KeyError:
            close = close_matches(name, self._index)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownTrigger(f"unknown trigger {name!r} in menu SMK {self.smk} ({self.name}){hint}") from None

    def names_by_bit(self, level: str) -> tuple[str | None, ...]:
        return self.l1_items if level == "L1" else self.hlt_chains

    @property
    def hlt_nbytes(self) -> int:
        """The HLT mask width (bytes) this menu's chain counters need (``schema.hlt_width``)."""
        return hlt_width(len(self.hlt_chains) - 1)

    def difference(self, other: "TriggerMenu") -> str | None:
        """Where two menus of the same SMK disagree, naming the first differing name (None: same items and chains
        at the same bits)."""
        for level in LEVELS:
            mine, theirs = self.names_by_bit(level), other.names_by_bit(level)
            for bit in range(max(len(mine), len(theirs))):
                a = mine[bit] if bit < len(mine) else None
                b = theirs[bit] if bit < len(theirs) else None
                if a != b:
                    what = "CTP id" if level == "L1" else "chain counter"
                    return f"{level} {what} {bit} is {a or 'empty'} in one and {b or 'empty'} in the other"
        return None

    def encode(self, names: list[str]) -> dict[str, bytes]:
        """One event's masks ``{"L1": 64 bytes, "HLT": hlt_nbytes bytes}`` with the bits of ``names`` set."""
        bits = {"L1": np.zeros(L1_BITS, bool), "HLT": np.zeros(self.hlt_nbytes * 8, bool)}
        for name in names:
            level, bit = self.locate(name)
            bits[level][bit] = True
        return {level: np.packbits(b, bitorder="little").tobytes() for level, b in bits.items()}

    def to_json(self) -> dict:
        return {
            "smk": self.smk,
            "name": self.name,
            "l1_items": list(self.l1_items),
            "hlt_chains": list(self.hlt_chains),
            "hlt_seeds": self.hlt_seeds,
            "hlt_streams": self.hlt_streams,
        }

    @classmethod
    def from_json(cls, data: dict) -> "TriggerMenu":
        return cls(
            smk=int(data["smk"]),
            name=data["name"],
            l1_items=tuple(data["l1_items"]),
            hlt_chains=tuple(data["hlt_chains"]),
            hlt_seeds=dict(data.get("hlt_seeds", {})),
            hlt_streams=dict(data.get("hlt_streams", {})),
        )


@dataclass(frozen=True)
class PrescaleSet:
    """A prescale key: item or chain -> prescale (1 keeps all, N keeps one in N, -1 disables)."""

    key: int
    level: str
    prescales: dict[str, float]

    def to_json(self) -> dict:
        return {"key": self.key, "level": self.level, "prescales": self.prescales}

    @classmethod
    def from_json(cls, data: dict) -> "PrescaleSet":
        return cls(int(data["key"]), data["level"], {k: float(v) for k, v in data["prescales"].items()})


def save_menus(path, menus: list[TriggerMenu], prescales: list[PrescaleSet]) -> None:
    with open(path, "w") as fh:
        json.dump({"menus": [m.to_json() for m in menus], "prescales": [p.to_json() for p in prescales]}, fh)


def load_menus(path) -> tuple[dict[int, TriggerMenu], list[PrescaleSet]]:
    with open(path) as fh:
        data = json.load(fh)
    menus = {int(m["smk"]): TriggerMenu.from_json(m) for m in data["menus"]}
    return menus, [PrescaleSet.from_json(p) for p in data.get("prescales", [])]


# --- vectorized mask operations -------------------------------------------------------------------------------


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """``(N, nbits)`` bool -> ``(N, nbits/8)`` uint8 masks."""
    return np.packbits(np.asarray(bits, dtype=bool), axis=1, bitorder="little")


def unpack_bits(masks: np.ndarray) -> np.ndarray:
    """``(N, nbytes)`` uint8 masks -> ``(N, nbytes*8)`` bool."""
    return np.unpackbits(np.asarray(masks, dtype=np.uint8), axis=1, bitorder="little").astype(bool)


def encode_masks(events: list[list[str]], names_by_bit, nbits: int) -> np.ndarray:
    """Each event's list of names -> its mask; unknown names raise UnknownTrigger."""
    index = {name: bit for bit, name in enumerate(names_by_bit) if name is not None}
    rows, cols = [], []
    for row, names in enumerate(events):
        for name in names:
            if name not in index:
                close = close_matches(name, index)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UnknownTrigger(f"unknown trigger {name!r}{hint}")
            rows.append(row)
            cols.append(index[name])
    bits = np.zeros((len(events), nbits), dtype=bool)
    bits[rows, cols] = True
    return pack_bits(bits)


def decode_masks(masks: np.ndarray, names_by_bit) -> list[list[str]]:
    """``(N, nbytes)`` masks -> the names of the bits set in each, in bit order."""
    bits = unpack_bits(masks)
    names = np.array([n if n is not None else "" for n in names_by_bit] + [""] * (bits.shape[1] - len(names_by_bit)),
                     dtype=object)
    rows, cols = np.nonzero(bits)
    split = np.searchsorted(rows, np.arange(1, bits.shape[0]))
    return [[n for n in chunk if n] for chunk in np.split(names[cols], split)]


def bit_is_set(masks: np.ndarray, bit: int) -> np.ndarray:
    """Whether ``bit`` is set, for every row of an ``(N, nbytes)`` mask matrix."""
    return (np.asarray(masks)[:, bit >> 3] >> np.uint8(bit & 7)) & np.uint8(1) == 1


def masks_from_arrow(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A fixed-size binary column -> ``(N, width)`` uint8 view (copied only when chunked)."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            column = column.chunk(0)
        else:
            return np.concatenate([masks_from_arrow(c) for c in column.chunks]) if column.num_chunks else np.empty(
                (0, column.type.byte_width), np.uint8)
    width = column.type.byte_width
    data = np.frombuffer(column.buffers()[1], dtype=np.uint8)
    return data[column.offset * width:(column.offset + len(column)) * width].reshape(len(column), width)


def masks_to_arrow(masks: np.ndarray) -> pa.FixedSizeBinaryArray:
    masks = np.ascontiguousarray(masks, dtype=np.uint8)
    width = masks.shape[1]
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(masks), [None, pa.py_buffer(masks.reshape(-1))])
