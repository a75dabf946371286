"""Garbage of the embedded store: which files no reader can need any more, told apart from those one may still hold.

A file under ``data/dataset=<name>/`` is named ``<load_id><suffix>`` (``.parquet``, ``.keys.arrow``,
``.triggers.arrow``, each with ``.part`` while it is written). Readers pick a version through the manifest (the
``datasets`` row's ``load_id``, whatever the dataset's status: an obsolete or erased dataset can still be read with
``include_obsolete`` and restored), so a file is

- **live** when its load id is in a ``datasets`` row now: never removed;
- **replaced** when ``load_history`` says a reload replaced its load id: a reader that resolved the manifest just
  before the switch may still open it, so it stays ``min_age_s`` after the replacement (not after it was written:
  a version written a week ago and replaced a second ago is still in use);
- **partial** (``.part``): a load in progress writes it, or a crashed load left it;
- **orphan**: complete but never committed (a crash between the write and the commit, or a load still writing its
  other files: the key file is done long before the Parquet file of a big dataset).

Partial and orphan files of one load id go together, once none of them has been written to for ``min_age_s`` and
no process holds any of them open (a writer that is alive holds the file it writes), which leaves a load in
progress the time to commit.

A file some process holds open or has memory-mapped (read from ``/proc`` on Linux; readers map key files) is kept
whatever its age and collected next time: unlinking it would be harmless to a reader that has it open (POSIX keeps
the inode) but not to one about to reopen it, and the disk space would not come back until it is closed anyway.
The manifest is read from the metadata DB itself, not from a cache, just before the files are listed: a version
committed after that read was written after it too, so it is younger than any sensible ``min_age_s`` (0 is for an
operator who knows no load runs).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

import sqlalchemy as sa

from ... import metadata as md
from ...errors import EventIndexError

SUFFIXES = (".parquet", ".keys.arrow", ".triggers.arrow")
GENERATION_TMP_AGE_S = 60
log = logging.getLogger(__name__)


@dataclass
class GcResult:
    """What a garbage collection removed (or, with ``dry_run``, would remove) and what it kept for now."""

    removed: list[dict] = field(default_factory=list)  # {"path", "bytes", "reason"}: partial | orphan | replaced
    kept: list[dict] = field(default_factory=list)  # {"path", "bytes", "reason"}: too young | open
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        return sum(r["bytes"] for r in self.removed)

    def to_json(self) -> dict:
        return {"removed": self.removed, "kept": self.kept, "bytes_freed": self.bytes_freed, "dry_run": self.dry_run}


def split_name(name: str) -> tuple[str, str, bool] | None:
    """``<load_id><suffix>[.part]`` -> (load id, suffix, partial); None for a name the store never writes."""
    partial = name.endswith(".part")
    base = name[:-5] if partial else name
    for suffix in SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[:-len(suffix)], suffix, partial
    return None


def open_files(root: Path) -> set[str] | None:
    """Real paths under ``root`` that some process on this machine holds open or memory-mapped (a reader maps key
    files and may close their descriptors); None where ``/proc`` cannot say."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    prefix = os.path.realpath(root) + os.sep
    held = set()
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(proc / pid / "fd")
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                target = os.readlink(proc / pid / "fd" / fd)
            except OSError:
                continue
            if target.startswith(prefix):
                held.add(target)
        try:
            with open(proc / pid / "maps", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    fields = line.split(maxsplit=5)  # address perms offset device inode [path]
                    if len(fields) == 6 and fields[5].startswith(prefix):
                        held.add(fields[5].rstrip("\n"))
        except OSError:
            continue
    return held


def _replaced_at(engine: sa.Engine) -> tuple[set[str], dict[str, float]]:
    """The live load ids (every manifest row), and when each replaced load id was replaced (epoch seconds)."""
    h = md.load_history.c
    with engine.connect() as conn:
        live = {r[0] for r in conn.execute(sa.select(md.datasets.c.load_id))}
        replaced = {load_id: at.replace(tzinfo=timezone.utc).timestamp() for load_id, at in conn.execute(
            sa.select(h.replaced_load_id, sa.func.min(h.at)).where(h.replaced_load_id.is_not(None))
            .group_by(h.replaced_load_id))}
    return live, replaced


def collect(root: Path, engine: sa.Engine, min_age_s: float = 3600, *, dry_run: bool = False,
            folders: list[Path] | None = None) -> GcResult:
    """Remove the store's garbage under ``root`` (only in ``folders`` when given), as the module docstring says.

    ``min_age_s``: how long a replaced version outlives its replacement, and how long a load's files must all have
    been left alone; ``dry_run``: report only. Returns the files removed and those kept for now, with their reasons.
    """
    if not min_age_s >= 0:  # NaN would make every age old enough
        raise ValueError(f"min_age_s must be a number >= 0, not {min_age_s!r}")
    live, replaced = _replaced_at(engine)
    if folders is None:
        folders = sorted((root / "data").glob("dataset=*")) if (root / "data").is_dir() else []
    groups: dict[tuple, list[tuple[Path, os.stat_result, str]]] = {}
    for folder in folders:
        for path in sorted(_entries(folder)):
            parts = split_name(path.name)
            if parts is not None and parts[0] not in live:
                _add(groups, (folder, parts[0]), path, "partial" if parts[2] else
                     "replaced" if parts[0] in replaced else "orphan")
    for path in sorted(root.glob(".GENERATION.*")):  # a crash inside _bump_generation
        _add(groups, (None, path.name), path, "partial")
    held: set[str] | None | bool = False  # read from /proc only when a file is old enough to go
    result = GcResult(dry_run=dry_run)
    now = time.time()
    for (folder, load_id), files in groups.items():
        if folder is None:  # GENERATION's temporary file lives microseconds: a minute, whatever min_age_s
            wait, since = max(min_age_s, GENERATION_TMP_AGE_S), files[0][1].st_mtime
        elif load_id in replaced:
            wait, since = min_age_s, max([replaced[load_id], *(st.st_mtime for _, st, r in files if r == "partial")])
        else:  # a load's files go together, once none has been written to for min_age_s
            wait, since = min_age_s, max(st.st_mtime for _, st, _ in files)
        if now - since < wait:
            result.kept += [_entry(p, st, f"{r}, younger than {wait:g} s") for p, st, r in files]
            continue
        if held is False:
            held = open_files(root)
        is_held = [held is not None and os.path.realpath(p) in held for p, _, _ in files]
        if any(is_held) and load_id not in replaced:  # its writer is alive: the load is still in progress
            result.kept += [_entry(p, st, f"{r}, its load still runs (a file is open)") for p, st, r in files]
            continue
        for (path, st, reason), open_now in zip(files, is_held):
            if open_now:  # a reader maps or holds this file of a replaced version
                result.kept.append(_entry(path, st, f"{reason}, open in a running process"))
                continue
            if not dry_run:
                try:
                    path.unlink()
                except FileNotFoundError:  # a concurrent gc (the load's own, or another process) was first
                    continue
            result.removed.append(_entry(path, st, reason))
    return result


def _add(groups: dict, key: tuple, path: Path, reason: str) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode):
        groups.setdefault(key, []).append((path, st, reason))


def _entry(path: Path, st: os.stat_result, reason: str) -> dict:
    return {"path": str(path), "bytes": st.st_size, "reason": reason}


def tidy(root: Path, engine: sa.Engine, folder: Path, min_age_s: float) -> None:
    """A load's own cleanup of its dataset's folder, after its commit: best effort, since the load is done whatever
    happens here (a busy DB or a vanished file leaves the garbage to the next ``gc``)."""
    try:
        collect(root, engine, min_age_s, folders=[folder])
    except (OSError, sa.exc.SQLAlchemyError, EventIndexError) as exc:
        log.warning("garbage of %s left to the next gc: %s", folder.name, exc)


def _entries(folder: Path):
    try:
        return [p for p in folder.iterdir() if p.is_file()]
    except FileNotFoundError:
        return []
