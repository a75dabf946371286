"""The metadata DB as the code before Alembic made it: its tables, its ``schema_version`` table and its
hand-numbered migrations 1..9, copied verbatim from ``eventindex/metadata.py`` as it was (commit e71cf61), so that
tests can build a DB at any old schema version and upgrade it with today's code.

``build(conn, version)`` makes what an installation at ``version`` holds; ``original_v1`` drops the two columns the
old code's later "v1" already had (datasets.source, load_history.nfiles), giving the oldest schema of all.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

SCHEMA_VERSION = 9
metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)

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

_V1_TABLES = ("datasets", "files", "trigger_menus", "trigger_counts", "validation_reports", "load_history")


def _v1(conn) -> None:
    metadata.create_all(conn, tables=[metadata.tables[t] for t in _V1_TABLES])


def _v2(conn) -> None:
    metadata.create_all(conn, tables=[consistency_reports])


def _v3(conn) -> None:
    metadata.create_all(conn, tables=[announcements])


def _v4(conn) -> None:
    metadata.create_all(conn, tables=[pick_requests])


def _v5(conn) -> None:
    if "attempt" not in {c["name"] for c in sa.inspect(conn).get_columns("announcements")}:  # v3 made it without
        conn.execute(sa.text("ALTER TABLE announcements ADD COLUMN attempt INTEGER DEFAULT '0' NOT NULL"))
    metadata.create_all(conn, tables=[dataset_progress, stop_points])


def _v6(conn) -> None:
    metadata.create_all(conn, tables=[run_periods])


def _v7(conn) -> None:
    if "source" not in {c["name"] for c in sa.inspect(conn).get_columns("datasets")}:  # v1 of today makes it
        conn.execute(sa.text("ALTER TABLE datasets ADD COLUMN source VARCHAR(16)"))


def _v8(conn) -> None:
    if "nfiles" not in {c["name"] for c in sa.inspect(conn).get_columns("load_history")}:  # v1 of today makes it
        conn.execute(sa.text("ALTER TABLE load_history ADD COLUMN nfiles INTEGER"))


def _v9(conn) -> None:
    metadata.create_all(conn, tables=[upstream_datasets, dataset_quantities])


# version -> function(connection); append, never edit
MIGRATIONS = {1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5, 6: _v6, 7: _v7, 8: _v8, 9: _v9}


def build(conn, version: int, original_v1: bool = True) -> None:
    """The schema an installation at ``version`` (1..9) held, ``schema_version`` rows included."""
    at = datetime.now(timezone.utc).replace(tzinfo=None)
    schema_version.create(conn)
    for v in range(1, version + 1):
        MIGRATIONS[v](conn)
        if v == 1 and original_v1:
            conn.exec_driver_sql("ALTER TABLE datasets DROP COLUMN source")
            conn.exec_driver_sql("ALTER TABLE load_history DROP COLUMN nfiles")
        conn.execute(schema_version.insert().values(version=v, applied_at=at))
