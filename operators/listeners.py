"""Airflow listener (registered by the plugin ``plugins/eventindex_listeners.py``): a finished picking run gets its
outcome as its note, a failed ingestion run its reason (a malformed name's rule, a stuck or unknown dataset).

The Task SDK cannot write a run's note (the execution API only reads it), and a DAG callback runs in the
dag-processor, whose child processes have no access to Airflow's DB. A listener's ``on_dag_run_success`` /
``on_dag_run_failed`` runs where the run's state changes (the scheduler; ``dag.test()`` in-process), with the run
attached to the session that commits its new state: the note is set on it and committed with it.

Careful: this runs inside the scheduler's loop, on its thread-local session. Nothing here may open or close an
Airflow session (a connection lookup would: ``create_session()`` closes the scheduler's own), so the requests table
is read through the settings (``EVENTINDEX_METADATA_URL``), not through the ``eventindex_metadata`` connection.
"""

from __future__ import annotations

import logging

from airflow.listeners import hookimpl
from sqlalchemy.orm import object_session

from eventindex import notify
from eventindex.metadata import make_engine
from eventindex.picking.history import request as pick_request
from eventindex.settings import Settings

PICK_DAG = "eventindex_pick"
INGEST_DAGS = "eventindex_ingest"  # the prefix of the three ingestion DAGs (dags/eventindex_ingest.py)
log = logging.getLogger(__name__)


def _set_note(dag_run, state: str, msg: str) -> None:
    if dag_run.dag_id != PICK_DAG and not (dag_run.dag_id.startswith(INGEST_DAGS) and state == "failed"):
        return
    run_id = dag_run.run_id
    try:
        engine = make_engine(Settings.from_env().metadata_url)
        try:
            if dag_run.dag_id == PICK_DAG:
                row = pick_request(engine, run_id) or {}
                text = notify.pick_note(state, row.get("summary"), msg)
            else:
                text = _ingest_note(engine, (dag_run.conf or {}).get("dataset"))
        finally:
            engine.dispose()
        if text is None:
            return
        if object_session(dag_run) is not None:
            dag_run.note = text
        else:  # dag.test() hands the run over detached: a session of its own, never the thread's scoped one
            _write_note(dag_run.id, text)
    except Exception:  # a note is a courtesy: never let it disturb the scheduler
        log.exception("could not set the note of %s", run_id)


def _ingest_note(engine, dataset) -> str | None:
    """A failed ingestion's reason: a malformed name's rule, else the dataset's progress detail."""
    from eventindex import progress
    from eventindex.errors import MalformedDatasetName
    from eventindex.naming import parse

    try:
        row = progress.get(engine, parse(dataset).name) if isinstance(dataset, str) else None
    except MalformedDatasetName:
        row = None
    return notify.ingest_note(dataset, row)


def _write_note(dag_run_id: int, text: str) -> None:
    from airflow import settings
    from airflow.models.dagrun import DagRunNote
    from sqlalchemy.orm import Session

    note = DagRunNote(content=text)
    note.dag_run_id = dag_run_id
    with Session(bind=settings.engine) as session, session.begin():
        session.merge(note)


@hookimpl
def on_dag_run_success(dag_run, msg: str):
    _set_note(dag_run, "success", msg)


@hookimpl
def on_dag_run_failed(dag_run, msg: str):
    _set_note(dag_run, "failed", msg)
