"""Announcements accumulate per dataset: one row per job's part; a duplicate changes nothing but the delivery count,
a later attempt of a job supersedes the earlier one (and is handed over again), an earlier one arriving late does
not. The same upsert on SQLite and on a real PostgreSQL."""

import json
import uuid

import pytest
import sqlalchemy as sa

from eventindex import announcements, progress
from eventindex.errors import PoisonMessage
from eventindex.metadata import make_engine, upgrade

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
    (json.dumps({"type": "eventindex.produced", "dataset": DS}), "no per-GUID counts"),
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
