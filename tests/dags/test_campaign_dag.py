"""Production campaigns through Airflow: each hourly interval starts ingestion for exactly the tasks that finished
in it, read in bites."""

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from eventindex import upstream
from eventindex.sim.world import WorldConfig, simulate
from tests.dags.conftest import task_states


@pytest.fixture
def world(eventindex_home):
    out = eventindex_home / "world"
    return simulate(out, WorldConfig(seed=4, runs=2, events_per_run=400, lumi_blocks=4, mc_events=100,
                                     mc_file_events=100, workers=1)), out


def _tasks(out):
    with sa.create_engine(f"sqlite:///{out / 'upstream.sqlite'}").connect() as conn:
        return conn.execute(sa.text("select task_id, output_datasets, last_update from prodsys_tasks")).all()


def test_bites_return_every_task_of_the_window_once(world):
    _, out = world
    url = f"sqlite:///{out / 'upstream.sqlite'}"
    everything = upstream.finished_tasks(url, datetime(2000, 1, 1), datetime(2100, 1, 1), bite=3)
    assert sorted(t["task_id"] for t in everything) == sorted(r[0] for r in _tasks(out))
    assert len(everything) > 3  # several bites were needed


def test_an_interval_starts_ingestion_of_the_tasks_finished_in_it(dagbag, world):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    _, out = world
    rows = _tasks(out)
    first = min(r[2] for r in rows)
    first = datetime.fromisoformat(str(first)) if not isinstance(first, datetime) else first
    hour_end = first.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    expected = {name for task_id, outputs, at in rows
                for name in __import__("json").loads(outputs)
                if hour_end - timedelta(hours=1) <= datetime.fromisoformat(str(at)) < hour_end
                and ".EVNT." not in name}
    assert expected
    run = dagbag.dags["eventindex_campaign"].test(logical_date=hour_end.replace(tzinfo=timezone.utc))
    assert str(run.state) == "success", task_states(run)
    with create_session() as session:
        started = {r.conf["dataset"] for r in session.query(DagRun).filter(DagRun.dag_id == "eventindex_ingest_campaign")
                   if r.run_id.startswith("prodsys__")}
    assert started == expected
    # every read also brings AMI's view of the production system up to date (from its own stop point)
    from eventindex.ami import derived
    from eventindex.catalog import open_catalog

    mc_aod = next(d["name"] for d in world[0]["datasets"] if d["datatype"] == "AOD" and "dsid" in d)
    q = derived.stored(open_catalog().engine, mc_aod)
    assert q["production_status"] == "produced" and len(q["generation_tasks"]) == 3
    assert q["cross_section_min"] <= q["cross_section_avg"] <= q["cross_section_max"]


def test_reading_an_interval_again_starts_nothing_new_unless_reindex(dagbag, world):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    def runs():
        with create_session() as session:
            return {r.run_id: r.conf for r in session.query(DagRun)
                    .filter(DagRun.dag_id == "eventindex_ingest_campaign")}

    _, out = world
    first = min(datetime.fromisoformat(str(r[2])) for r in _tasks(out))
    hour_end = (first.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).replace(tzinfo=timezone.utc)
    dag = dagbag.dags["eventindex_campaign"]
    assert str(dag.test(logical_date=hour_end).state) == "success"
    before = runs()
    assert str(dag.test(logical_date=hour_end + timedelta(seconds=1)).state) == "success"  # the same window
    assert runs() == before
    assert str(dag.test(logical_date=hour_end + timedelta(seconds=2), run_conf={"reindex": True}).state) == "success"
    new = {k: v for k, v in runs().items() if k not in before}
    assert new and all("__reindex_" in k and v["reindex"] is True for k, v in new.items())
    assert {v["dataset"] for v in new.values()} == {v["dataset"] for v in before.values()}
