"""Load what producers left in a staging area into the catalogue, one dataset at a time (each atomically).

A dataset folder holds one ``ei.<task>.<job>.parquet`` + ``.summary.json`` pair per producer job; the summary is
written last and says how big the Parquet file is and its adler32, which is checked before loading.
"""

from __future__ import annotations

import json
import posixpath
import zlib
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import BadLoad, NotFound
from ..naming import is_valid
from ..staging import open_staging
from .records import LoadResult


@dataclass
class StagedDataset:
    name: str
    summaries: list[dict]
    parquet_paths: list[str]
    nevents: int


def find_staged(staging: str) -> tuple[pafs.FileSystem, list[StagedDataset]]:
    """The datasets in a staging area (or in one dataset folder of it)."""
    fs, base = open_staging(staging)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        raise NotFound(f"staging area {staging} does not exist")
    folders = [base] if is_valid(posixpath.basename(base)) else [
        i.path for i in fs.get_file_info(pafs.FileSelector(base)) if i.type == pafs.FileType.Directory
        and is_valid(posixpath.basename(i.path))]
    found = []
    for folder in sorted(folders):
        summaries = []
        for item in sorted(fs.get_file_info(pafs.FileSelector(folder)), key=lambda i: i.path):
            if item.path.endswith(".summary.json"):
                with fs.open_input_stream(item.path) as fh:
                    summaries.append(json.loads(fh.read()))
        if summaries:
            name = posixpath.basename(folder)
            paths = [posixpath.join(folder, s["parquet"]) for s in summaries]
            found.append(StagedDataset(name, summaries, paths, sum(s["nevents"] for s in summaries)))
    return fs, found


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


def load_staged(catalog, staging: str, progress=None) -> list[LoadResult]:
    fs, datasets = find_staged(staging)
    if not datasets:
        raise NotFound(f"no produced datasets (*.summary.json) under {staging}")
    results = []
    for i, staged in enumerate(datasets):
        verify_staged(fs, staged)
        tables = [pq.read_table(p, filesystem=fs) for p in staged.parquet_paths]
        lfns = {g["guid"]: {"lfn": g.get("lfn")} for s in staged.summaries for g in s.get("guids", [])}
        results.append(catalog.load(staged.name, tables, files_meta=lfns))
        if progress:
            progress(i + 1, len(datasets))
    return results
