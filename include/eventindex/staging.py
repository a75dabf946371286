"""The staging area between producers and ingestion: a local folder by default, S3 (or any URI pyarrow's
filesystems take, e.g. ``s3://bucket/prefix?endpoint_override=127.0.0.1:9000&scheme=http``) when configured.

Objects appear whole or not at all (see ``atomic_output``).
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
    """Write a stream that becomes visible at ``path`` only if the block completes.

    On a local disk the data goes to ``<path>.part`` and is renamed into place. On an object store an object
    appears only when its upload completes (a rename would be a copy, and leave folder markers behind); if the
    block fails, the object is deleted. The producer writes its summary last: it marks a job complete.
    """
    local = isinstance(fs, pafs.LocalFileSystem)
    target = path + ".part" if local else path
    if local:
        fs.create_dir(posixpath.dirname(path), recursive=True)
    try:
        with fs.open_output_stream(target) as stream:
            yield stream
        if local:
            fs.move(target, path)
    except BaseException:
        try:
            fs.delete_file(target)
        except (FileNotFoundError, OSError):
            pass
        raise
