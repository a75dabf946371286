"""The producer announcement's declared schema (``announcements.Announcement``): every malformed message is a
``PoisonMessage`` whose one-line reason names the field, nothing is coerced (``1.7``, ``true``, ``"12"`` are not the
integer 1), every value fits its column, and what the producer really sends passes unchanged. Fuzzed with
hypothesis: only ``PoisonMessage`` or an announcement comes out, and what comes out can be recorded."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventindex import announcements
from eventindex.announcements import parse_announcement
from eventindex.errors import PoisonMessage
from eventindex.message_schema import MAX_BODY_BYTES
from eventindex.producer import ProducerResult, announcement

DS = "data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831"
G1, G2 = "3F2504E0-4F89-11D3-9A0C-0305E82C3301", "00000000-0000-0000-0000-00000000002a"
INT64_MAX, INT32_MAX = 2**63 - 1, 2**31 - 1


def sent() -> dict:
    """What ``producer.announcement`` sends for a job of two files (built by the producer's own function)."""
    result = ProducerResult(dataset=DS, task_id=4242, job_id=17, parquet_uri="s3://staging/x.parquet",
                            summary_uri="s3://staging/x.summary.json", nevents=1500, unique_events=1499,
                            files=[{"guid": G1, "nevents": 1000}, {"guid": G2, "nevents": 500}], seconds=1.0,
                            summary={"attempt": 2, "njobs": 40, "created": 1764650000.25})
    return announcement(result)


def body(**changes) -> str:
    msg = sent()
    for key, value in changes.items():
        if value is DROP:
            msg.pop(key)
        else:
            msg[key] = value
    return json.dumps(msg)


DROP = object()


def test_what_the_producer_sends_passes_unchanged():
    msg = sent()
    assert parse_announcement(json.dumps(msg)) == msg
    assert parse_announcement(json.dumps(msg).encode()) == msg  # bytes, as the drain hands them over


def test_a_did_is_read_as_its_dataset_name_and_a_missing_attempt_is_the_first():
    msg = parse_announcement(body(dataset=f"data18_13TeV:{DS}", attempt=DROP))
    assert (msg["dataset"], msg["attempt"]) == (DS, 0)


def test_fields_a_later_producer_adds_pass_through():
    assert parse_announcement(body(site="CERN-PROD", extra={"a": [1, 2]}))["extra"] == {"a": [1, 2]}


@pytest.mark.parametrize("changes, field, why", [
    # the cases of issue 20, each of which blocked the queue
    ({"task_id": None}, "task_id", "valid integer"),
    ({"task_id": [7]}, "task_id", "valid integer"),
    ({"attempt": {}}, "attempt", "valid integer"),
    ({"task_id": 1e30}, "task_id", "valid integer"),
    ({"guids": {G1: "1000", G2: "500"}}, f"guids.{G1}", "valid integer"),
    # no coercion
    ({"task_id": 1.7}, "task_id", "valid integer"),
    ({"task_id": 1.0}, "task_id", "valid integer"),
    ({"task_id": True}, "task_id", "valid integer"),
    ({"job_id": "12"}, "job_id", "valid integer"),
    ({"attempt": False}, "attempt", "valid integer"),
    ({"version": True}, "version", "valid integer"),
    # ranges: non-negative, within the BIGINT (task, job) and INTEGER (attempt) columns
    ({"job_id": -1}, "job_id", "greater than or equal to 0"),
    ({"task_id": INT64_MAX + 1}, "task_id", f"less than or equal to {INT64_MAX}"),
    ({"task_id": 10**30}, "task_id", "less than or equal to"),
    ({"attempt": INT32_MAX + 1}, "attempt", f"less than or equal to {INT32_MAX}"),
    ({"njobs": -3}, "njobs", "greater than or equal to 0"),
    ({"nevents": -1500}, "nevents", "greater than or equal to 0"),
    ({"guids": {G1: -1}}, f"guids.{G1}", "greater than or equal to 0"),
    ({"guids": {G1: 2**64}}, f"guids.{G1}", "less than or equal to"),
    ({"created": "yesterday"}, "created", "valid number"),
    ({"version": 2}, "version", "less than or equal to 1"),
    # required fields
    ({"task_id": DROP}, "task_id", "Field required"),
    ({"job_id": DROP}, "job_id", "Field required"),
    ({"guids": DROP}, "guids", "Field required"),
    ({"dataset": DROP}, "dataset", "Field required"),
    # the dataset name, by the nomenclature's own rules
    ({"dataset": "bad.name"}, "dataset", "expected at least 5 dot-separated fields"),
    ({"dataset": "data18_13TeV.358031.physics_Main.merge.AOD.f961_m1831"}, "dataset", "run number '358031'"),
    ({"dataset": "data18_13TeV.00358031.physics_Main.merge.AOD"}, "dataset", "needs an AMI tag"),
    ({"dataset": DS + "x" * 300}, "dataset", "at most 255 characters"),
    ({"dataset": 358031}, "dataset", "valid string"),
    # extra nesting and wrong shapes
    ({"guids": [G1, G2]}, "guids", "valid dictionary"),
    ({"guids": {G1: {"nevents": 1000}}}, f"guids.{G1}", "valid integer"),
    ({"guids": {G1: [1000]}}, f"guids.{G1}", "valid integer"),
    ({"task_id": {"id": 7}}, "task_id", "valid integer"),
    ({"dataset": [DS]}, "dataset", "valid string"),
    ({"staging_uri": {"bucket": "x"}}, "staging_uri", "valid string"),
    # per-GUID counts: GUID keys, consistent with the totals
    ({"guids": {"not-a-guid": 1500}}, "guids.not-a-guid (a key)", "not a GUID"),
    ({"guids": {G2: 700, G2.upper(): 800}}, "guids", "a GUID appears twice"),
    ({"nevents": 1501}, "guids", "add up to 1500, not nevents 1501"),
    ({"unique_events": 1501}, "unique_events", "more than nevents"),
])
def test_a_malformed_announcement_is_poison_naming_the_field(changes, field, why):
    with pytest.raises(PoisonMessage) as err:
        parse_announcement(body(**changes))
    reason = str(err.value)
    assert f"{field}: " in reason or f"{field} " in reason, reason
    assert why in reason, reason
    assert "\n" not in reason and len(reason) < 1000 and "Traceback" not in reason


@pytest.mark.parametrize("raw, why", [
    ("{not json", "not JSON"),
    ("", "not JSON"),
    (b"\xff\xfe\x00", "not JSON"),
    ('{"type": "eventindex.produced", "task_id": NaN}', "NaN is not a JSON value"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"task_id": ' + "9" * 5000 + "}", "not JSON"),
    ("[]", "a JSON array, not an object"),
    ("null", "a JSON null, not an object"),
    ('"eventindex.produced"', "a JSON string, not an object"),
    (json.dumps({"type": "other"}), "type is 'other'"),
    (json.dumps({"type": ["eventindex.produced"]}), "type is ['eventindex.produced']"),
    (body(task_id=DROP, type=DROP), "type is None"),
])
def test_a_body_that_is_no_announcement_at_all_is_poison(raw, why):
    with pytest.raises(PoisonMessage, match=re.escape(why)):
        parse_announcement(raw)


def test_the_size_cap_is_checked_before_parsing():
    good = body()
    pad = MAX_BODY_BYTES - len(good.encode())
    assert parse_announcement(good[:-1] + " " * pad + "}")["task_id"] == 4242  # exactly 1 MiB: accepted
    with pytest.raises(PoisonMessage, match=f"body of {MAX_BODY_BYTES + 1} bytes is over the"):
        parse_announcement(good[:-1] + " " * (pad + 1) + "}")
    with pytest.raises(PoisonMessage, match="over the"):  # multi-byte characters count as bytes
        parse_announcement('{"x": "' + "é" * (MAX_BODY_BYTES // 2) + '"}')


def test_a_reason_stays_one_short_line_however_long_the_input():
    with pytest.raises(PoisonMessage) as err:
        parse_announcement(body(guids={"a\n" * 5000: 1}, task_id="x" * 100_000, job_id=[[1] * 10_000],
                                attempt="\n" * 1000))
    reason = str(err.value)
    assert "\n" not in reason and len(reason) < 700, reason
    assert "task_id" in reason and "job_id" in reason and "(+1 more)" in reason


# ---- fuzzing -----------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.sampled_from([DS, G1, G2, "eventindex.produced", "12", "1.7", "", f"data18_13TeV:{DS}"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8) | st.sampled_from(
        [G1, G2, "task_id", "guids"]), children, max_size=4),
    max_leaves=12)

FIELDS = list(sent()) + ["other"]


@st.composite
def mutated(draw) -> dict:
    """A good announcement with one to three fields replaced by arbitrary JSON or dropped, sometimes in its
    per-GUID counts."""
    msg = sent()
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(FIELDS + ["guids.key", "guids.value"]))
        if key == "guids.key":
            msg["guids"] = {draw(st.text(max_size=40) | st.sampled_from([G1.lower(), str(uuid.UUID(G2)),
                                                                         G1.replace("-", "")])): 1500}
        elif key == "guids.value":
            msg["guids"] = {G1: draw(json_values), G2: 500}
        elif draw(st.booleans()):
            msg.pop(key, None)
        else:
            msg[key] = draw(json_values)
    return msg


