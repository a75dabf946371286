"""The work area: where the tasks of one DAG run hand bulky intermediate results to each other (the chunks and plan
of a picking request, the work copy of a dataset's index files), as objects under the run's id.

A local folder by default, an object store (``s3://bucket/prefix?endpoint_override=...``) in production: any task
may run on any worker and be retried on another, so nothing is handed over through one worker's own disk. Tasks
pass the objects' URIs to each other through XCom; objects appear whole or not at all.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pyarrow.fs as pafs

from .staging import atomic_output, open_staging, uri_of


def run_folder(run_id: str) -> str:
    """A run id as one path component: ``manual__2026-01-01T00:00:00+00:00`` -> ``manual__2026-01-01T00_00_00_00_00``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)


def read_bytes(uri: str) -> bytes:
    fs, path = open_staging(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def read_json(uri: str):
    return json.loads(read_bytes(uri))


def read_parquet(uri: str):
    """A Parquet object as an Arrow table (any filesystem the URI names)."""
    import pyarrow.parquet as pq

    fs, path = open_staging(uri)
    return pq.read_table(path, filesystem=fs)


def read_array(uri: str) -> np.ndarray:
    return np.load(io.BytesIO(read_bytes(uri)), allow_pickle=False)


class WorkArea:
    """The objects of one run: ``<base>/<run id>/<name>``."""

    def __init__(self, base: str, run_id: str):
        self.uri = uri_of(base, run_folder(run_id))
        self.fs, self.path = open_staging(self.uri)

    def uri_of(self, *parts: str) -> str:
        return uri_of(self.uri, *parts)

    def put_bytes(self, name: str, data: bytes) -> str:
        with atomic_output(self.fs, f"{self.path}/{name}") as stream:
            stream.write(data)
        return self.uri_of(name)

    def put_json(self, name: str, value) -> str:
        return self.put_bytes(name, json.dumps(value).encode())

    def put_array(self, name: str, array: np.ndarray) -> str:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return self.put_bytes(name, buffer.getvalue())

    def clear(self, prefix: str = "") -> None:
        """Remove the run's objects (below ``prefix``): a rerun of a step starts from nothing."""
        target = f"{self.path}/{prefix}".rstrip("/")
        try:
            self.fs.delete_dir(target)
        except (FileNotFoundError, OSError):
            pass

    def copy_in(self, fs: pafs.FileSystem, path: str, name: str) -> str:
        """Copy one object from another filesystem (the staging area) into the work area."""
        target = f"{self.path}/{name}"
        if isinstance(self.fs, pafs.LocalFileSystem):
            self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        pafs.copy_files(path, target, source_filesystem=fs, destination_filesystem=self.fs)
        return self.uri_of(name)
