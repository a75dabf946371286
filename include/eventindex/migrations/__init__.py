"""The metadata DB's migrations: an Alembic environment inside the package (as Airflow and Rucio keep theirs), run
programmatically through ``alembic.config.Config`` and ``alembic.command`` (no ``alembic.ini``).

Only :func:`eventindex.metadata.upgrade` calls :func:`run_upgrade`: ``eventindex db upgrade``, the demos, ``make up``,
the cluster harness and the compose init service go through it; nothing that opens the DB for its work migrates.

A new schema change is a new revision in ``versions/`` (``down_revision`` the previous head), and
``eventindex.metadata.SCHEMA_HEAD`` names it: opening a DB checks that constant, without importing Alembic.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent


def config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_locations", str(HERE / "versions"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def revisions() -> tuple[str, ...]:
    """Every revision of the history, oldest first (the last is the head)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config())
    return tuple(reversed([r.revision for r in script.walk_revisions()]))


def current(connection) -> str | None:
    """The revision the DB on ``connection`` is at (None: never migrated by Alembic)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def run_upgrade(connection, target: str = "head") -> str | None:
    """Migrate the DB on ``connection`` (in its transaction) to ``target``; returns the revision reached."""
    from alembic import command

    command.upgrade(config(connection), target)
    return current(connection)
