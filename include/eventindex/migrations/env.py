"""Alembic's environment for the metadata DB. Run only through :func:`eventindex.metadata.upgrade` (which is what
``eventindex db upgrade`` calls): it hands over an open connection in ``config.attributes["connection"]``, so no
``alembic.ini`` and no URL are needed here."""

from alembic import context

from eventindex.metadata import metadata

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by copying it; later revisions written with op.batch_alter_table work on both
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
