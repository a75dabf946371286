"""The metadata DB: datasets, files, trigger menus, per-dataset trigger counts, validation reports, load history.

SQLAlchemy Core over SQLite by default and PostgreSQL by URL. The tables below are the source of truth; the DDL
in ``sql/metadata/`` is generated from them (``eventindex db ddl``) and a test keeps the two in step. Schema
changes are Alembic revisions (``eventindex/migrations/``), applied only by :func:`upgrade` (``eventindex db
upgrade``, the demos, ``make up``, the cluster harness, the compose init service). Opening the DB never migrates nor
creates anything: :func:`make_engine` checks the schema on first connect and a DB behind the code is one line
saying to run ``eventindex db upgrade`` (reads never write).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable

from . import dbopen
from .errors import SchemaOutOfDate

# the Alembic revision this code needs (the head of migrations/versions; a test keeps the two in step): opening a DB
# compares with it without importing Alembic
SCHEMA_HEAD = "0009"
SCHEMA_HISTORY = ("0009",)  # every revision, oldest first: a DB at another one was migrated by newer code
metadata = sa.MetaData()

datasets = sa.Table(
    "datasets", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("run_number", sa.BigInteger),  # real data
    sa.Column("dsid", sa.BigInteger),  # simulation
    sa.Column("stream", sa.String(64)),
    sa.Column("prodstep", sa.String(16), nullable=False),
    sa.Column("datatype", sa.String(32), nullable=False),
    sa.Column("version", sa.String(128), nullable=False),  # AMI tag chain; "" for RAW
    sa.Column("status", sa.String(16), nullable=False),  # loaded | obsolete | erased
    sa.Column("nfiles", sa.Integer, nullable=False),
    sa.Column("nevents", sa.BigInteger, nullable=False),
    sa.Column("unique_events", sa.BigInteger, nullable=False),
    sa.Column("duplicates", sa.BigInteger, nullable=False),
    sa.Column("first_run", sa.BigInteger, nullable=False),
    sa.Column("last_run", sa.BigInteger, nullable=False),
    sa.Column("first_time", sa.BigInteger, nullable=False),
    sa.Column("last_time", sa.BigInteger, nullable=False),
    sa.Column("stages", sa.Text, nullable=False),  # JSON list of processing stages referenced
    sa.Column("smks", sa.Text, nullable=False),  # JSON list of super master keys present
    sa.Column("storage", sa.Text, nullable=False),  # backend-specific location of the current version
    sa.Column("load_id", sa.String(64), nullable=False),
    sa.Column("loaded_at", sa.DateTime, nullable=False),
    sa.Column("obsolete_at", sa.DateTime),
    sa.Column("source", sa.String(16)),  # schema version 7: tier0 | grid | campaign | manual; NULL before
    sa.Index("ix_datasets_run", "run_number", "datatype"),
    sa.Index("ix_datasets_status", "status"),
)

files = sa.Table(
    "files", metadata,
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("guid", sa.String(36), primary_key=True),
    sa.Column("lfn", sa.String(255)),
    sa.Column("nevents", sa.BigInteger, nullable=False),
    sa.Index("ix_files_guid", "guid"),
)

trigger_menus = sa.Table(
    "trigger_menus", metadata,
    sa.Column("smk", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("content", sa.Text, nullable=False),  # JSON of eventindex.trigger.TriggerMenu
)

trigger_counts = sa.Table(  # events with each bit set, per dataset and menu: trigger counts without a scan
    "trigger_counts", metadata,
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("smk", sa.Integer, primary_key=True),
    sa.Column("level", sa.String(4), primary_key=True),  # L1 (after veto) | HLT (passed)
    sa.Column("bit", sa.Integer, primary_key=True),
    sa.Column("nevents", sa.BigInteger, nullable=False),
)

validation_reports = sa.Table(
    "validation_reports", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(255), nullable=False, index=True),
    sa.Column("file", sa.String(255)),
    sa.Column("problem", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),
)

load_history = sa.Table(
    "load_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(255), nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),  # load | reload | obsolete | erase | restore
    sa.Column("load_id", sa.String(64)),
    sa.Column("replaced_load_id", sa.String(64)),
    sa.Column("nevents", sa.BigInteger),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("nfiles", sa.Integer),  # added in schema version 8: the files of the version loaded
)


consistency_reports = sa.Table(  # added in schema version 2
    "consistency_reports", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_at", sa.DateTime, nullable=False, index=True),
    sa.Column("check_name", sa.String(32), nullable=False),
    sa.Column("dataset", sa.String(255)),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
)

announcements = sa.Table(  # added in schema version 3: producer messages, recorded before they are acked
    "announcements", metadata,
    sa.Column("dataset", sa.String(255), primary_key=True),
    sa.Column("task_id", sa.BigInteger, primary_key=True),
    sa.Column("job_id", sa.BigInteger, primary_key=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("deliveries", sa.Integer, nullable=False),
    sa.Column("handed_over_at", sa.DateTime),  # set once the dataset is in the catalogue
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),  # schema version 5: a job re-run
)

pick_requests = sa.Table(  # added in schema version 4: event-picking requests and their outcome
    "pick_requests", metadata,
    sa.Column("request_id", sa.String(255), primary_key=True),  # the DAG run id, or a dry-run id
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # planned | extracted | done | failed
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("requested", sa.BigInteger, nullable=False),
    sa.Column("found", sa.BigInteger),
    sa.Column("missing", sa.BigInteger),
    sa.Column("output_dataset", sa.String(255)),
    sa.Column("summary", sa.Text),
)

dataset_progress = sa.Table(  # added in schema version 5: where each dataset is on its way into the catalogue
    "dataset_progress", metadata,
    sa.Column("dataset", sa.String(255), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # queued | waiting | complete | loaded | stuck | failed
    sa.Column("generation", sa.Integer, nullable=False),  # ingestion runs started for it: run ids stay unique
    sa.Column("detail", sa.Text),  # e.g. "waiting for 2 of 3 files"
    sa.Column("files_expected", sa.Integer),
    sa.Column("files_staged", sa.Integer),
    sa.Column("closed_at", sa.DateTime),  # Rucio's CLOSE message (Hermes)
    sa.Column("closed_files", sa.Integer),
    sa.Column("closed_events", sa.BigInteger),
    sa.Column("loaded_parts", sa.Text),  # JSON [[task, job, attempt], ...] of the version in the catalogue
    sa.Column("first_seen", sa.DateTime, nullable=False),
    sa.Column("updated", sa.DateTime, nullable=False),
    sa.Index("ix_dataset_progress_state", "state"),
)

stop_points = sa.Table(  # added in schema version 5: where an incremental read of an upstream source stopped
    "stop_points", metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("last_update", sa.DateTime, nullable=False),
    sa.Column("task_id", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.DateTime, nullable=False),
)

run_periods = sa.Table(  # added in schema version 6: the run periods of the conditions source (COMA)
    "run_periods", metadata,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(16), primary_key=True),
    sa.Column("first_run", sa.BigInteger, nullable=False),
    sa.Column("last_run", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("updated", sa.DateTime, nullable=False),
)

upstream_datasets = sa.Table(  # added in schema version 9: what Tier-0 and the production system say of a dataset
    "upstream_datasets", metadata,
    sa.Column("dataset", sa.String(255), primary_key=True),
    sa.Column("source", sa.String(16), nullable=False),  # tier0 | prodsys
    sa.Column("task_id", sa.BigInteger),  # the production task that writes it (prodsys)
    sa.Column("status", sa.String(16), nullable=False),  # the task's status, or the Tier-0 flag (READY, DONE)
    sa.Column("inputs", sa.Text, nullable=False),  # JSON list of the task's input datasets
    sa.Column("cross_section_pb", sa.Float),  # event generation tasks
    sa.Column("filter_efficiency", sa.Float),
    sa.Column("last_update", sa.DateTime, nullable=False),
    sa.Column("synced_at", sa.DateTime, nullable=False),
)

dataset_quantities = sa.Table(  # added in schema version 9: AMI's derived quantities, recomputed on fresh news
    "dataset_quantities", metadata,
    sa.Column("dataset", sa.String(255), primary_key=True),
    sa.Column("production_status", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON: the task's, Rucio's and the catalogue's states
    sa.Column("cross_section_avg", sa.Float),
    sa.Column("cross_section_min", sa.Float),
    sa.Column("cross_section_max", sa.Float),
    sa.Column("filter_efficiency_avg", sa.Float),
    sa.Column("filter_efficiency_min", sa.Float),
    sa.Column("filter_efficiency_max", sa.Float),
    sa.Column("generation_tasks", sa.Text, nullable=False),  # JSON list of the EVNT task ids averaged over
    sa.Column("computed_at", sa.DateTime, nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),  # what brought fresh information: load, prodsys, ...
)


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _schema_of(dbapi_conn) -> str:
    """The schema the DB on a raw DBAPI connection is at: an Alembic revision, "N (before Alembic)" for a DB the
    hand-numbered migrations made, or "none" for an empty DB."""
    cur = dbapi_conn.cursor()
    try:
        for query, shown in (("SELECT version_num FROM alembic_version", "{}"),
                             ("SELECT max(version) FROM schema_version", "{} (before Alembic)")):
            try:
                cur.execute(query)
                row = cur.fetchone()
            except Exception:  # no such table: the DBAPI's own error class, whatever the driver
                dbapi_conn.rollback()
                continue
            return shown.format(row[0]) if row and row[0] is not None else "none"
        return "none"
    finally:
        cur.close()
        dbapi_conn.rollback()  # leave no transaction open on a connection the pool hands out


def _known(found: str) -> bool:
    """Whether this code can upgrade a DB at schema ``found`` (else newer code migrated it)."""
    return found in SCHEMA_HISTORY or found.startswith("none") or found.endswith("(before Alembic)")


def _needs_upgrade(label: str, found: str) -> SchemaOutOfDate:
    if _known(found):
        advice = "run `eventindex db upgrade`"
    else:  # a revision this code does not know: newer code migrated the DB
        advice = "a newer eventindex migrated it: run that version"
    return SchemaOutOfDate(f"{label} is at schema {found}, this code needs {SCHEMA_HEAD}: {advice}")


def make_engine(url: str, *, check: bool = True, busy_timeout: float | None = None) -> sa.Engine:
    """An engine on the metadata DB at ``url`` that never migrates nor creates anything (a missing SQLite file is
    not created, nor its folder). With ``check``, the first connection checks that the DB is at
    :data:`SCHEMA_HEAD` and raises :class:`SchemaOutOfDate` if not. A locked or unreachable DB raises
    :class:`~eventindex.errors.DatabaseBusy` (transient); ``busy_timeout`` (seconds) defaults to the settings'
    ``db_busy_timeout`` (``EVENTINDEX_DB_BUSY_TIMEOUT``)."""
    if busy_timeout is None:
        from .settings import Settings

        busy_timeout = Settings.from_env().db_busy_timeout
    label = f"the metadata DB at {dbopen.where(url)}"
    engine = dbopen.open_engine(url, what="the metadata DB", busy_timeout=busy_timeout,
                                missing=lambda: _needs_upgrade(label, "none (no such file)"))
    if check:
        @sa.event.listens_for(engine, "first_connect")
        def _check(dbapi_conn, _record):
            found = _schema_of(dbapi_conn)
            if found != SCHEMA_HEAD:
                dbapi_conn.close()
                raise _needs_upgrade(label, found)

    return engine


def schema_of(url: str) -> str:
    """The schema the metadata DB at ``url`` is at (see :func:`_schema_of`); "none (no such file)" for a missing
    SQLite file."""
    engine = make_engine(url, check=False)
    try:
        with engine.connect() as conn:
            return _schema_of(conn.connection.dbapi_connection)
    except SchemaOutOfDate:
        return "none (no such file)"
    finally:
        engine.dispose()


def upgrade(target: str | sa.Engine, busy_timeout: float | None = None) -> str:
    """Create or migrate the metadata DB at ``target`` (a URL, or an engine whose URL is used) to :data:`SCHEMA_HEAD`;
    returns the revision reached. The one programmatic entry to the migrations: ``eventindex db upgrade``, the demos,
    ``make up``, the cluster harness, the compose init service and the tests' fixtures call it, nothing else. A DB
    made by the hand-numbered migrations of old (``schema_version`` 1..9) is brought to the head too."""
    from . import migrations

    url = target.url.render_as_string(hide_password=False) if isinstance(target, sa.Engine) else target
    if busy_timeout is None:
        from .settings import Settings

        busy_timeout = Settings.from_env().db_busy_timeout
    found = schema_of(url)
    if found == SCHEMA_HEAD:  # nothing to do (and no need to load the migration scripts)
        return SCHEMA_HEAD
    if not _known(found):
        raise _needs_upgrade(f"the metadata DB at {dbopen.where(url)}", found)
    engine = dbopen.open_engine(url, what="the metadata DB", create=True, busy_timeout=busy_timeout)
    if engine.dialect.name == "sqlite":  # SQLAlchemy's recipe for transactional DDL on pysqlite: all or nothing
        sa.event.listen(engine, "connect", lambda dbapi_conn, _rec: setattr(dbapi_conn, "isolation_level", None))
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    try:
        with engine.begin() as conn:
            return migrations.run_upgrade(conn)
    finally:
        engine.dispose()


def ddl(dialect: str) -> str:
    """The DDL of the current schema for ``sqlite`` or ``postgresql``, as committed in ``sql/metadata/``."""
    from sqlalchemy.dialects import postgresql, sqlite

    d = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}[dialect]
    parts = [f"-- EventIndex metadata DB, schema {SCHEMA_HEAD} ({dialect}); generated by `eventindex db ddl`"]
    for table in metadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=d)).strip() + ";")
        for index in sorted(table.indexes, key=lambda i: i.name):
            parts.append(str(CreateIndex(index).compile(dialect=d)).strip() + ";")
    return "\n\n".join(parts) + "\n"


def save_menus(conn, menus) -> None:
    """Insert trigger menus not yet known (a menu never changes once it has an SMK)."""
    known = {r[0] for r in conn.execute(sa.select(trigger_menus.c.smk))}
    rows = [{"smk": m.smk, "name": m.name, "content": json.dumps(m.to_json())} for m in menus if m.smk not in known]
    if rows:
        conn.execute(trigger_menus.insert(), rows)


def load_menus(conn) -> dict:
    from .trigger import TriggerMenu

    return {r.smk: TriggerMenu.from_json(json.loads(r.content)) for r in conn.execute(sa.select(trigger_menus))}
