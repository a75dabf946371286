"""The trigger index of a dataset version: its distinct trigger patterns, and each event's pattern number.

Events of one run fire the same combinations of triggers over and over, so a dataset's (SMK, L1 after veto, HLT
passed) triples are few next to its events. The load numbers them (the number goes to the key file, 2 or 4 bytes
per event) and writes ``<load_id>.triggers.arrow``: per trigger bit that any pattern has, a packed bitmap over the
patterns (zstd), plus each pattern's SMK and event count. A trigger expression is evaluated on the patterns, once
per dataset, into a table of booleans; an event passes when its pattern does (one gather per event, no mask
decoded). Without event-level cuts a count or an overlap matrix needs no event at all: it sums pattern counts.

File layout (uncompressed Arrow IPC, memory-mapped): rows ``(key: int32, data: binary)``; ``key`` is
``level * 65536 + bit`` (level 0 = L1, 1 = HLT) for bitmaps (``numpy.packbits``, little bit order), ``-1`` for the
SMKs (uint32) and ``-2`` for the event counts (uint64), each zstd-compressed; schema metadata ``patterns``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from ...trigger import masks_from_arrow
from ..records import TRIGGER_COLUMNS

LEVELS = {"L1": 0, "HLT": 1}
SMK_KEY, COUNT_KEY = -1, -2
_CODEC = pa.Codec("zstd", compression_level=3)


def _masks(column: pa.ChunkedArray) -> np.ndarray:
    if column.null_count:
        column = pc.fill_null(column, pa.scalar(b"\0" * column.type.byte_width, column.type))
    return masks_from_arrow(column)


def pattern_numbers(table: pa.Table) -> tuple[np.ndarray, pa.Table]:
    """Number each record's (SMK, L1 after veto, HLT passed) triple; returns the numbers (uint16, or uint32 past
    65,536 patterns) and the index table to write with ``write_patterns``."""
    n = table.num_rows
    smk = table.column("smk").fill_null(0).to_numpy().astype("<u4")
    masks = {level: _masks(table.column(col)) for level, col in TRIGGER_COLUMNS.items()}
    widths = [4] + [m.shape[1] for m in masks.values()]
    rows = np.empty((n, sum(widths)), np.uint8)
    rows[:, :4] = smk.view(np.uint8).reshape(n, 4)
    at = 4
    for m in masks.values():
        rows[:, at:at + m.shape[1]] = m
        at += m.shape[1]
    width = rows.shape[1]
    encoded = pc.dictionary_encode(pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), n, [None, pa.py_buffer(rows)]))
    codes = encoded.indices.to_numpy()
    npat = len(encoded.dictionary)
    patterns = np.frombuffer(encoded.dictionary.buffers()[1], np.uint8)[:npat * width].reshape(npat, width)
    keys, blobs = [SMK_KEY, COUNT_KEY], [
        _CODEC.compress(np.ascontiguousarray(patterns[:, :4]).view("<u4").ravel(), asbytes=True),
        _CODEC.compress(np.bincount(codes, minlength=npat).astype("<u8"), asbytes=True)]
    at = 4
    for level, m in zip(LEVELS, masks.values()):
        block = patterns[:, at:at + m.shape[1]]
        at += m.shape[1]
        for byte in np.flatnonzero(block.any(axis=0)):
            column = block[:, byte]
            for k in range(8):
                on = (column & np.uint8(1 << k)) != 0
                if on.any():
                    keys.append(LEVELS[level] * 65536 + int(byte) * 8 + k)
                    blobs.append(_CODEC.compress(np.packbits(on, bitorder="little"), asbytes=True))
    index = pa.table({"key": pa.array(keys, pa.int32()), "data": pa.array(blobs, pa.binary())})
    index = index.replace_schema_metadata({"patterns": str(npat)})
    return codes.astype(np.uint16 if npat <= 65536 else np.uint32), index


def write_patterns(index: pa.Table, path) -> None:
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, index.schema) as writer:
        writer.write_table(index)


class TriggerPatterns:
    """A dataset version's trigger index, memory-mapped; arrays are decompressed when a query asks for them."""

    def __init__(self, path: Path):
        table = ipc.open_file(pa.memory_map(str(path))).read_all()
        self.count = int(table.schema.metadata[b"patterns"])
        self._data = table.column("data").chunk(0)
        self._row = {int(k): i for i, k in enumerate(table.column("key").to_pylist())}

    def _array(self, key: int, dtype, length: int) -> np.ndarray:
        size = length * np.dtype(dtype).itemsize
        raw = _CODEC.decompress(self._data[self._row[key]].as_buffer(), size)
        return np.frombuffer(raw, dtype)[:length]

    @functools.cached_property
    def smk(self) -> np.ndarray:
        return self._array(SMK_KEY, "<u4", self.count)

    @functools.cached_property
    def nevents(self) -> np.ndarray:
        return self._array(COUNT_KEY, "<u8", self.count).astype(np.int64)

    @functools.cached_property
    def smks(self) -> np.ndarray:
        return np.unique(self.smk)

    def bit(self, level: str, bit: int) -> np.ndarray:
        """Which patterns have this trigger bit set (booleans over the patterns)."""
        key = LEVELS[level] * 65536 + bit
        if key not in self._row:
            return np.zeros(self.count, bool)
        packed = self._array(key, np.uint8, (self.count + 7) // 8)
        return np.unpackbits(packed, count=self.count, bitorder="little").view(bool)

    def passed(self, where: dict[int, tuple[str, int]]) -> np.ndarray:
        """Which patterns pass one trigger, located per menu as ``{smk: (level, bit)}``."""
        out = np.zeros(self.count, bool)
        for smk, (level, bit) in where.items():
            if smk not in self.smks:
                continue
            on = self.bit(level, bit)
            out |= on if len(self.smks) == 1 else on & (self.smk == smk)
        return out
