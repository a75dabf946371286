"""Load what producers left in a staging area into the catalogue, one dataset at a time (each atomically).

A dataset folder holds one ``ei.<task>.<job>.parquet`` + ``.summary.json`` pair per producer job; the summary is
written last and says how big the Parquet file is and its adler32, which is checked before loading. Each dataset is
then checked by ``validation.validate_parts``, the same check the ingestion DAG's validate step makes, before it is
loaded: ``eventindex load`` never loads what the DAG would refuse.
"""

from __future__ import annotations

import posixpath
import zlib
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import BadInput, BadLoad, NotFound, ValidationFailed
from ..naming import is_valid
from ..staging import open_staging
from .records import LoadResult
from .validation import StagedPart, parse_summary, validate_parts


@dataclass
class StagedDataset:
    name: str
    summaries: list[dict]
    parquet_paths: list[str]
    nevents: int


def find_staged(staging: str, refused: list | None = None) -> tuple[pafs.FileSystem, list[StagedDataset]]:
    """The datasets in a staging area (or in one dataset folder of it).

    A malformed summary is bad input: BadLoad naming its path, at once. With a ``refused`` list, the dataset folder
    that holds it is skipped instead and ``(dataset, error)`` appended, so that one bad folder does not hide the good
    ones (``eventindex load`` loads those, reports the bad ones and exits 1)."""
    fs, base = open_staging(staging)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        raise NotFound(f"staging area {staging} does not exist")
    folders = [base] if is_valid(posixpath.basename(base)) else [
        i.path for i in fs.get_file_info(pafs.FileSelector(base)) if i.type == pafs.FileType.Directory
        and is_valid(posixpath.basename(i.path))]
    found = []
    for folder in sorted(folders):
        try:
            staged = _staged_in(fs, folder)
        except BadInput as exc:
            if refused is None:
                raise
            refused.append((posixpath.basename(folder), exc))
            continue
        if staged is not None:
            found.append(staged)
    return fs, found


def _staged_in(fs: pafs.FileSystem, folder: str) -> StagedDataset | None:
    summaries = []
    for item in sorted(fs.get_file_info(pafs.FileSelector(folder)), key=lambda i: i.path):
        if item.path.endswith(".summary.json"):
            with fs.open_input_stream(item.path) as fh:
                summaries.append(parse_summary(fh.read(), item.path))
    if not summaries:
        return None
    name = posixpath.basename(folder)
    paths = [posixpath.join(folder, s["parquet"]) for s in summaries]
    return StagedDataset(name, summaries, paths, sum(s["nevents"] for s in summaries))


def verify_staged(fs: pafs.FileSystem, staged: StagedDataset) -> None:
    """Each Parquet file is there, with the size and adler32 its summary announced."""
    for summary, path in zip(staged.summaries, staged.parquet_paths):
        if summary.get("dataset") != staged.name:
            raise BadLoad(f"{path}: summary is for dataset {summary.get('dataset')}, found in {staged.name}")
        try:
            with fs.open_input_stream(path) as fh:
                data = fh.read()
        except FileNotFoundError:
            raise BadLoad(f"{path}: announced in its summary but missing") from None
        if len(data) != summary["bytes"] or f"{zlib.adler32(data) & 0xFFFFFFFF:08x}" != summary["adler32"]:
            raise BadLoad(f"{path}: size or adler32 differs from the producer's summary (corrupt or partial copy)")


def load_staged(catalog, staging: str, progress=None, ddm=None, allow_duplicates: bool = False,
                refused: list | None = None) -> list[LoadResult]:
    """Check and load every dataset staged under ``staging``; returns the loads.

    Each dataset is checked as the DAG checks it (``validation.validate_parts``), against ``ddm`` (Rucio or the
    local data catalogue) when one is given. A dataset that fails raises (nothing of it loaded); with a ``refused``
    list it is appended there as ``(dataset, error)`` and the other datasets are still loaded."""
    fs, datasets = find_staged(staging, refused)
    if not datasets and not refused:
        raise NotFound(f"no produced datasets (*.summary.json) under {staging}")
    results = []
    for i, staged in enumerate(datasets):
        try:
            verify_staged(fs, staged)
            parts = [StagedPart(posixpath.basename(p), s, lambda p=p: pq.read_table(p, filesystem=fs))
                     for s, p in zip(staged.summaries, staged.parquet_paths)]
            _, tables = validate_parts(staged.name, parts, ddm, allow_duplicates=allow_duplicates, keep_tables=True,
                                       menus=catalog.menus() if catalog is not None else None)
        except (BadInput, NotFound, ValidationFailed) as exc:  # bad data: never a transient fault
            if refused is None:
                raise
            refused.append((staged.name, exc))
            continue
        lfns = {g["guid"]: {"lfn": g.get("lfn")} for s in staged.summaries for g in s.get("guids", [])}
        results.append(catalog.load(staged.name, tables, files_meta=lfns))
        if progress:
            progress(i + 1, len(datasets))
    return results
