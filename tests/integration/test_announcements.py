"""Announcements accumulate per dataset: one row per job's part; a duplicate changes nothing but the delivery count,
a later attempt of a job supersedes the earlier one (and is handed over again), an earlier one arriving late does
not. The same upsert on SQLite and on a real PostgreSQL. And on a real ActiveMQ: no malformed message blocks the
good ones behind it (each goes to the dead-letter queue with its reason, acked), while a database that cannot be
written leaves the batch to be redelivered."""

import json
import sqlite3
import threading
import uuid

import pytest
import sqlalchemy as sa
import stomp

from eventindex import announcements, progress
from eventindex.errors import PoisonMessage
from eventindex.message_schema import MAX_BODY_BYTES
from eventindex.messaging import drain_batches
from eventindex.metadata import make_engine, upgrade
from eventindex.settings import parse_stomp_url

DS = "data18_13TeV.00358031.physics_Main.daq.RAW"


def _msg(job: int, attempt: int = 0, n: int = 100) -> dict:
    return announcements.parse_announcement(json.dumps({
        "type": "eventindex.produced", "dataset": DS, "task_id": 7, "job_id": job, "attempt": attempt,
        "guids": {f"00000000-0000-0000-0000-{job:012d}": n}}))


def _rows(engine) -> dict:
    with engine.connect() as conn:
        return {r.job_id: r for r in conn.execute(sa.text(
            "select job_id, attempt, deliveries, message, handed_over_at from announcements"))}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'meta.sqlite'}")
    else:
        engine = make_engine(request.getfixturevalue("postgres").create_database(f"ann_{uuid.uuid4().hex[:10]}"))
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_duplicate_only_counts_a_delivery(engine):
    announcements.record_many(engine, [_msg(1), _msg(2)])
    announcements.record_many(engine, [_msg(1), _msg(1)])
    rows = _rows(engine)
    assert sorted(rows) == [1, 2] and rows[1].deliveries == 3 and rows[2].deliveries == 1
    assert rows[1].attempt == 0


def test_a_later_attempt_supersedes_and_an_earlier_one_arriving_late_does_not(engine):
    announcements.record_many(engine, [_msg(1, n=100)])
    progress.record_loaded(engine, DS, [(7, 1, 0)], 100)
    assert _rows(engine)[1].handed_over_at is not None
    announcements.record_many(engine, [_msg(1, attempt=2, n=90), _msg(1, attempt=1, n=80)])  # one batch, any order
    row = _rows(engine)[1]
    assert (row.attempt, json.loads(row.message)["guids"]) == (2, {"00000000-0000-0000-0000-000000000001": 90})
    assert row.handed_over_at is None  # to be ingested again
    announcements.record_many(engine, [_msg(1, attempt=1, n=80)])  # a late redelivery of attempt 1
    assert _rows(engine)[1].attempt == 2 and _rows(engine)[1].deliveries == 4


def test_the_runs_are_one_per_dataset_and_one_more_for_a_part_after_the_load(engine):
    announcements.record_many(engine, [_msg(1), _msg(2)])
    first = progress.claim_runs(engine)
    assert [(r["dataset"], r["generation"]) for r in first] == [(DS, 1)]
    assert progress.claim_runs(engine) == first  # in flight: the same run again
    progress.record_loaded(engine, DS, [(7, 1, 0), (7, 2, 0)], 200)
    announcements.record_many(engine, [_msg(2)])  # a duplicate after the load
    assert progress.claim_runs(engine) == []
    announcements.record_many(engine, [_msg(2, attempt=1)])  # a re-run after the load
    again = progress.claim_runs(engine)
    assert [(r["dataset"], r["generation"]) for r in again] == [(DS, 2)] and again[0]["run_id"] != first[0]["run_id"]


@pytest.mark.parametrize("body, why", [
    ("{not json", "not JSON"),
    (json.dumps({"type": "other"}), "not an eventindex.produced"),
    (json.dumps({"type": "eventindex.produced", "dataset": "bad.name", "guids": {}}), "malformed dataset name"),
    (json.dumps({"type": "eventindex.produced", "dataset": DS, "task_id": 7, "job_id": 1}), "guids: Field required"),
])
def test_what_cannot_be_an_announcement_is_poison(body, why):
    with pytest.raises(PoisonMessage, match=why):
        announcements.parse_announcement(body)


