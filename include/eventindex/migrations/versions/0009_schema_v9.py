"""The schema as the hand-numbered migrations 1..9 left it (``schema_version`` 9), folded into Alembic's history.

Revision ID: 0009
Revises: -
Create Date: 2026-12-02

A fresh DB gets every table. A DB made by the code before Alembic, at any ``schema_version`` N (1..9), is brought to
version 9 here: every step of the old history only added tables (1: the six first tables, 2: consistency_reports,
3: announcements, 4: pick_requests, 5: dataset_progress and stop_points, 6: run_periods, 9: upstream_datasets and
dataset_quantities) or added nullable/defaulted columns (5: announcements.attempt, 7: datasets.source,
8: load_history.nfiles), so creating what is missing and adding the missing columns is exactly the old path from
any N. The old ``schema_version`` table is then dropped: ``alembic_version`` records the schema from here on.

The tables are written out here, frozen, not taken from ``eventindex.metadata``: later revisions change the code's
tables, never this one.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> list[sa.Table]:
    m = sa.MetaData()
    c = sa.Column
    return [
        sa.Table(
            "datasets", m,
            c("id", sa.Integer, primary_key=True, autoincrement=True),
            c("name", sa.String(255), nullable=False, unique=True),
            c("project", sa.String(64), nullable=False),
            c("run_number", sa.BigInteger), c("dsid", sa.BigInteger), c("stream", sa.String(64)),
            c("prodstep", sa.String(16), nullable=False), c("datatype", sa.String(32), nullable=False),
            c("version", sa.String(128), nullable=False), c("status", sa.String(16), nullable=False),
            c("nfiles", sa.Integer, nullable=False), c("nevents", sa.BigInteger, nullable=False),
            c("unique_events", sa.BigInteger, nullable=False), c("duplicates", sa.BigInteger, nullable=False),
            c("first_run", sa.BigInteger, nullable=False), c("last_run", sa.BigInteger, nullable=False),
            c("first_time", sa.BigInteger, nullable=False), c("last_time", sa.BigInteger, nullable=False),
            c("stages", sa.Text, nullable=False), c("smks", sa.Text, nullable=False),
            c("storage", sa.Text, nullable=False), c("load_id", sa.String(64), nullable=False),
            c("loaded_at", sa.DateTime, nullable=False), c("obsolete_at", sa.DateTime),
            c("source", sa.String(16)),
            sa.Index("ix_datasets_run", "run_number", "datatype"),
            sa.Index("ix_datasets_status", "status"),
        ),
        sa.Table(
            "files", m,
            c("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
            c("guid", sa.String(36), primary_key=True), c("lfn", sa.String(255)),
            c("nevents", sa.BigInteger, nullable=False),
            sa.Index("ix_files_guid", "guid"),
        ),
        sa.Table(
            "trigger_menus", m,
            c("smk", sa.Integer, primary_key=True), c("name", sa.String(128), nullable=False),
            c("content", sa.Text, nullable=False),
        ),
        sa.Table(
            "trigger_counts", m,
            c("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
            c("smk", sa.Integer, primary_key=True), c("level", sa.String(4), primary_key=True),
            c("bit", sa.Integer, primary_key=True), c("nevents", sa.BigInteger, nullable=False),
        ),
        sa.Table(
            "validation_reports", m,
            c("id", sa.Integer, primary_key=True, autoincrement=True),
            c("dataset", sa.String(255), nullable=False, index=True), c("file", sa.String(255)),
            c("problem", sa.Text, nullable=False), c("created", sa.DateTime, nullable=False),
        ),
        sa.Table(
            "load_history", m,
            c("id", sa.Integer, primary_key=True, autoincrement=True),
            c("dataset", sa.String(255), nullable=False, index=True), c("action", sa.String(16), nullable=False),
            c("load_id", sa.String(64)), c("replaced_load_id", sa.String(64)), c("nevents", sa.BigInteger),
            c("at", sa.DateTime, nullable=False), c("nfiles", sa.Integer),
        ),
        sa.Table(
            "consistency_reports", m,
            c("id", sa.Integer, primary_key=True, autoincrement=True),
            c("run_at", sa.DateTime, nullable=False, index=True), c("check_name", sa.String(32), nullable=False),
            c("dataset", sa.String(255)), c("detail", sa.Text, nullable=False),
            c("count", sa.BigInteger, nullable=False),
        ),
        sa.Table(
            "announcements", m,
            c("dataset", sa.String(255), primary_key=True), c("task_id", sa.BigInteger, primary_key=True),
            c("job_id", sa.BigInteger, primary_key=True), c("message", sa.Text, nullable=False),
            c("received_at", sa.DateTime, nullable=False), c("deliveries", sa.Integer, nullable=False),
            c("handed_over_at", sa.DateTime), c("attempt", sa.Integer, nullable=False, server_default="0"),
        ),
        sa.Table(
            "pick_requests", m,
            c("request_id", sa.String(255), primary_key=True), c("created", sa.DateTime, nullable=False),
            c("state", sa.String(16), nullable=False), c("params", sa.Text, nullable=False),
            c("requested", sa.BigInteger, nullable=False), c("found", sa.BigInteger), c("missing", sa.BigInteger),
            c("output_dataset", sa.String(255)), c("summary", sa.Text),
        ),
        sa.Table(
            "dataset_progress", m,
            c("dataset", sa.String(255), primary_key=True), c("state", sa.String(16), nullable=False),
            c("generation", sa.Integer, nullable=False), c("detail", sa.Text),
            c("files_expected", sa.Integer), c("files_staged", sa.Integer), c("closed_at", sa.DateTime),
            c("closed_files", sa.Integer), c("closed_events", sa.BigInteger), c("loaded_parts", sa.Text),
            c("first_seen", sa.DateTime, nullable=False), c("updated", sa.DateTime, nullable=False),
            sa.Index("ix_dataset_progress_state", "state"),
        ),
        sa.Table(
            "stop_points", m,
            c("source", sa.String(64), primary_key=True), c("last_update", sa.DateTime, nullable=False),
            c("task_id", sa.BigInteger, nullable=False), c("updated", sa.DateTime, nullable=False),
        ),
        sa.Table(
            "run_periods", m,
            c("project", sa.String(64), primary_key=True), c("period", sa.String(16), primary_key=True),
            c("first_run", sa.BigInteger, nullable=False), c("last_run", sa.BigInteger, nullable=False),
            c("description", sa.Text), c("updated", sa.DateTime, nullable=False),
        ),
        sa.Table(
            "upstream_datasets", m,
            c("dataset", sa.String(255), primary_key=True), c("source", sa.String(16), nullable=False),
            c("task_id", sa.BigInteger), c("status", sa.String(16), nullable=False),
            c("inputs", sa.Text, nullable=False), c("cross_section_pb", sa.Float),
            c("filter_efficiency", sa.Float), c("last_update", sa.DateTime, nullable=False),
            c("synced_at", sa.DateTime, nullable=False),
        ),
        sa.Table(
            "dataset_quantities", m,
            c("dataset", sa.String(255), primary_key=True), c("production_status", sa.String(16), nullable=False),
            c("detail", sa.Text, nullable=False), c("cross_section_avg", sa.Float),
            c("cross_section_min", sa.Float), c("cross_section_max", sa.Float),
            c("filter_efficiency_avg", sa.Float), c("filter_efficiency_min", sa.Float),
            c("filter_efficiency_max", sa.Float), c("generation_tasks", sa.Text, nullable=False),
            c("computed_at", sa.DateTime, nullable=False), c("reason", sa.String(16), nullable=False),
        ),
    ]


# columns the old history added to existing tables (schema versions 5, 7 and 8)
_ADDED_COLUMNS = [
    ("announcements", "attempt", lambda: sa.Column("attempt", sa.Integer, nullable=False, server_default="0")),
    ("datasets", "source", lambda: sa.Column("source", sa.String(16))),
    ("load_history", "nfiles", lambda: sa.Column("nfiles", sa.Integer)),
]


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    for table in _tables():  # in dependency order: datasets before files and trigger_counts
        if table.name not in existing:
            table.create(bind)
    for table, column, make in _ADDED_COLUMNS:
        if table in existing and column not in {c["name"] for c in inspector.get_columns(table)}:
            op.add_column(table, make())
    if "schema_version" in existing:
        op.drop_table("schema_version")


def downgrade() -> None:
    for table in reversed(_tables()):
        op.drop_table(table.name)
