"""The Tier-0 semaphore through Airflow: READY datasets get exactly one ingestion run each; the flag turns DONE only
after the dataset is loaded."""

import pytest
import sqlalchemy as sa

from eventindex.ddm import LocalRucio, register_world
from eventindex.sim.world import WorldConfig, simulate
from tests.dags.conftest import task_states


@pytest.fixture
def world(eventindex_home):
    """A world of its own: this test flips the Tier-0 flags."""
    out = eventindex_home / "world"
    w = simulate(out, WorldConfig(seed=3, runs=1, events_per_run=600, lumi_blocks=5, mc_events=100,
                                  mc_file_events=100, workers=1))
    register_world(LocalRucio(f"sqlite:///{eventindex_home / 'rucio.sqlite'}"), w, out)
    return w, out


def _flags(out):
    with sa.create_engine(f"sqlite:///{out / 'upstream.sqlite'}").connect() as conn:
        return dict(conn.execute(sa.text("select name, status from tier0_datasets")).all())


def _ingest_runs():
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id: r.conf for r in session.query(DagRun).filter(DagRun.dag_id == "eventindex_ingest_tier0")
                if r.run_id.startswith("tier0__")}


def test_ready_datasets_start_one_ingestion_each_and_turn_done_after_loading(dagbag, world, eventindex_home):
    from eventindex.producer import produce

    w, out = world
    tier0 = [d for d in w["datasets"] if d["source"] == "tier0"]
    assert set(_flags(out).values()) == {"READY"}
    run = dagbag.dags["eventindex_tier0"].test()
    assert str(run.state) == "success", task_states(run)
    runs = _ingest_runs()
    assert {c["dataset"] for c in runs.values()} >= {d["name"] for d in tier0}
    assert set(_flags(out).values()) == {"READY"}  # nothing loaded yet: nothing DONE
    # a second poll does not start the same datasets again
    dagbag.dags["eventindex_tier0"].test()
    assert len(_ingest_runs()) == len(runs)
    # ingest one dataset (as its triggered run would), then poll: that one, and only it, is DONE
    d = tier0[0]
    produce(d["name"], [str(out / f["path"]) for f in d["files"]], str(eventindex_home / "staging"), 1, 1)
    # (dag.test keeps params of earlier test runs on the shared DAG object: pass every param)
    ingest = dagbag.dags["eventindex_ingest"].test(run_conf={"dataset": d["name"],
                                                             "staging_uri": str(eventindex_home / "staging")})
    assert str(ingest.state) == "success", task_states(ingest)
    dagbag.dags["eventindex_tier0"].test()
    flags = _flags(out)
    assert flags[d["name"]] == "DONE"
    assert [n for n, s in flags.items() if s == "DONE"] == [d["name"]]
    # AMI's view follows the flags: the loaded one complete, the others produced (READY, not indexed)
    from eventindex.ami import derived
    from eventindex.catalog import open_catalog

    engine = open_catalog().engine
    dagbag.dags["eventindex_tier0"].test()  # the poll after DONE: the flag change reaches AMI
    status = {t["name"]: derived.stored(engine, t["name"]) for t in tier0}
    assert status[d["name"]]["production_status"] == "complete"
    assert status[d["name"]]["detail"]["task"] == {"source": "tier0", "task_id": None, "status": "DONE"}
    assert {q["production_status"] for n, q in status.items() if n != d["name"]} == {"produced"}
