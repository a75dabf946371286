"""A private PostgreSQL 15 on loopback for tests and benchmarks, started and stopped by the caller."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .ports import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A private PostgreSQL 15 cluster in a temporary folder, listening on 127.0.0.1 only.

    ``durable=False`` turns fsync off (tests); benchmarks pass their own settings.
    """

    def __init__(self, base: str | Path | None = None, port: int | None = None, settings: dict | None = None):
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL 15 is not installed ({PG_BIN}); `make test` installs it")
        self.base = Path(base or tempfile.mkdtemp(prefix="ei-pg-"))
        self.port = port or free_port()
        self.settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                         **(settings or {})}
        self._owned_base = base is None

    def _run(self, *cmd, **kw):
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(prefix + [str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, db: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def start(self) -> "PrivatePostgres":
        data = self.base / "data"
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
        if not data.exists():
            self._run(PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
        opts = " ".join(f"-c {k}={v}" for k, v in {"listen_addresses": "127.0.0.1", **self.settings}.items())
        self._run(PG_BIN / "pg_ctl", "-D", data, "-l", self.base / "pg.log", "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.base} {opts}", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(PG_BIN / "pg_ctl", "-D", self.base / "data", "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        if self._owned_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
