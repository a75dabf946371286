"""Event picking at the library level on the small world: plan, local extraction, verification."""

from pathlib import Path

import numpy as np
import pytest

from eventindex import picking
from eventindex.errors import VerificationFailed
from tests.conftest import dataset, dataset_events, event_payloads


def _events(out, ds):
    runs, events = zip(*dataset_events(out, ds))
    return np.array(runs), np.array(events)


def _request(events: str, datatype: str = "AOD", **options) -> picking.PickRequest:
    return picking.PickRequest.from_params({"events": events, "datatype": datatype, **options})


@pytest.mark.parametrize("events, options, message", [
    ("358031 1\n358031 2\n358031 x\n", {}, "events, line 3: not a 'run event' pair"),
    ("# nothing\n\n", {}, "no events"),
    ("1 2", {"datatype": "XAOD"}, "datatype: 'XAOD'"),
    ("1 2", {"project": "data18"}, "project: 'data18'"),
    ("1 2\n1 3\n1 4", {"max_events": 2}, "more than its maximum 2"),
    ("1 2", {"backend": "grid"}, "backend: 'grid'"),
    ("1 2", {"files_per_job": 0}, "files_per_job: 0"),
    ("1 2", {"output": "data18_13TeV/../../etc"}, "output:"),
    ("1 2", {"colour": "red"}, "unknown parameter(s) colour"),
    ("4294967296 1", {}, "line 1: run 4294967296 is out of range"),
    ("1 18446744073709551616", {}, "line 1: event 18446744073709551616 is out of range"),
])
def test_malformed_requests_are_refused_naming_the_parameter_or_line(events, options, message):
    with pytest.raises(picking.BadRequest) as err:
        _request(events, **options)
    assert message in str(err.value)


def test_a_refused_line_is_not_echoed_back():
    with pytest.raises(picking.BadRequest) as err:
        _request("358031 1\nroot:x:0:0:root:/root:/bin/bash\n")
    assert "root" not in str(err.value) and "line 2" in str(err.value)


def test_a_request_survives_its_round_trip_through_dag_params():
    req = _request("358031 7\n358030 5\n358031 7\n", stream="physics_Main", max_events=10, backend="panda")
    again = picking.PickRequest.from_params(req.to_params())
    assert again.events.tolist() == [[358030, 5], [358031, 7]] and again.options() == req.options()
    assert picking.PickRequest.of(req.options()).options() == req.options()


def test_requests_are_sorted_deduplicated_and_split_per_run_in_few_chunks():
    text = "\n".join(f"{350000 + i % 3000} {i}" for i in range(20000)) + "\n350000 0\n"
    req = _request(text)
    assert req.duplicates_in_request == 1 and len(req.events) == 20000
    chunks = picking.run_chunks(req.events, max_chunks=100)
    assert len(chunks) <= 100
    assert sum(len(c) for c in chunks) == 20000
    for a, b in zip(chunks, chunks[1:]):  # whole runs per chunk
        assert a[-1, 0] < b[0, 0]


