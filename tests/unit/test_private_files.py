"""What `eventindex db upgrade` creates is the owner's alone, whatever the umask: the metadata DB 0600, its folder
0700 when the upgrade makes it, and the -wal / -shm files SQLite makes beside it (they hold what the DB holds) 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import sqlalchemy as sa


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_db_upgrade_creates_the_metadata_db_and_its_wal_and_shm_owner_only(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "EVENTINDEX_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "db", "upgrade"], env=env, capture_output=True,
                          text=True, preexec_fn=lambda: os.umask(0o022))  # the usual umask: 0644 files otherwise
    assert done.returncode == 0, done.stderr
    db = home / "metadata.sqlite"
    assert _mode(db) == 0o600 and _mode(home) == 0o700
    old = os.umask(0o022)
    try:
        from eventindex.metadata import make_engine

        engine = make_engine(f"sqlite:///{db}")
        with engine.connect() as conn:  # a reader, as any task or page: SQLite makes the -shm (and the -wal)
            conn.execute(sa.text("select count(*) from datasets")).scalar()
            assert {p.name: _mode(p) for p in home.iterdir() if p.name.startswith("metadata.sqlite")} == {
                "metadata.sqlite": 0o600, "metadata.sqlite-wal": 0o600, "metadata.sqlite-shm": 0o600}
        engine.dispose()
    finally:
        os.umask(old)
