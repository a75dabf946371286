"""Writing the store's files so that a crash never leaves a half-written one under its final name, and telling
files a load may still be writing from orphans of a crashed one.

A load that fails while writing (a full disk above all) removes what it wrote: the version is not in the manifest,
so nothing of it is visible, and nothing of it stays behind either (``remove_version``).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

# a full disk, or a full quota: the same to whoever has to free space
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# how Arrow's writers (an OSError whose errno is not always set) and SQLite say the same
NO_SPACE_TEXTS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT), "database or disk is full")


def write_atomic(path: Path, write) -> None:
    """``write(temporary path)``, synced, then renamed to ``path``; the temporary file is removed on failure."""
    part = path.with_name(path.name + ".part")
    try:
        write(str(part))
        with open(part, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def young(path: Path, seconds: float = 3600) -> bool:
    """A file a load in progress may still be writing (gc leaves it alone)."""
    try:
        return time.time() - path.stat().st_mtime < seconds
    except FileNotFoundError:
        return False


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the disk or the quota is full."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        if any(text in str(exc) for text in NO_SPACE_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def remove_version(folder: Path, load_id: str) -> list[Path]:
    """Remove every file of one version (``<load_id>.*``, ``.part`` files included) that a failed load left; returns
    what it removed. Only for a version the manifest does not name: nobody can be reading it."""
    removed = []
    for path in folder.glob(f"{load_id}.*"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
