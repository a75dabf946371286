"""Airflow listener (registered by the plugin ``plugins/eventindex_listeners.py``): a finished picking run gets its
outcome as its note.

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
log = logging.getLogger(__name__)


def _set_note(dag_run, state: str, msg: str) -> None:
    if dag_run.dag_id != PICK_DAG:
        return
    run_id = dag_run.run_id
    try:
        engine = make_engine(Settings.from_env().metadata_url)
        try:
            row = pick_request(engine, run_id) or {}
        finally:
            engine.dispose()
        text = notify.pick_note(state, row.get("summary"), msg)
        if object_session(dag_run) is not None:
            dag_run.note = text
        else:  # dag.test() hands the run over detached: a session of its own, never the thread's scoped one
            _write_note(dag_run.id, text)
    except Exception:  # a note is a courtesy: never let it disturb the scheduler
        log.exception("could not set the note of %s", run_id)


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
