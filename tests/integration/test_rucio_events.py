"""Rucio's DID events end to end with the real daemons: the real Rucio server writes CLOSE and ERASE into its
messages table, the real rucio-hermes delivers them to a virtual topic of the real ActiveMQ, and the catalogue drains
its own queue of that topic (``drain`` + ``handle_rucio_event``): a CLOSE reaches the dataset's progress, an ERASE
(rucio-undertaker erasing an expired dataset) hides the dataset from queries and picking's lookup.

Each test publishes to a virtual topic of its own (``VirtualTopic.eventindex_test_<id>``), read from
``Consumer.eventindex.<topic>``: the same shape as the production setting ``rucio_events_destination``. Hermes takes
every message the session's Rucio has written (other tests close datasets too), so the checks look at this test's
datasets only.
"""

from __future__ import annotations

import time
import uuid

import pytest

from eventindex import progress
from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.messaging import announce, drain
from eventindex.rucio_events import handle_rucio_event, parse_rucio_event
from eventindex.settings import StompTarget
from tests.conftest import dataset, upgraded

pytestmark = pytest.mark.integration

SCOPE, RSE = "data18_13TeV", "LOCAL_DISK"
DEADLINE_S = 60.0  # for the broker to hand over what Hermes sent; normally well under a second


@pytest.fixture
def rucio_events(activemq):
    """(our queue of a fresh virtual topic, the topic Hermes publishes to). Our consumer has subscribed once before,
    as the DAG does on its first run: from then on the broker keeps what the topic gets while nobody reads."""
    topic = f"VirtualTopic.eventindex_test_{uuid.uuid4().hex[:12]}"
    target = StompTarget(activemq.host, activemq.port, f"/queue/Consumer.eventindex.{topic}")
    assert drain(target, lambda body: None, idle_s=0.2)["handled"] == 0
    return target, f"/topic/{topic}"


@pytest.fixture
def catalog(tmp_path):
    return EmbeddedCatalog(tmp_path / "cat", upgraded(f"sqlite:///{tmp_path / 'm.sqlite'}"))


def unique_name(like: str = f"{SCOPE}.00358031.physics_Main.merge.AOD.f961_m1831") -> str:
    """A dataset name no other test (nor an earlier session's Rucio) uses: ``like``'s, with a random AMI tag."""
    return f"{like.rsplit('.', 1)[0]}.f961_m{uuid.uuid4().int % 10**7}"


def register(real_rucio, name: str, events: list[int]) -> None:
    """An open dataset in the real Rucio with one file per entry of ``events``."""
    real_rucio.ensure_rse(RSE, [SCOPE])
    files = [{"scope": SCOPE, "name": f"{name}._{i:06d}.pool.root.1", "bytes": 1000 + i, "adler32": "0000000f",
              "pfn": f"file:///nonexistent/{name}._{i:06d}", "meta": {"guid": str(uuid.uuid4()), "events": n}}
             for i, n in enumerate(events, 1)]
    real_rucio.register_dataset(SCOPE, name, files, RSE, close=False)


def deliver(rucio_server, events, catalog, outcome, between=None) -> list[dict]:
    """One cycle of rucio-hermes (then ``between()``, if given), then drain our queue into the catalogue until
    ``outcome()`` holds; what each message did."""
    target, topic = events
    assert rucio_server.hermes(target.port, topic) >= 1
    if between:
        between()
    done: list[dict] = []
    deadline = time.monotonic() + DEADLINE_S
    while not outcome():
        assert time.monotonic() < deadline, f"not seen within {DEADLINE_S:.0f} s; handled: {done}"
        counts = drain(target, lambda body: done.append(
            handle_rucio_event(catalog.engine, catalog, parse_rucio_event(body))), idle_s=0.5)
        assert counts["poison"] == 0, counts
    return done


