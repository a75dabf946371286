"""STOMP sensing through Airflow with a real ActiveMQ: one ingestion run per announced dataset, duplicates start
nothing new, poison messages go to the dead-letter queue, and nothing is lost when a consumer dies before acking."""

import json
import subprocess
import sys
import time

import pytest
import stomp

from eventindex.producer import announcement, produce
from eventindex.settings import parse_stomp_url
from tests.conftest import dataset

pytestmark = pytest.mark.integration


def _send(broker, queue, bodies):
    conn = stomp.Connection12([(broker.host, broker.port)])
    conn.connect(wait=True)
    for body in bodies:
        conn.send(f"/queue/{queue}", body, headers={"persistent": "true"})
    conn.disconnect()


def _stomp_runs(prefix="stomp__"):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id: r.conf for r in session.query(DagRun).filter(DagRun.dag_id == "eventindex_ingest")
                if r.run_id.startswith(prefix)}


@pytest.fixture
def broker_env(activemq, queue_name, monkeypatch, eventindex_home):
    eventindex_home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("EVENTINDEX_STOMP_URL", activemq.url(queue_name))
    return activemq, queue_name


def test_announcements_start_one_run_each_duplicates_none_poison_aside(dagbag, broker_env, staged_world, tmp_path):
    broker, queue = broker_env
    world, out, _ = staged_world
    before = set(_stomp_runs())
    msgs = []
    for kind in ("RAW", "DAOD_PHYS"):
        d = dataset(world, kind)
        result = produce(d["name"], [str(out / f["path"]) for f in d["files"]], str(tmp_path / "staging"), 5, 1)
        msgs.append(json.dumps(announcement(result)))
    _send(broker, queue, [msgs[0], msgs[1], msgs[0], "{not json", json.dumps({"type": "eventindex.produced",
                                                                             "dataset": "bad.name"})])
    run = dagbag.dags["eventindex_stomp"].test()
    assert str(run.state) == "success"
    new = {k: v for k, v in _stomp_runs().items() if k not in before}
    assert sorted(c["dataset"] for c in new.values()) == sorted(json.loads(m)["dataset"] for m in msgs)
    assert all(c["source"] == "stomp" and c["generation"] == 1 for c in new.values())
    assert broker.consume(queue, wait=2) == []  # everything acked
    dead = broker.consume(f"{queue}.DLQ", count=2, wait=10)
    assert sorted(f.body for f in dead) == sorted(["{not json", json.dumps({"type": "eventindex.produced",
                                                                             "dataset": "bad.name"})])
    # the same announcements again (a producer retry): no new run
    _send(broker, queue, msgs)
    dagbag.dags["eventindex_stomp"].test()
    assert {k for k in _stomp_runs() if k not in before} == set(new)


KILLED_CONSUMER = """
import os, signal, sys
from eventindex.messaging import drain
from eventindex.settings import parse_stomp_url
def handle(body):
    os.kill(os.getpid(), signal.SIGKILL)  # dies after receiving, before recording or acking
drain(parse_stomp_url(sys.argv[1]), handle, max_messages=10)
"""


def test_a_consumer_killed_before_acking_loses_nothing(broker_env):
    from eventindex.messaging import drain

    broker, queue = broker_env
    _send(broker, queue, [f"message {i}" for i in range(5)])
    proc = subprocess.run([sys.executable, "-c", KILLED_CONSUMER, broker.url(queue)], timeout=60)
    assert proc.returncode == -9
    time.sleep(1)
    seen = []
    counts = drain(parse_stomp_url(broker.url(queue)), seen.append, max_messages=100)
    assert sorted(seen) == [f"message {i}" for i in range(5)] and counts["handled"] == 5


def test_announcements_in_flight_survive_a_broker_crash(broker_env, staged_world, tmp_path):
    from eventindex import announcements
    from eventindex.messaging import drain
    from eventindex.metadata import make_engine, upgrade

    broker, queue = broker_env
    world, out, _ = staged_world
    d = dataset(world, "RAW", stream="express_express")
    msg = announcement(produce(d["name"], [str(out / f["path"]) for f in d["files"]], str(tmp_path / "st"), 9, 1))
    from eventindex.messaging import announce

    for i in range(20):  # as producers send: persistent, each confirmed by the broker's receipt
        announce(parse_stomp_url(broker.url(queue)), {**msg, "job_id": i})
    broker.restart(hard=True)  # kill -9 with the messages queued, then start again on the same store
    engine = make_engine(f"sqlite:///{tmp_path / 'meta.sqlite'}")
    upgrade(engine)
    counts = drain(parse_stomp_url(broker.url(queue)),
                   lambda body: announcements.record(engine, announcements.parse_announcement(body)), idle_s=5)
    assert counts["handled"] == 20
    with engine.connect() as conn:
        jobs = sorted(j for (j,) in conn.exec_driver_sql("select job_id from announcements"))
    assert jobs == list(range(20))
