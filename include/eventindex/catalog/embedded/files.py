"""Writing the store's files so that a crash never leaves a half-written one under its final name, and telling
files a load may still be writing from orphans of a crashed one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


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