def accepted_or_poison(raw) -> dict | None:
    """Only an announcement or PoisonMessage may come out (anything else would block the queue)."""
    try:
        return parse_announcement(raw)
    except PoisonMessage as exc:
        reason = str(exc)
        assert reason and "\n" not in reason and len(reason) < 1000, reason
        return None


def assert_fits_the_schema(msg: dict) -> None:
    """The schema restated by hand: what was accepted has exact integer ids and counts in range, GUID keys."""
    for key, top in (("task_id", INT64_MAX), ("job_id", INT64_MAX), ("attempt", INT32_MAX)):
        assert type(msg[key]) is int and 0 <= msg[key] <= top, (key, msg[key])
    assert msg["type"] == "eventindex.produced" and msg.get("version", 1) == 1
    assert all(type(n) is int and 0 <= n <= INT64_MAX for n in msg["guids"].values())
    assert len({uuid.UUID(g) for g in msg["guids"]}) == len(msg["guids"])
    if msg.get("nevents") is not None:
        assert sum(msg["guids"].values()) == msg["nevents"]


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fuzz_any_json_value_is_an_announcement_or_poison(value):
    msg = accepted_or_poison(json.dumps(value))
    assert msg is None  # nothing random is an announcement: it needs type, dataset, ids and counts


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_fuzz_any_body_is_an_announcement_or_poison(raw):
    assert accepted_or_poison(raw) is None


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from eventindex.metadata import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('schema') / 'meta.sqlite'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_fuzz_a_mutated_announcement_is_poison_or_accepted_and_recordable(engine, msg):
    got = accepted_or_poison(json.dumps(msg))
    if got is None:
        return
    assert_fits_the_schema(got)
    announcements.record_many(engine, [got])  # what the schema accepts, the metadata DB stores
    stored = [m for m in announcements.for_dataset(engine, got["dataset"])
              if (m["task_id"], m["job_id"]) == (got["task_id"], got["job_id"])]
    assert len(stored) == 1 and stored[0]["attempt"] >= got["attempt"]
