"""The producer's STOMP announcement against a real ActiveMQ on loopback (see conftest.py)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from eventindex.errors import EventIndexError, ProducerError
from eventindex.messaging import AnnounceError
from eventindex.producer import announcement, produce
from eventindex.settings import parse_stomp_url
from eventindex.sim.world import WorldConfig, simulate

pytestmark = pytest.mark.integration

TINY = WorldConfig(seed=7, runs=1, events_per_run=3000, lumi_blocks=20, mc_events=500, mc_file_events=250,
                   raw_file_events=1000, workers=1)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory) -> Path:
    """A tiny simulated world (about 2 s to build); the test reads its ``world.json`` back from disk."""
    world_dir = tmp_path_factory.mktemp("world")
    simulate(world_dir, TINY)
    return world_dir


def world_json(world_dir: Path) -> dict:
    return json.loads((world_dir / "world.json").read_text())


def multi_file_aod(world_dir: Path) -> dict:
    """A real-data AOD dataset of the world with more than one file."""
    found = [d for d in world_json(world_dir)["datasets"]
             if d["datatype"] == "AOD" and d["name"].startswith("data") and len(d["files"]) > 1]
    assert found, "the tiny world has no multi-file AOD dataset; the test needs one"
    return found[0]


def paths_of(world_dir: Path, ds: dict) -> list[Path]:
    return [world_dir / f["path"] for f in ds["files"]]


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_produce_announces_one_persistent_message_per_job(activemq, tiny_world, queue_name, tmp_path):
    ds = multi_file_aod(tiny_world)
    staging = tmp_path / "staging"
    target = parse_stomp_url(activemq.url(queue_name))

    result = produce(ds["name"], paths_of(tiny_world, ds), str(staging), task_id=4242, job_id=17,
                     stomp_target=target)
    assert result.announced

    frames = activemq.consume(queue_name, count=1, wait=10, settle=1.5)
    assert len(frames) == 1, f"expected exactly one announcement, got {len(frames)}"
    frame = frames[0]
    assert frame.headers.get("persistent") == "true", frame.headers
    assert frame.headers.get("content-type", "").startswith("application/json"), frame.headers
    msg = json.loads(frame.body)

    # What the world says the dataset holds.
    world_guids = {f["guid"]: f["nevents"] for f in ds["files"]}
    world_nevents = sum(world_guids.values())
    assert world_nevents == ds["nevents"] > 0
    assert msg["type"] == "eventindex.produced"
    assert (msg["dataset"], msg["task_id"], msg["job_id"]) == (ds["name"], 4242, 17)
    assert msg["nevents"] == world_nevents
    assert msg["guids"] == world_guids
    assert 0 < msg["unique_events"] <= msg["nevents"]

    # What the producer wrote to the staging area.
    parquet = Path(msg["staging_uri"])
    assert parquet.is_file(), f"staging_uri {msg['staging_uri']} is not a file"
    assert parquet.parent == staging.resolve() / ds["name"]
    assert pq.ParquetFile(parquet).metadata.num_rows == msg["nevents"]
    summary = json.loads(Path(msg["summary_uri"]).read_text())
    assert summary["dataset"] == msg["dataset"]
    assert summary["nevents"] == msg["nevents"]
    assert summary["unique_events"] == msg["unique_events"]
    assert summary["created"] == msg["created"]
    assert {g["guid"]: g["nevents"] for g in summary["guids"]} == msg["guids"]
    assert summary["parquet"] == parquet.name
    assert sorted(p.name for p in files_in(staging)) == sorted([parquet.name, Path(msg["summary_uri"]).name])

    # And the message is exactly the producer's announcement of its result (nothing lost in the round trip).
    assert msg == announcement(result)

    # Consumed and acked: nothing left on the queue.
    assert activemq.consume(queue_name, wait=1.0) == []


def test_announcement_survives_a_broker_restart(activemq, tiny_world, queue_name, tmp_path):
    ds = multi_file_aod(tiny_world)
    result = produce(ds["name"], paths_of(tiny_world, ds)[:1], str(tmp_path / "staging"), task_id=7, job_id=1,
                     stomp_target=parse_stomp_url(activemq.url(queue_name)))
    assert result.announced

    old_pid = activemq.proc.pid
    status = activemq.kill()  # kill -9: no orderly shutdown, only what KahaDB has on disk survives
    assert status == -9
    activemq.restart()  # same folder, same KahaDB
    assert activemq.proc.pid != old_pid and activemq.proc.poll() is None

    frames = activemq.consume(queue_name, count=1, wait=15, settle=1.0)
    assert len(frames) == 1, f"expected the announcement to survive the restart, got {len(frames)} messages"
    assert frames[0].headers.get("persistent") == "true"
    assert json.loads(frames[0].body) == announcement(result)


def test_bad_input_announces_nothing(activemq, tiny_world, queue_name, tmp_path):
    ds = multi_file_aod(tiny_world)
    good, victim = paths_of(tiny_world, ds)[:2]
    truncated = tmp_path / "input" / victim.name  # same name, so the GUID in the name still matches
    truncated.parent.mkdir()
    data = victim.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    staging = tmp_path / "staging"

    # The good file comes first: the producer must refuse the job before writing what it has already read.
    with pytest.raises(ProducerError) as err:
        produce(ds["name"], [good, truncated], str(staging), task_id=9, job_id=2,
                stomp_target=parse_stomp_url(activemq.url(queue_name)))
    assert str(truncated) in str(err.value)
    assert "nothing written" in str(err.value)
    assert files_in(staging) == []
    assert activemq.consume(queue_name, wait=2.0) == []


def test_unreachable_broker_is_a_clear_error(tiny_world, tmp_path):
    host, port = "127.0.0.1", 1
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex((host, port)) == 0:
            pytest.fail(f"{host}:{port} is open on this machine; the test needs a closed port")
    ds = multi_file_aod(tiny_world)

    started = time.monotonic()
    with pytest.raises(AnnounceError) as err:
        produce(ds["name"], paths_of(tiny_world, ds), str(tmp_path / "staging"), task_id=1, job_id=1,
                stomp_target=parse_stomp_url(f"stomp://{host}:{port}/queue/eventindex.nowhere"))
    elapsed = time.monotonic() - started
    assert isinstance(err.value, EventIndexError)  # so the CLI shows it as a user-facing message
    assert f"{host}:{port}/" in str(err.value), str(err.value)
    assert elapsed < 15, f"giving up on a closed port took {elapsed:.1f} s"


def test_unreachable_broker_error_says_why(tiny_world, tmp_path):
    ds = multi_file_aod(tiny_world)
    with pytest.raises(AnnounceError) as err:
        produce(ds["name"], paths_of(tiny_world, ds)[:1], str(tmp_path / "staging"),
                stomp_target=parse_stomp_url("stomp://127.0.0.1:1/queue/eventindex.nowhere"))
    reason = str(err.value).rpartition("eventindex.nowhere")[2].strip(" :")
    assert reason, f"the error gives no reason: {str(err.value)!r}"
