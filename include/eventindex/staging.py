"""The staging area between producers and ingestion: a local folder by default, S3 (or any URI pyarrow's
filesystems take, e.g. ``s3://bucket/prefix?endpoint_override=127.0.0.1:9000&scheme=http``) when configured.

Objects appear whole or not at all: each is written under a ``.part`` name and moved into place once complete.
"""

from __future__ import annotations

import posixpath
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs as pafs


def open_staging(uri: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, base path)`` of a staging URI or local folder."""
    if "://" not in uri:
        path = Path(uri).expanduser().resolve()
        return pafs.LocalFileSystem(), path.as_posix()
    fs, base = pafs.FileSystem.from_uri(uri)
    return fs, base.rstrip("/")


def uri_of(staging: str, *parts: str) -> str:
    """The URI of an object below a staging area, in the spelling the staging area was given."""
    if "://" not in staging:
        return str(Path(staging).expanduser().resolve().joinpath(*parts))
    head, _, query = staging.partition("?")
    return posixpath.join(head, *parts) + (f"?{query}" if query else "")


@contextmanager
def atomic_output(fs: pafs.FileSystem, path: str):
    """Write a stream that becomes visible at ``path`` only if the block completes."""
    part = path + ".part"
    fs.create_dir(posixpath.dirname(path), recursive=True)
    try:
        with fs.open_output_stream(part) as stream:
            yield stream
        fs.move(part, path)
    except BaseException:
        try:
            fs.delete_file(part)
        except (FileNotFoundError, OSError):
            pass
        raise
