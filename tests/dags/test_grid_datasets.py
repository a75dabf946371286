"""Grid datasets, written by the many jobs of a production task, through the real ActiveMQ and Airflow: each job
announces only its own part; the dataset is loaded once, when its parts make the whole of it; a job re-run after
the load reloads it once; a dataset that never completes is reported stuck."""

import json
import threading

import pytest
import stomp

from eventindex import progress
from eventindex.catalog import make_selection, open_catalog
from eventindex.ddm import LocalRucio, register_world
from eventindex.metadata import make_engine
from eventindex.producer import announcement, produce
from eventindex.settings import Settings
from eventindex_harness.polling import wait_for
from tests.dags.conftest import task_states

pytestmark = pytest.mark.integration
TASK = 4242


@pytest.fixture(params=[0])
def grid(request, activemq, queue_name, monkeypatch, eventindex_home, staged_world):
    """A RAW dataset of the world of four files or more, registered (closed) in the local Rucio, to be written by
    three jobs (each test its own run's dataset: the Airflow DB keeps the run ids of the session)."""
    world, out, _ = staged_world
    eventindex_home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("EVENTINDEX_STOMP_URL", activemq.url(queue_name))
    register_world(LocalRucio(f"sqlite:///{eventindex_home / 'rucio.sqlite'}"), world, out)
    d = [x for x in world["datasets"] if x["datatype"] == "RAW" and x["stream"] == "physics_Main"][request.param]
    paths = [str(out / f["path"]) for f in d["files"]]
    assert len(paths) >= 3, "the test needs a dataset of at least three files"
    jobs = {1: paths[:1], 2: paths[1:2], 3: paths[2:]}
    settings = Settings.from_env()

    def job(job_id: int, attempt: int = 0) -> str:
        result = produce(d["name"], jobs[job_id], settings.staging, TASK, job_id, attempt=attempt, njobs=3)
        return json.dumps(announcement(result))

    def send(*bodies):
        conn = stomp.Connection12([(activemq.host, activemq.port)])
        conn.connect(wait=True)
        for body in bodies:
            conn.send(f"/queue/{queue_name}", body, headers={"persistent": "true"})
        conn.disconnect()

    return d, job, send, make_engine(settings.metadata_url)


def _ingest_runs(dagbag, before=()):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id: r.conf for r in session.query(DagRun).filter(DagRun.dag_id == "eventindex_ingest")
                if r.run_id.startswith("stomp__") and r.run_id not in before}


def _sense(dagbag, before) -> dict:
    run = dagbag.dags["eventindex_stomp"].test()
    assert str(run.state) == "success", task_states(run)
    return _ingest_runs(dagbag, before)


def test_a_dataset_of_three_jobs_waits_for_the_last_part_and_is_loaded_once(dagbag, grid, monkeypatch):
    d, job, send, engine = grid
    before = set(_ingest_runs(dagbag))
    a3, a1 = job(3), job(1)
    send(a3, a1, a1)  # out of order, and job 1 twice (at-least-once delivery)
    runs = _sense(dagbag, before)
    assert len(runs) == 1 and next(iter(runs)).startswith(f"stomp__{d['name']}__g1__")  # one run, not one per job
    g1 = next(iter(runs))

    seen = {}

    def last_job_arrives():  # while the run waits: job 2 runs twice, its announcements arrive out of order
        seen.update(wait_for(lambda: (row := progress.get(engine, d["name"])) and row["state"] == progress.WAITING
                             and row, 120, step=0.2, what="the ingestion run waits for its last part"))
        first = job(2)
        send(job(2, attempt=1), first)

    arrival = threading.Thread(target=last_job_arrives)
    arrival.start()
    ingest = dagbag.dags["eventindex_ingest"]
    monkeypatch.setattr(ingest.get_task("wait_complete"), "poke_interval", 2)  # the DAG's 30 s, shortened here
    run = ingest.test(run_conf=runs[g1])
    arrival.join()
    assert str(run.state) == "success", task_states(run)
    assert seen["detail"] == f"waiting for 1 of {len(d['files'])} files; 2 of 3 jobs staged", seen  # job 2's file
    catalog = open_catalog(Settings.from_env())
    assert catalog.count(make_selection(dataset=d["name"])) == d["nevents"]
    assert [h["action"] for h in catalog.show(d["name"])["history"]] == ["load"]
    assert progress.loaded_parts(engine, d["name"]) == [(TASK, 1, 0), (TASK, 2, 1), (TASK, 3, 0)]

    # job 2's late announcements start nothing: that version is in the catalogue
    assert _sense(dagbag, before) == runs
    # a re-run of job 1 after the load starts one more run, which reloads the dataset once
    send(job(1, attempt=1))
    runs2 = _sense(dagbag, before)
    (g2,) = set(runs2) - set(runs)
    assert g2.startswith(f"stomp__{d['name']}__g2__") and set(runs) < set(runs2)
    run = dagbag.dags["eventindex_ingest"].test(run_conf=runs2[g2])
    assert str(run.state) == "success", task_states(run)
    assert [h["action"] for h in catalog.show(d["name"])["history"]] == ["load", "reload"]
    assert catalog.count(make_selection(dataset=d["name"])) == d["nevents"]
    assert _sense(dagbag, before) == runs2


@pytest.mark.parametrize("grid", [1], indirect=True)
def test_a_dataset_that_never_completes_is_reported_stuck(dagbag, grid):
    d, job, send, engine = grid
    before = set(_ingest_runs(dagbag))
    send(job(1))
    runs = _sense(dagbag, before)
    (conf,) = runs.values()
    conf = {**conf, "stuck_after_minutes": 0}
    run = dagbag.dags["eventindex_ingest"].test(run_conf=conf)
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert str(run.state) == "failed" and str(tis["wait_complete"].state) == "failed"
    assert tis["wait_complete"].try_number == 1  # stuck is a report, not a fault to retry
    row = progress.get(engine, d["name"])
    assert row["state"] == progress.STUCK
    assert f"waiting for {len(d['files']) - 1} of {len(d['files'])} files" in row["detail"]
    assert "1 of 3 jobs staged" in row["detail"]
    assert open_catalog(Settings.from_env()).datasets() == []