def test_pick_aod_events_plus_missing_ones_end_to_end(picking_world, tmp_path):
    world, out, catalog, ddm = picking_world
    aod = dataset(world, "AOD", tag="f961_m1831")
    runs, events = _events(out, aod)
    rng = np.random.default_rng(5)
    idx = rng.choice(len(events), 200, replace=False)
    lines = [f"{runs[i]} {events[i]}" for i in idx] + [f"{runs[0]} {10**15 + k}" for k in range(15)] + \
            [f"{999999} {k}" for k in range(5)]
    req = _request("\n".join(lines), version="f961_m1831", stream="physics_Main")
    plan = picking.plan(catalog, ddm, req, files_per_job=2)
    assert plan.summary()["found"] == 200 and plan.summary()["missing"] == 20
    reasons = {(m["run"], m["reason"]) for m in plan.missing}
    assert (999999, "unknown run") in reasons and (int(runs[0]), "event not found") in reasons
    outputs = [picking.extract(plan.files, job, str(tmp_path / "out"), k) for k, job in enumerate(plan.jobs)]
    assert picking.verify(outputs, plan.found) == {"events": 200, "duplicates": 0}
    # small dicts for XCom: where each file is (its URI), its size and events; no local path
    for o in outputs:
        assert set(o) == {"lfn", "guid", "uri", "nevents", "bytes"}
        assert o["uri"] == str(tmp_path / "out" / o["lfn"]) and Path(o["uri"]).stat().st_size == o["bytes"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(o["lfn"] for o in outputs)  # no leftovers
    # payload equal to the source entries
    src = event_payloads(out / f["path"] for f in aod["files"])
    got = event_payloads(o["uri"] for o in outputs)
    assert got == {e: src[e] for e in got} and len(got) == 200


def test_raw_of_a_reprocessed_run_and_the_newest_version(picking_world):
    world, out, catalog, ddm = picking_world
    repro = dataset(world, "AOD", tag="r11969_r11784_p4072")
    runs, events = _events(out, repro)
    req = _request(f"{runs[3]} {events[3]}")  # version: newest loaded
    plan = picking.plan(catalog, ddm, req)
    assert plan.datasets == [repro["name"]]
    raw = picking.plan(catalog, ddm, _request(f"{runs[3]} {events[3]}", "RAW", stream="physics_Main"))
    assert raw.datasets == [dataset(world, "RAW")["name"]]
    assert picking.plan(catalog, ddm, _request(f"{runs[3]} {events[3]}", version="f961_m1831")
                        ).datasets == [dataset(world, "AOD", tag="f961_m1831")["name"]]


def test_verification_catches_a_missing_or_doubled_event(picking_world, tmp_path):
    world, out, catalog, ddm = picking_world
    aod = dataset(world, "AOD", tag="f961_m1831")
    runs, events = _events(out, aod)
    req = _request("\n".join(f"{runs[i]} {events[i]}" for i in range(10)), version="f961_m1831")
    plan = picking.plan(catalog, ddm, req)
    outputs = [picking.extract(plan.files, job, str(tmp_path / "o"), k) for k, job in enumerate(plan.jobs)]
    with pytest.raises(VerificationFailed, match="duplicated|unexpected|missing"):
        picking.verify(outputs + outputs, plan.found)
    with pytest.raises(VerificationFailed, match="missing"):
        picking.verify(outputs, plan.found + [{"run": 1, "event": 2}])


def test_cli_refuses_bad_requests_with_the_reason(tmp_path):
    import subprocess
    import sys

    events = tmp_path / "events.txt"
    events.write_text("358031 1\n358031 two\n")
    done = subprocess.run([sys.executable, "-m", "eventindex.cli.main", "pick", "--events", str(events), "--type", "AOD",
                           "--dry-run"], capture_output=True, text=True)
    assert done.returncode != 0 and "line 2" in done.stderr
    events.write_text("358031 1\n")
    done = subprocess.run([sys.executable, "-m", "eventindex.cli.main", "pick", "--events", str(events), "--type", "XAOD",
                           "--dry-run"], capture_output=True, text=True)
    assert done.returncode != 0 and "datatype: 'XAOD'" in done.stderr


def test_a_format_or_version_the_catalogue_does_not_hold_is_refused_before_any_work(picking_world, tmp_path):
    from eventindex.errors import BadSelection
    from eventindex.metadata import make_engine

    _, _, catalog, ddm = picking_world
    runner = picking.PickRunner(catalog, ddm, make_engine(f"sqlite:///{tmp_path / 'm.sqlite'}"), str(tmp_path / "w"),
                                tmp_path / "o", "typo")
    with pytest.raises(BadSelection, match="f961_m1831"):  # the version the catalogue holds is suggested
        runner.begin(_request("358031 1", version="f961_m1813"))
    assert picking.requests(runner.engine) == []  # nothing recorded
