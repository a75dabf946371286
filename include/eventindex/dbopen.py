"""Opening a SQL database so that reads never write and a busy database is a transient fault.

- SQLite: the file is opened with the URI ``mode=rw``, so a missing file is an error and never a new empty DB (only
  ``create=True``, which :func:`eventindex.metadata.upgrade` alone asks for, creates it and its folder). A DB in WAL
  mode needs its ``-shm`` file even to read; on a read-only disk or a full one that file cannot be made, so a reader
  falls back to opening the file ``immutable`` (read-only, no lock, no ``-shm``), which is exact as long as no
  ``-wal`` holds commits not yet in the file. With such commits pending, the plain open is the only exact one and its
  error stands.
- Every engine maps a locked SQLite DB ("database is locked" after the busy timeout) and a PostgreSQL server that
  cannot be reached to :class:`~eventindex.errors.DatabaseBusy` (a TransientError: the CLI exits 75, Airflow
  retries), with one line naming the DB, through SQLAlchemy's ``handle_error`` event: one place for every caller.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from .errors import ConfigurationError, DatabaseBusy, NoSpace

# SQLite result codes of an open or first read that failed for want of a writable place (read-only mount or file,
# full disk): the reader may still read the file as it is
_NO_WRITABLE_PLACE = ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_PERM")
_MIN_FREE = 1 << 16  # below this, a -shm (32 KiB) may not fit: read the file as it is


class Missing(Exception):
    """Raised by the SQLite creator for a file that does not exist (``what(url)`` makes the caller's message)."""


def where(url: sa.URL | str) -> str:
    """The URL as it may be shown: no password."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _wal_pending(path: str) -> bool:
    try:
        return os.path.getsize(path + "-wal") > 0
    except OSError:
        return False


def _no_writable_place(path: str) -> bool:
    folder = os.path.dirname(path) or "."
    try:
        return not os.access(folder, os.W_OK) or shutil.disk_usage(folder).free < _MIN_FREE
    except OSError:
        return False


def _immutable(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _create_private(path: str) -> None:
    """The new DB file made empty (a valid empty SQLite DB) with mode 0600, its folder 0700 when this makes it:
    SQLite gives the ``-wal`` and ``-shm`` files the mode of the DB file, and they hold what the DB holds (picks'
    event lists, users' requests), so none of them may be readable by others whatever the caller's umask."""
    Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:  # another process made it meanwhile: theirs stands
        pass


def sqlite_creator(path: str, busy_timeout: float, create: bool, missing):
    """A DBAPI connection factory for the SQLite file at ``path`` (see the module's docstring); ``missing()`` makes
    the exception raised for a file that does not exist."""

    def connect() -> sqlite3.Connection:
        if not os.path.exists(path):
            if not create:
                raise missing()
            _create_private(path)
        elif not create and not _wal_pending(path) and _no_writable_place(path):
            return _immutable(path)
        conn = sqlite3.connect(f"file:{quote(path)}?mode={'rwc' if create else 'rw'}", uri=True,
                               timeout=busy_timeout, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            if create:  # WAL is kept in the file: set by the one writer of the schema, never by an open
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the WAL index: makes the -shm
        except sqlite3.OperationalError as exc:
            conn.close()
            if create or _wal_pending(path) or not (getattr(exc, "sqlite_errorname", "") or "").startswith(
                    _NO_WRITABLE_PLACE):
                raise
            return _immutable(path)
        return conn

    return connect


def _transient(url_text: str, busy_timeout: float):
    def handle_error(ctx) -> None:
        exc = ctx.original_exception
        if isinstance(exc, sqlite3.OperationalError):
            name = getattr(exc, "sqlite_errorname", "") or ""
            if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in str(exc):
                raise DatabaseBusy(f"{url_text} is locked by another process (waited {busy_timeout:g} s, "
                                   "EVENTINDEX_DB_BUSY_TIMEOUT): try again later") from None
            if name.startswith("SQLITE_FULL"):
                raise NoSpace(f"{url_text}: database or disk is full; nothing was changed: free space and try "
                              "again") from None
            if name.startswith("SQLITE_READONLY"):
                raise ConfigurationError(f"{url_text} cannot be written here (a read-only or full disk, or a read-only "
                                         "file): reads work, writes need a writable disk with space") from None
            return
        if ctx.is_disconnect or (ctx.dialect.name == "postgresql" and isinstance(ctx.sqlalchemy_exception,
                                                                                 sa.exc.OperationalError)):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DatabaseBusy(f"{url_text} cannot be reached now: {first}") from None

    return handle_error


def open_engine(url: str, *, what: str = "the database", create: bool = False, busy_timeout: float = 60.0,
                missing=None) -> sa.Engine:
    """An engine on ``url`` that never creates a SQLite file unless ``create`` and maps busy or unreachable DBs to
    :class:`DatabaseBusy`. ``what`` names the DB in messages ("the metadata DB"); ``missing`` makes the exception
    for a SQLite file that does not exist (default: :class:`Missing`)."""
    parsed = sa.engine.make_url(url)
    label = f"{what} at {where(parsed)}"
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not parsed.database.startswith("file:"):
        path = os.path.abspath(parsed.database)
        engine = sa.create_engine(parsed, creator=sqlite_creator(path, busy_timeout, create,
                                                                 missing or (lambda: Missing(label))))
    else:
        engine = sa.create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    sa.event.listen(engine, "handle_error", _transient(label, busy_timeout))
    return engine