def test_a_close_before_any_announcement_is_kept_apart_and_the_first_announcement_starts_a_run(engine):
    progress.record_closed(engine, DS, files=2, events=200)
    row = progress.get(engine, DS)
    assert (row["state"], row["closed_files"], row["closed_events"]) == (progress.CLOSED, 2, 200)
    assert progress.claim_runs(engine) == []  # Rucio closes many datasets that are not ours: nothing starts
    announcements.record_many(engine, [_msg(1)])
    assert [(r["dataset"], r["generation"]) for r in progress.claim_runs(engine)] == [(DS, 1)]
    assert progress.get(engine, DS)["closed_at"] is not None  # the CLOSE still counts for completeness


# ---- on the real broker ------------------------------------------------------------------------------------------

def good_body(job: int) -> str:
    """A job's announcement as ``producer.announcement`` shapes it."""
    guid = f"00000000-0000-0000-0000-{job:012d}"
    return json.dumps({"type": "eventindex.produced", "version": 1, "dataset": DS, "task_id": 7, "job_id": job,
                       "attempt": 0, "njobs": None, "staging_uri": f"/staging/{DS}/ei.00000007.{job:06d}.parquet",
                       "summary_uri": f"/staging/{DS}/ei.00000007.{job:06d}.summary.json", "nevents": 100,
                       "unique_events": 100, "guids": {guid: 100}, "created": 1764650000.5})


def poison(job: int, **changes) -> str:
    msg = json.loads(good_body(job))
    msg.update(changes)
    return json.dumps(msg)


# body -> what its eventindex-error header must say; each once blocked the queue or was taken for another value
POISON = {
    poison(101, task_id=None): "task_id: Input should be a valid integer (got None)",
    poison(102, task_id=[7]): "task_id: Input should be a valid integer (got [7])",
    poison(103, attempt={}): "attempt: Input should be a valid integer (got {})",
    poison(104, task_id=1e30): "task_id: Input should be a valid integer (got 1e+30)",
    poison(105, guids={"00000000-0000-0000-0000-000000000105": "100"}):
        "guids.00000000-0000-0000-0000-000000000105: Input should be a valid integer (got '100')",
    poison(106, task_id=1.7): "task_id: Input should be a valid integer (got 1.7)",
    poison(107, task_id=True): "task_id: Input should be a valid integer (got True)",
    poison(108, task_id=2**63): "task_id: Input should be less than or equal to 9223372036854775807",
    poison(109, dataset="data18_13TeV.00358031.physics_Main.daq"): "dataset: malformed dataset name",
    poison(110, padding="x" * MAX_BODY_BYTES): f"over the {MAX_BODY_BYTES}-byte cap",
    "{not json": "announcement: not JSON",
}
NOT_UTF8 = b'{"type": "eventindex.produced", "dataset": "\xff\xfe"}'  # Latin-1 where UTF-8 is due


def send(activemq, queue: str, bodies: list) -> None:
    conn = stomp.Connection12([(activemq.host, activemq.port)])
    conn.connect(wait=True)
    for body in bodies:
        conn.send(f"/queue/{queue}", body, headers={"persistent": "true"})
    conn.disconnect()  # with a receipt: the broker has them all


class _Raw(stomp.ConnectionListener):
    def __init__(self):
        self.frames, self.cond = [], threading.Condition()

    def on_message(self, frame):
        with self.cond:
            self.frames.append(frame)
            self.cond.notify_all()


def take(activemq, queue: str, count: int, wait: float = 15.0, settle: float = 1.0) -> list:
    """The frames of ``/queue/<queue>`` with their bodies as bytes (exactly as stored), acked; waits for ``count``
    and then ``settle`` seconds more, to see any extra one."""
    conn = stomp.Connection12([(activemq.host, activemq.port)], auto_decode=False)
    listener = _Raw()
    conn.set_listener("raw", listener)
    conn.connect(wait=True)
    try:
        conn.subscribe(f"/queue/{queue}", id="raw", ack="client-individual")
        with listener.cond:
            listener.cond.wait_for(lambda: len(listener.frames) >= count, wait)
            listener.cond.wait_for(lambda: len(listener.frames) > count, settle)
            frames = list(listener.frames)
        for frame in frames:
            conn.ack(frame.headers["ack"])
    finally:
        conn.disconnect()
    return frames


