"""Where picked events go: the output RSE's storage (``Settings.picks``), a local folder by default, an object store
(``s3://bucket/prefix?endpoint_override=...&scheme=http``) in production, the request's files under its own folder.

An extraction job may run on any worker (or on the grid, as a PanDA job) and its outputs are verified and registered
by another: files are written to the worker's own scratch space (``tempfile``, its TMPDIR), then copied whole to the
RSE, and read back through their URIs, never through a path of the machine that planned the request.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import pyarrow.fs as pafs

from ..errors import NotFound
from ..staging import atomic_output, open_staging, uri_of

_PLAIN = re.compile(r"[A-Za-z0-9_.+-]{1,255}")  # an output's LFN as a file name of the request's folder
_SECRET_WORDS = ("key", "secret", "token", "password", "credential")  # query options that may carry credentials


def store(local: str | Path, area: str | Path, name: str) -> str:
    """Copy the local file ``local`` to ``<area>/<name>`` (whole or not at all); returns the object's URI, in the
    spelling ``area`` was given."""
    area = str(area)
    fs, base = _open(area)
    with open(local, "rb") as src, atomic_output(fs, f"{base}/{name}") as dst:
        shutil.copyfileobj(src, dst, 8 << 20)
    return uri_of(area, name)


def object_info(uri: str) -> pafs.FileInfo:
    """The object at ``uri`` (its size), or :class:`NotFound` naming it."""
    fs, path = _open(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise NotFound(f"no output file at {without_credentials(uri)}")
    return info


@contextmanager
def local_copy(uri: str, what: str = "output file") -> Iterator[str]:
    """A local path to read the file at ``uri`` with uproot: the file itself on a local disk, else a scratch copy
    (removed after the block)."""
    if "://" not in uri or uri.startswith("file://"):
        path = unquote(urlsplit(uri).path) if uri.startswith("file://") else uri
        if not Path(path).is_file():
            raise NotFound(f"no {what} at {uri}")
        yield path
        return
    fs, path = _open(uri)
    with tempfile.NamedTemporaryFile(prefix="eventindex-read-", suffix=".root") as scratch:
        try:
            with fs.open_input_stream(path) as src:
                shutil.copyfileobj(src, scratch, 8 << 20)
        except FileNotFoundError:
            raise NotFound(f"no {what} at {without_credentials(uri)}") from None
        scratch.flush()
        yield scratch.name


def without_credentials(uri: str) -> str:
    """``uri`` without a user and password and without query options that may carry credentials (what Rucio,
    PanDA, logs and the requests table may see; the readers take credentials from their environment)."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    query = [item for item in parts.query.split("&")  # kept as spelled: the readers parse them again
             if item and not any(word in unquote(item.partition("=")[0]).lower() for word in _SECRET_WORDS)]
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(query), parts.fragment))


def pfn_of(uri: str) -> str:
    """The PFN of an output in Rucio: ``file://`` + the absolute path on a local disk, else the object's URI
    without credentials."""
    if "://" not in uri:
        return "file://" + str(Path(uri).expanduser().resolve())
    return without_credentials(uri)


def _open(uri: str) -> tuple[pafs.FileSystem, str]:
    if uri.startswith("file://"):  # a PFN of the local RSE
        return pafs.LocalFileSystem(), unquote(urlsplit(uri).path)
    return open_staging(uri)


def read_output(area: str | Path, request_id: str, name: str, chunk: int = 1 << 20) -> tuple[int, Iterator[bytes]]:
    """(size, chunks) of the output file ``name`` of the request ``request_id`` in the output RSE's storage ``area``
    (``<area>/<request folder>/<name>``, where extraction stored it): what the web app streams as a download. ``name``
    must be a plain file name (no folder, no ``..``): nothing outside the request's own folder can be named.
    Raises :class:`NotFound` naming the file."""
    from ..workarea import run_folder

    folder = run_folder(request_id)
    if not _PLAIN.fullmatch(name) or name.startswith(".") or folder.startswith("."):
        raise NotFound(f"no output file {name[:100]!r} in picking request {request_id[:100]}")
    fs, path = _open(uri_of(str(area), folder, name))
    if fs.get_file_info(path).type != pafs.FileType.File:
        raise NotFound(f"no output file {name} in picking request {request_id}")
    size = fs.get_file_info(path).size

    def chunks() -> Iterator[bytes]:
        with fs.open_input_stream(path) as src:
            while data := src.read(chunk):
                yield data

    return size, chunks()