def test_a_dataset_closed_in_rucio_reaches_the_progress_of_ingestion(rucio_server, real_rucio, rucio_events,
                                                                   catalog):
    name = unique_name()
    register(real_rucio, name, [1200, 800, 500])
    real_rucio.client.close(SCOPE, name)
    assert progress.get(catalog.engine, name) is None  # only Hermes's message can put it there

    started = time.perf_counter()
    done = deliver(rucio_server, rucio_events, catalog, lambda: progress.get(catalog.engine, name) is not None)
    print(f"hermes run + drain: {time.perf_counter() - started:.1f} s for {len(done)} messages")

    row = progress.get(catalog.engine, name)
    assert (row["closed_files"], row["closed_events"]) == (3, 2500) and row["closed_at"] is not None
    assert [d["action"] for d in done if d.get("dataset") == name] == ["closed"]


def test_a_close_published_while_nobody_reads_survives_a_broker_crash(rucio_server, real_rucio, rucio_events,
                                                                    catalog, activemq):
    name = unique_name()
    register(real_rucio, name, [700])
    real_rucio.client.close(SCOPE, name)
    deliver(rucio_server, rucio_events, catalog, lambda: progress.get(catalog.engine, name) is not None,
            between=activemq.restart)  # kill -9 and start again, after Hermes has sent and before we read
    assert progress.get(catalog.engine, name)["closed_events"] == 700


def test_a_dataset_erased_in_rucio_leaves_queries_and_picking_but_not_the_history(
        rucio_server, real_rucio, rucio_events, catalog, staged_world):
    world, _, staging = staged_world
    source = dataset(world, "AOD", tag="f961_m1831")
    name, kept = unique_name(source["name"]), dataset(world, "RAW")["name"]
    # the world's AOD index loaded under this test's own name (a dataset erased in the shared Rucio is gone for good)
    catalog.load(name, sorted(str(p) for p in (staging / source["name"]).glob("*.parquet")))
    catalog.load(kept, sorted(str(p) for p in (staging / kept).glob("*.parquet")))
    first = next(catalog.select(make_selection(dataset=name), ["run_number", "event_number"])).to_pylist()[0]
    run, event = first["run_number"], first["event_number"]
    assert name in catalog.lookup_many([(run, event)]).column("dataset").to_pylist()

    register(real_rucio, name, [f["nevents"] for f in source["files"]])
    real_rucio.client.close(SCOPE, name)
    real_rucio.client.set_metadata(SCOPE, name, "lifetime", -1)  # expired: the undertaker's to erase
    assert rucio_server.undertaker() >= 1
    done = deliver(rucio_server, rucio_events, catalog, lambda: catalog.show(name)["status"] == "erased")

    assert {d["action"] for d in done if d.get("dataset") == name} == {"closed", "erased"}  # in either order
    assert [d["name"] for d in catalog.datasets()] == [kept]
    assert all(m["dataset"] != name for m in catalog.lookup(run, event))
    assert name not in catalog.lookup_many([(run, event)]).column("dataset").to_pylist()
    shown = catalog.show(name)
    assert [h["action"] for h in shown["history"]] == ["load", "erase"]
    assert shown["nevents"] == source["nevents"]  # kept as it was


def test_a_message_on_our_queue_that_is_not_a_rucio_event_goes_to_the_dead_letter_queue(activemq, rucio_events,
                                                                                      catalog):
    target, _ = rucio_events
    announce(target, {"type": "eventindex.produced", "dataset": unique_name()})
    counts = drain(target, lambda body: handle_rucio_event(catalog.engine, catalog, parse_rucio_event(body)),
                   idle_s=0.5, dead_letter=f"{target.destination}.DLQ")
    assert (counts["handled"], counts["poison"]) == (0, 1)
    dead = activemq.consume(target.destination.removeprefix("/queue/") + ".DLQ", count=1)
    assert len(dead) == 1 and "not a Rucio event" in dead[0].headers["eventindex-error"]
