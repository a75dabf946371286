"""Rucio's Hermes messages (CLOSE, ERASE) as the catalogue reads them: what is poison, what is ignored, and what a
CLOSE or an ERASE changes. The bodies are shaped as rucio-hermes 41.5 sends them (hermes.deliver_to_activemq); the
real daemon is in tests/integration/test_rucio_events.py."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventindex import metadata as md
from eventindex import progress
from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.errors import PoisonMessage
from eventindex.rucio_events import handle_rucio_event, parse_rucio_event
from tests.conftest import dataset

AOD = "data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831"


def hermes_body(event_type: str, **payload) -> str:
    return json.dumps({"event_type": event_type, "payload": payload, "created_at": "2026-11-23 18:21:53.377718"})


def close_body(name: str = AOD, scope: str = "data18_13TeV", **counts) -> str:
    return hermes_body("close", scope=scope, name=name, **({"bytes": 123456, "length": 3, "events": 4500} | counts))


def erase_body(name: str = AOD, scope: str = "data18_13TeV") -> str:
    return hermes_body("erase", scope=scope, name=name, account="root")


@pytest.mark.parametrize("body, why", [
    ("", "not a Rucio event: not JSON"),
    ("{'event_type': 'close'}", "not JSON"),
    ("[1, 2]", "a JSON array; expected an object with event_type"),
    (json.dumps({"payload": {"scope": "data18_13TeV", "name": AOD}}), "event_type: Field required"),
    (json.dumps({"event_type": "close"}), "payload: Field required"),
    (json.dumps({"event_type": "close", "payload": "data18_13TeV:" + AOD}), "payload: Input should be a valid dict"),
    (json.dumps({"event_type": None, "payload": {}}), "event_type: Input should be a valid string"),
    (json.dumps({"event_type": "close", "payload": {}}) + " " * (1 << 20), "over the 1048576-byte cap"),
    ("[" * 100_000, "nested too deeply"),
    (hermes_body("close", scope="data18_13TeV", length=3), "Rucio CLOSE event: payload.name: Field required"),
    (hermes_body("erase", name=AOD, account="root"), "Rucio ERASE event: payload.scope: Field required"),
    (hermes_body("ERASE", scope=" ", name=AOD), "payload.scope: String should have at least 1 character"),
    (hermes_body("close", scope=["data18_13TeV"], name=AOD), "payload.scope: Input should be a valid string"),
    (close_body(length="three"), f"CLOSE event for data18_13TeV:{AOD}: payload.length: Input should be a valid "
                                 "integer \\(got 'three'\\)"),
    (close_body(events=-1), "payload.events: Input should be greater than or equal to 0"),
    (close_body(length=True), "payload.length: Input should be a valid integer \\(got True\\)"),
    (close_body(length=3.0), "payload.length: Input should be a valid integer"),
    (close_body(events=1e30), "payload.events: Input should be a valid integer"),
    (close_body(events=2**63), "payload.events: Input should be less than or equal to 9223372036854775807"),
    (close_body(length=2**31), "payload.length: Input should be less than or equal to 2147483647"),  # INTEGER
    (close_body(events="4500"), "payload.events: Input should be a valid integer"),
    (hermes_body("erase", scope="data18_13TeV", name=AOD, account={"a": 1}), "payload.account"),
    (json.dumps({"event_type": "close", "payload": {"scope": "data18_13TeV", "name": AOD}, "created_at": 5}),
     "created_at: Input should be a valid string"),
])
def test_a_body_that_is_not_a_usable_rucio_event_is_poison(body, why):
    with pytest.raises(PoisonMessage, match=why):
        parse_rucio_event(body)


@pytest.mark.parametrize("body", [
    hermes_body("create_dts", scope="data18_13TeV", name=AOD, account="root", expired_at=None),
    hermes_body("register_cnt", scope="data18_13TeV", name=AOD, account="root"),
    hermes_body("transfer-done", scope="data18_13TeV", name="AOD.12345._000001.pool.root.1"),
    hermes_body("open", scope="data18_13TeV", name=AOD),
])
def test_other_event_types_are_ignored_not_poison(body):
    assert parse_rucio_event(body) is None


def test_the_payload_of_an_event_we_ignore_is_not_ours_to_judge():
    assert parse_rucio_event(hermes_body("transfer-done", scope=7, name=None, bytes="many")) is None


def test_scope_and_name_are_read_without_the_blanks_around_them():
    event = parse_rucio_event(close_body(name=f" {AOD}\n", scope="data18_13TeV "))
    assert (event["scope"], event["name"], event["dataset"]) == ("data18_13TeV", AOD, AOD)


@pytest.mark.parametrize("scope, name", [
    ("data18_13TeV", "AOD.12345678._000001.pool.root.1"),  # Rucio erases the files of a dataset too
    ("user.jdoe", "user.jdoe.test_ntuple.v1"),
    ("data18_13TeV", AOD + "_sub0123456789"),  # a transfer helper dataset
])
def test_close_and_erase_of_what_is_not_an_atlas_dataset_are_ignored(scope, name):
    assert parse_rucio_event(close_body(name, scope)) is None
    assert parse_rucio_event(erase_body(name, scope)) is None


def test_a_close_carries_what_rucio_counted():
    event = parse_rucio_event(close_body(events=None))
    assert event == {"event_type": "close", "scope": "data18_13TeV", "name": AOD, "dataset": AOD,
                     "created_at": "2026-11-23 18:21:53.377718", "files": 3, "events": None, "bytes": 123456}


def test_an_erase_names_the_dataset_and_the_account():
    event = parse_rucio_event(hermes_body("ERASE", scope="data18_13TeV", name=AOD, account="root"))
    assert (event["event_type"], event["dataset"], event["account"]) == ("erase", AOD, "root")


@pytest.fixture
def catalog(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    engine = md.make_engine(url)
    md.upgrade(engine)  # opening a catalogue migrates nothing: the DB is made as `eventindex db upgrade` makes it
    engine.dispose()
    return EmbeddedCatalog(tmp_path / "cat", url)


def test_a_close_is_recorded_in_the_progress_of_the_dataset_idempotently(catalog):
    assert progress.get(catalog.engine, AOD) is None
    for _ in range(2):  # delivered twice
        done = handle_rucio_event(catalog.engine, catalog, parse_rucio_event(close_body()))
    assert done["action"] == "closed"
    row = progress.get(catalog.engine, AOD)
    assert (row["closed_files"], row["closed_events"]) == (3, 4500) and row["closed_at"] is not None


def test_an_erase_of_a_dataset_not_in_the_catalogue_changes_nothing_and_says_so(catalog):
    done = handle_rucio_event(catalog.engine, catalog, parse_rucio_event(erase_body()))
    assert done["action"] == "ignored" and "not in the catalogue" in done["note"]
    assert catalog.datasets(include_obsolete=True) == []
    with catalog.engine.connect() as conn:
        assert conn.execute(md.load_history.select()).all() == []


def test_an_ignored_event_changes_nothing(catalog):
    assert handle_rucio_event(catalog.engine, catalog, None)["action"] == "ignored"


def test_an_erased_dataset_leaves_queries_and_lookups_but_not_the_history(catalog, staged_world):
    world, _, staging = staged_world
    aod, raw = dataset(world, "AOD", tag="f961_m1831"), dataset(world, "RAW")
    for d in (aod, raw):
        catalog.load(d["name"], sorted(str(p) for p in (staging / d["name"]).glob("*.parquet")))
    sample = next(catalog.select(make_selection(dataset=aod["name"]), ["run_number", "event_number"])).to_pylist()[0]
    run, event = sample["run_number"], sample["event_number"]
    assert any(m["dataset"] == aod["name"] for m in catalog.lookup(run, event))

    for _ in range(2):  # a redelivered ERASE changes nothing more
        done = handle_rucio_event(catalog.engine, catalog, parse_rucio_event(erase_body(aod["name"])))
    assert done["action"] == "erased" and "already" in done["note"]

    assert [d["name"] for d in catalog.datasets()] == [raw["name"]]
    assert all(m["dataset"] != aod["name"] for m in catalog.lookup(run, event))
    assert aod["name"] not in catalog.lookup_many([(run, event)]).column("dataset").to_pylist()
    shown = catalog.show(aod["name"])
    assert shown["status"] == "erased" and shown["obsolete_at"] is not None
    assert [h["action"] for h in shown["history"]] == ["load", "erase"]
    assert catalog.show(raw["name"])["status"] == "loaded"


def test_an_obsolete_dataset_can_still_be_erased_but_not_made_obsolete_again(catalog, staged_world):
    world, _, staging = staged_world
    aod = dataset(world, "AOD", tag="f961_m1831")
    catalog.load(aod["name"], sorted(str(p) for p in (staging / aod["name"]).glob("*.parquet")))
    catalog.mark_obsolete(aod["name"])
    assert catalog.mark_erased(aod["name"]) is True
    catalog.mark_obsolete(aod["name"])
    shown = catalog.show(aod["name"])
    assert shown["status"] == "erased"
    assert [h["action"] for h in shown["history"]] == ["load", "obsolete", "erase"]


# ---- fuzzing: only an event, None (not for us) or PoisonMessage comes out -----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=16)
    | st.sampled_from(["close", "ERASE", "data18_13TeV", AOD, "user.jdoe"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10)


EDGES = st.sampled_from([2**31 - 1, 2**31, 2**63 - 1, 2**63, 10**30, -1, 1.5, True, "3", [[[]]], {"n": 1}])


@st.composite
def mutated_events(draw) -> str:
    msg = json.loads(draw(st.sampled_from([close_body(), erase_body()])))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["event_type", "payload", "created_at", "scope", "name", "length", "events",
                                      "bytes", "account"]))
        holder = msg if where in ("event_type", "payload", "created_at") or not isinstance(msg.get("payload"), dict) \
            else msg["payload"]
        if draw(st.booleans()):
            holder.pop(where, None)
        else:
            holder[where] = copy.deepcopy(draw(EDGES | json_values))  # EDGES' lists and dicts are shared objects
    return json.dumps(msg)


def event_or_poison(body):
    try:
        event = parse_rucio_event(body)
    except PoisonMessage as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 1000, str(exc)
        return None
    if event is not None and event["event_type"] == "close":  # what reaches the INTEGER and BIGINT columns
        assert all(type(event[k]) is int or event[k] is None for k in ("files", "events", "bytes"))
        assert 0 <= (event["files"] or 0) <= 2**31 - 1 and 0 <= (event["events"] or 0) <= 2**63 - 1
    return event


@settings(max_examples=200, deadline=None)
@given(json_values | st.text(max_size=100) | st.binary(max_size=100))
def test_fuzz_any_body_is_an_event_none_or_poison(value):
    event_or_poison(value if isinstance(value, (str, bytes)) else json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(mutated_events())
def test_fuzz_a_mutated_close_or_erase_is_an_event_none_or_poison(body):
    event_or_poison(body)
