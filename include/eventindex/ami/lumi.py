"""Lost lumi blocks: the lumi blocks a run's RAW holds that a reconstruction or reprocessing of the same run and
stream does not (AMI's "missing lumi blocks" of a dataset), as a failed job that was never retried leaves them.

Computed from the catalogue alone: the distinct (run, lumi block) pairs of the RAW against those of the dataset,
batch by batch with numpy, never per event.
"""

from __future__ import annotations

import numpy as np

from ..catalog.selection import make_selection

COMPARED = ("AOD", "ESD")  # formats that keep every event of the RAW; a derivation skims them away by design


def lumi_pairs(catalog, sel) -> np.ndarray:
    """The distinct (run, lumi block) pairs of the events passing ``sel``, as an ``(N, 2)`` int64 array (each pair
    packed into one 64-bit key, so that numpy dedups plain integers)."""
    parts = [np.unique((b.column(0).to_numpy(zero_copy_only=False).astype(np.int64) << 32)
                       | b.column(1).to_numpy(zero_copy_only=False).astype(np.int64))
             for b in catalog.select(sel, columns=["run_number", "lumi_block"]) if b.num_rows]
    keys = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return np.column_stack([keys >> 32, keys & 0xFFFFFFFF])


def raw_of(catalog, row: dict) -> list[str]:
    """The loaded RAW datasets of a data dataset's project, run and stream (none: ``[]``; not a selection, which
    refuses a data type no dataset has as a typing mistake)."""
    if row.get("stream") is None or row.get("run_number") is None:
        return []
    return [r["name"] for r in catalog.datasets() if r["datatype"] == "RAW" and r["project"] == row["project"]
            and r["stream"] == row["stream"] and r["first_run"] <= row["last_run"]
            and r["last_run"] >= row["first_run"]]


def lost_lumi_blocks(catalog, dataset: str | dict) -> dict[int, list[int]] | None:
    """``{run: [lumi block, ...]}`` of the lumi blocks in the RAW of ``dataset``'s run and stream and not in
    ``dataset`` (``{}``: none lost); None when there is nothing to compare with: a RAW, a derivation, a simulation
    sample, an erased dataset, or no RAW of that run and stream in the catalogue. ``dataset`` is a name or the row
    ``catalog.show`` gave for it."""
    row = catalog.show(dataset) if isinstance(dataset, str) else dataset
    usable = row["datatype"] in COMPARED and row["status"] in ("loaded", "obsolete")
    raws = raw_of(catalog, row) if usable else []
    if not raws:
        return None
    raw = np.unique(np.concatenate([lumi_pairs(catalog, make_selection(dataset=name)) for name in raws]), axis=0)
    held = lumi_pairs(catalog, make_selection(dataset=row["name"], include_obsolete=True))
    if len(held):
        raw_key = (raw[:, 0] << 32) | raw[:, 1]
        lost = raw[~np.isin(raw_key, (held[:, 0] << 32) | held[:, 1])]
    else:
        lost = raw
    out: dict[int, list[int]] = {}
    for run, lb in lost.tolist():
        out.setdefault(int(run), []).append(int(lb))
    return out
