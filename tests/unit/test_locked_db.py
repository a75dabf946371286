"""A metadata DB locked by another process is a transient fault: a write gives up after the busy timeout
(EVENTINDEX_DB_BUSY_TIMEOUT) with one line naming the DB and exit status 75 (try again), changing nothing; a read
is not blocked (WAL); once the lock is gone the same command succeeds."""

import os
import sqlite3
import subprocess
import sys

import pytest
import sqlalchemy as sa

from eventindex import metadata as md
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.errors import DatabaseBusy
from eventindex.settings import Settings
from tests.conftest import dataset


def ei(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eventindex.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "EVENTINDEX_DB_BUSY_TIMEOUT": "0.3"})


@pytest.fixture
def loaded(staged_world, metadata_home):
    """One RAW dataset loaded into the test's home: (dataset, path of the metadata DB)."""
    world, out, staging = staged_world
    d = dataset(world, "RAW")
    settings = Settings.from_env()
    catalog = EmbeddedCatalog(settings.catalog_dir, settings.metadata_url)
    load_staged(catalog, str(staging / d["name"]))
    catalog.engine.dispose()
    return d, sa.engine.make_url(settings.metadata_url).database


def _status(path: str, name: str) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("select status from datasets where name = ?", (name,)).fetchone()[0]


def test_a_write_on_a_locked_db_exits_75_in_one_line_and_succeeds_once_the_lock_is_gone(loaded):
    d, path = loaded
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's write transaction
    try:
        done = ei("obsolete", d["name"])
        assert done.returncode == 75, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(f"error: the metadata DB at sqlite:///{path} is locked by another process"), \
            done.stderr
        counted = ei("count", "--dataset", d["name"])  # readers are not blocked by a writer
        assert counted.returncode == 0 and int(counted.stdout.replace(",", "")) == d["nevents"], counted.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _status(path, d["name"]) == "loaded"  # nothing changed
    done = ei("obsolete", d["name"])
    assert done.returncode == 0, done.stderr
    assert _status(path, d["name"]) == "obsolete"


def test_the_engine_maps_a_locked_db_to_database_busy_naming_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    md.upgrade(url)
    holder = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    engine = md.make_engine(url, busy_timeout=0.1)
    try:
        with pytest.raises(DatabaseBusy, match=rf"^the metadata DB at {url} is locked by another process \(waited "
                                               r"0.1 s, EVENTINDEX_DB_BUSY_TIMEOUT\): try again later$"):
            with engine.begin() as conn:
                conn.execute(md.trigger_menus.insert().values(smk=1, name="m", content="{}"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()
