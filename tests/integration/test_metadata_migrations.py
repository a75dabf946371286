"""The metadata DB's Alembic migrations on a real PostgreSQL: a fresh DB, the oldest schema of the code before Alembic
(version 1) and its last (version 9) all reach the head with their rows; a DB behind the code is refused in one line;
a server that cannot be reached is a transient fault."""

import pytest
import sqlalchemy as sa

from eventindex import metadata as md
from eventindex.errors import DatabaseBusy, SchemaOutOfDate
from eventindex_harness.ports import free_port
from tests import legacy_schema
from tests.unit.test_migrations import differences

pytestmark = pytest.mark.integration


def test_a_fresh_postgresql_db_gets_the_schema_in_code(postgres):
    url = postgres.create_database("ei_migrate_fresh")
    assert md.schema_of(url) == "none"
    assert md.upgrade(url) == md.SCHEMA_HEAD
    assert differences(url) == []
    assert md.upgrade(url) == md.SCHEMA_HEAD  # twice: nothing to do
    engine = md.make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(md.datasets)).scalar() == 0
    engine.dispose()


@pytest.mark.parametrize("version", [1, 9])
def test_an_old_postgresql_db_upgrades_to_head_keeping_its_rows(postgres, version):
    url = postgres.create_database(f"ei_migrate_v{version}")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        legacy_schema.build(conn, version)
        conn.exec_driver_sql("insert into load_history (dataset, action, load_id, nevents, at) "
                             "values ('d', 'load', 'a', 10, '2026-01-01 00:00:00')")
    checked = md.make_engine(url)
    with pytest.raises(SchemaOutOfDate, match=rf"is at schema {version} \(before Alembic\), this code needs "
                                              rf"{md.SCHEMA_HEAD}: run `eventindex db upgrade`"):
        checked.connect()
    checked.dispose()
    assert md.upgrade(url) == md.SCHEMA_HEAD
    assert differences(url) == []
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select load_id, nevents, nfiles from load_history").all() == [("a", 10, None)]
        assert not sa.inspect(conn).has_table("schema_version")
    engine.dispose()
    checked = md.make_engine(url)
    with checked.connect() as conn:  # the code opens it now
        assert conn.execute(sa.select(md.load_history.c.dataset)).scalar() == "d"
    checked.dispose()


def test_a_postgresql_server_that_does_not_answer_is_transient():
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/eventindex"
    engine = md.make_engine(url)
    with pytest.raises(DatabaseBusy) as err:
        engine.connect()
    message = str(err.value)
    assert message.startswith("the metadata DB at postgresql+psycopg2://postgres@127.0.0.1:") and "\n" not in message
    assert "cannot be reached now" in message
