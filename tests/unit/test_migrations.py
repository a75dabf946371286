"""The metadata DB's schema: Alembic migrations run only by `eventindex db upgrade` (metadata.upgrade), the old
hand-numbered versions 1..9 folded into its history, and opening a DB never migrating nor creating anything."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from eventindex import metadata as md
from eventindex import migrations
from eventindex.errors import SchemaOutOfDate
from tests import legacy_schema

ROOT = Path(__file__).resolve().parents[2]


def ei(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "eventindex.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def differences(url: str) -> list:
    """What Alembic's autogenerate finds between the DB at ``url`` and the tables in code (empty: the same)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), md.metadata)
    finally:
        engine.dispose()


def _statements(sql: str) -> set[str]:
    """CREATE statements, whitespace-normalised, from a DDL text."""
    sql = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    return {re.sub(r"\s+", " ", s).strip() for s in sql.split(";") if "CREATE" in s.upper()}


def test_schema_head_in_code_is_the_head_of_the_migration_history():
    assert migrations.revisions()[-1] == md.SCHEMA_HEAD
    assert migrations.revisions() == md.SCHEMA_HISTORY


def test_a_db_migrated_by_newer_code_is_refused_without_advising_an_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    md.upgrade(url)
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("update alembic_version set version_num = 'ffff'")
    engine = md.make_engine(url)
    with pytest.raises(SchemaOutOfDate, match="is at schema ffff, this code needs .*: a newer eventindex migrated it"):
        engine.connect()
    engine.dispose()
    with pytest.raises(SchemaOutOfDate, match="a newer eventindex migrated it"):  # and upgrade leaves it alone
        md.upgrade(url)
    assert md.schema_of(url) == "ffff"


def test_a_fresh_db_gets_exactly_the_committed_ddl(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'm.sqlite'}"
    assert md.upgrade(url) == md.SCHEMA_HEAD
    assert differences(url) == []
    with sa.create_engine(url).connect() as conn:  # SQLite keeps each CREATE as issued: compare with the file
        made = {re.sub(r"\s+", " ", sql).strip() for (sql,) in conn.exec_driver_sql(
            "select sql from sqlite_master where sql is not null and name != 'alembic_version'")}
        assert conn.exec_driver_sql("select version_num from alembic_version").all() == [(md.SCHEMA_HEAD,)]
    committed = (ROOT / "sql" / "metadata" / "schema.sqlite.sql").read_text()
    assert made == _statements(committed)


def test_upgrade_twice_changes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    md.upgrade(url)
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("insert into trigger_menus values (7, 'menu', '{}')")
    assert md.upgrade(url) == md.SCHEMA_HEAD
    with sa.create_engine(url).connect() as conn:
        assert conn.exec_driver_sql("select smk from trigger_menus").all() == [(7,)]
        assert conn.exec_driver_sql("select count(*) from alembic_version").scalar() == 1


@pytest.mark.parametrize("version", range(1, 10))
def test_a_db_the_old_code_made_at_any_version_upgrades_to_head_keeping_its_rows(tmp_path, version):
    url = f"sqlite:///{tmp_path / f'v{version}.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        legacy_schema.build(conn, version)
        conn.exec_driver_sql("insert into validation_reports (dataset, problem, created) "
                             "values ('d', 'p', '2026-01-01 00:00:00')")
        conn.exec_driver_sql("insert into load_history (dataset, action, load_id, nevents, at) "
                             "values ('d', 'load', 'a', 10, '2026-01-01 00:00:00')")
    assert md.schema_of(url) == f"{version} (before Alembic)"
    assert md.upgrade(url) == md.SCHEMA_HEAD
    assert differences(url) == []
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select dataset, problem from validation_reports").all() == [("d", "p")]
        assert conn.exec_driver_sql("select load_id, nevents, nfiles from load_history").all() == [("a", 10, None)]
        assert not sa.inspect(conn).has_table("schema_version")
    engine.dispose()


def test_opening_a_db_behind_the_code_says_run_upgrade_and_changes_nothing(tmp_path):
    path = tmp_path / "v5.sqlite"
    with sa.create_engine(f"sqlite:///{path}").begin() as conn:
        legacy_schema.build(conn, 5)
    before = path.read_bytes()
    engine = md.make_engine(f"sqlite:///{path}")
    with pytest.raises(SchemaOutOfDate) as err:
        engine.connect()
    assert str(err.value) == (f"the metadata DB at sqlite:///{path} is at schema 5 (before Alembic), this code needs "
                              f"{md.SCHEMA_HEAD}: run `eventindex db upgrade`")
    engine.dispose()
    assert path.read_bytes() == before


def test_opening_a_missing_db_creates_neither_file_nor_folder(tmp_path):
    path = tmp_path / "no-such-home" / "metadata.sqlite"
    engine = md.make_engine(f"sqlite:///{path}")
    with pytest.raises(SchemaOutOfDate, match=r"is at schema none \(no such file\), this code needs .*: run "
                                              r"`eventindex db upgrade`"):
        engine.connect()
    assert not path.parent.exists()


def test_cli_on_a_fresh_home_says_run_upgrade_in_one_line_and_writes_nothing(tmp_path):
    home = tmp_path / "fresh-home"
    for args in (["count"], ["lookup", "358031", "1"], ["ingestion"]):
        done = ei(*args, env={"EVENTINDEX_HOME": str(home)})
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert "run `eventindex db upgrade`" in done.stderr, done.stderr
        assert not home.exists(), (args, list(home.rglob("*")))


def test_db_upgrade_migrates_an_old_db_and_then_the_cli_reads_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with sa.create_engine(f"sqlite:///{home / 'metadata.sqlite'}").begin() as conn:
        legacy_schema.build(conn, 1)
    env = {"EVENTINDEX_HOME": str(home)}
    assert "run `eventindex db upgrade`" in ei("datasets", env=env).stderr
    done = ei("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    assert f"schema 1 (before Alembic) -> {md.SCHEMA_HEAD}" in done.stdout
    assert f"schema {md.SCHEMA_HEAD} (up to date)" in ei("db", "upgrade", env=env).stdout
    assert ei("datasets", "--json", env=env).stdout.strip() == "[]"


def test_a_db_made_by_hand_from_the_committed_ddl_is_stamped_at_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'by-hand.sqlite'}"
    import sqlite3

    with sqlite3.connect(tmp_path / "by-hand.sqlite") as conn:
        conn.executescript((ROOT / "sql" / "metadata" / "schema.sqlite.sql").read_text())
    assert md.schema_of(url) == "none"
    assert md.upgrade(url) == md.SCHEMA_HEAD
    assert differences(url) == []


def test_only_the_upgrade_command_and_the_demo_migrate():
    """No module that opens the DB for its work calls metadata.upgrade (or creates tables): reads never write."""
    import ast

    allowed = {"upgrade": {"include/eventindex/cli/db.py", "include/eventindex/demo.py",
                           "include/eventindex/metadata.py"},
               # the local Rucio's first write, the simulated upstream DBs' writers, the base revision
               "create_all": {"include/eventindex/ddm.py", "include/eventindex/upstream.py"}}
    found = []
    for top in ("include", "operators", "plugins", "dags"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if "/migrations/" in rel:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                    if name in allowed and rel not in allowed[name]:
                        found.append(f"{rel}:{node.lineno} {name}")
    assert found == []
