"""What Airflow knows about our runs, read from its own database (the app runs inside the api-server): the ingestion
runs that touched a dataset and a picking run's task instances. URLs are the Airflow UI's."""

from __future__ import annotations

import sqlalchemy as sa

INGEST_DAGS = ("eventindex_ingest", "eventindex_ingest_tier0", "eventindex_ingest_campaign")


def _iso(t) -> str | None:
    return t.isoformat() if t is not None else None


def run_url(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/runs/{run_id}"


def _run(r) -> dict:
    return {"dag_id": r.dag_id, "run_id": r.run_id, "state": str(r.state) if r.state else None,
            "start": _iso(r.start_date), "end": _iso(r.end_date), "url": run_url(r.dag_id, r.run_id),
            "triggered_by": getattr(r, "triggering_user_name", None)}


def dataset_runs(name: str, limit: int = 50) -> list[dict]:
    """The ingestion runs whose parameters name the dataset (every source's run carries ``dataset`` in its conf),
    newest first."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            sa.select(DagRun).where(DagRun.dag_id.in_(INGEST_DAGS))
            .where(sa.or_(DagRun.run_id.contains(name), sa.cast(DagRun.conf, sa.Text).contains(f'"{name}"')))
            .order_by(DagRun.id.desc()).limit(limit)).all()
        return [_run(r) for r in rows if (r.conf or {}).get("dataset") in (name, None) or name in r.run_id]


def pick_run(run_id: str, dag_id: str = "eventindex_pick") -> dict | None:
    """A picking run and its task instances (with the UI's log links), or None when Airflow has no such run."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.scalars(sa.select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first()
        if run is None:
            return None
        tis = session.scalars(sa.select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                            TaskInstance.run_id == run_id)
                              .order_by(TaskInstance.start_date, TaskInstance.task_id, TaskInstance.map_index)).all()
        tasks = [{"task_id": t.task_id, "map_index": t.map_index, "state": str(t.state) if t.state else None,
                  "try_number": t.try_number, "start": _iso(t.start_date), "end": _iso(t.end_date),
                  "log_url": f"{run_url(dag_id, run_id)}/tasks/{t.task_id}"
                             + (f"/mapped/{t.map_index}" if t.map_index >= 0 else "")} for t in tis]
        return {**_run(run), "note": _note(run), "tasks": tasks}


def _note(run) -> str | None:
    note = getattr(run, "note", None)
    return note if isinstance(note, str) or note is None else getattr(note, "content", None)