def recorded_jobs(engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(j for (j,) in conn.execute(sa.text("select job_id from announcements")))


@pytest.fixture
def sqlite_meta(tmp_path):
    url = f"sqlite:///{tmp_path / 'meta.sqlite'}"
    upgrade(make_engine(url))
    engine = sa.create_engine(url, connect_args={"timeout": 0.2})  # a locked DB fails within 0.2 s
    yield engine, tmp_path / "meta.sqlite"
    engine.dispose()


@pytest.mark.integration
def test_poison_messages_go_to_the_dead_letter_queue_and_the_good_ones_behind_them_are_recorded_in_the_same_drain(
        activemq, queue_name, sqlite_meta):
    engine, _ = sqlite_meta
    bodies, good_jobs = [], []
    for i, bad in enumerate([*POISON, NOT_UTF8]):  # each poison message followed by a good one
        bodies += [bad, good_body(i + 1)]
        good_jobs.append(i + 1)
    send(activemq, queue_name, bodies)

    counts = drain_batches(parse_stomp_url(activemq.url(queue_name)),
                           lambda msgs: announcements.record_many(engine, msgs), announcements.parse_announcement,
                           idle_s=1.0)

    assert (counts["handled"], counts["poison"]) == (len(good_jobs), len(POISON) + 1), counts
    assert recorded_jobs(engine) == good_jobs  # every good one, in this one drain
    assert take(activemq, queue_name, 0, wait=0, settle=1.0) == []  # all acked
    dead = take(activemq, f"{queue_name}.DLQ", len(POISON) + 1)
    assert sorted(f.body for f in dead) == sorted([b.encode() for b in POISON] + [NOT_UTF8])  # bodies unchanged
    for frame in dead:
        reason = frame.headers["eventindex-error"]
        want = "body is not UTF-8 text" if frame.body == NOT_UTF8 else POISON[frame.body.decode()]
        assert want in reason and "\n" not in reason, (want, reason)
        assert frame.headers["eventindex-original-destination"] == f"/queue/{queue_name}"


@pytest.mark.integration
def test_a_parser_bug_met_by_one_message_dead_letters_it_and_a_locked_database_leaves_the_batch_for_redelivery(
        activemq, queue_name, sqlite_meta):
    engine, path = sqlite_meta
    target = parse_stomp_url(activemq.url(queue_name))
    trap = poison(99, note="trips the parser")

    def parse(body: str) -> dict:  # a parser with a bug that this one message meets
        if "trips the parser" in body:
            raise KeyError("note")
        return announcements.parse_announcement(body)

    send(activemq, queue_name, [good_body(1), "{not json", trap, good_body(2)])
    lock = sqlite3.connect(path)
    lock.execute("begin exclusive")  # another process holds the metadata DB: nothing can be recorded
    try:
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            drain_batches(target, lambda msgs: announcements.record_many(engine, msgs), parse, idle_s=1.0)
    finally:
        lock.rollback()
        lock.close()
    assert recorded_jobs(engine) == []
    assert take(activemq, f"{queue_name}.DLQ", 0, wait=0, settle=1.0) == []  # nothing moved aside either

    counts = drain_batches(target, lambda msgs: announcements.record_many(engine, msgs), parse, idle_s=1.0)
    assert (counts["handled"], counts["poison"]) == (2, 2), counts  # all four redelivered, in order
    assert recorded_jobs(engine) == [1, 2]
    dead = {f.body.decode(): f.headers["eventindex-error"] for f in take(activemq, f"{queue_name}.DLQ", 2)}
    assert sorted(dead) == sorted(["{not json", trap])  # each once, although delivered twice
    assert dead[trap].startswith("KeyError while parsing") and "'note'" in dead[trap]
    with engine.connect() as conn:
        assert conn.execute(sa.text("select max(deliveries) from announcements")).scalar() == 1
