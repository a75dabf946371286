"""Event picking at the library level on the small world: plan, local extraction, verification."""

import numpy as np
import pytest

from eventindex import picking
from tests.conftest import dataset, dataset_events, event_payloads


def _events(out, ds):
    runs, events = zip(*dataset_events(out, ds))
    return np.array(runs), np.array(events)


def test_malformed_requests_are_refused_naming_the_line():
    with pytest.raises(picking.BadRequest, match="line 3"):
        picking.make_request("358031 1\n358031 2\n358031 x\n", "AOD")
    with pytest.raises(picking.BadRequest, match="no events"):
        picking.make_request("# nothing\n\n", "AOD")
    with pytest.raises(picking.BadRequest, match="data type"):
        picking.make_request("1 2", "XAOD")
    with pytest.raises(picking.BadRequest, match="project"):
        picking.make_request("1 2", "AOD", project="data18")
    with pytest.raises(picking.BadRequest, match="more than its maximum"):
        picking.make_request("1 2\n1 3\n1 4", "AOD", max_events=2)


def test_requests_are_sorted_deduplicated_and_split_per_run_in_few_chunks():
    text = "\n".join(f"{350000 + i % 3000} {i}" for i in range(20000)) + "\n350000 0\n"
    req = picking.make_request(text, "AOD")
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
    req = picking.make_request("\n".join(lines), "AOD", version="f961_m1831", stream="physics_Main")
    plan = picking.plan(catalog, ddm, req, files_per_job=2)
    assert plan.summary()["found"] == 200 and plan.summary()["missing"] == 20
    reasons = {(m["run"], m["reason"]) for m in plan.missing}
    assert (999999, "unknown run") in reasons and (int(runs[0]), "event not found") in reasons
    outputs = [picking.extract(plan.files, job, tmp_path / "out", k) for k, job in enumerate(plan.jobs)]
    assert picking.verify(outputs, plan.found) == {"events": 200, "duplicates": 0}
    # payload equal to the source entries
    src = event_payloads(out / f["path"] for f in aod["files"])
    got = event_payloads(o["path"] for o in outputs)
    assert got == {e: src[e] for e in got} and len(got) == 200


def test_raw_of_a_reprocessed_run_and_the_newest_version(picking_world):
    world, out, catalog, ddm = picking_world
    repro = dataset(world, "AOD", tag="r11969_r11784_p4072")
    runs, events = _events(out, repro)
    req = picking.make_request(f"{runs[3]} {events[3]}", "AOD")  # version: newest loaded
    plan = picking.plan(catalog, ddm, req)
    assert plan.datasets == [repro["name"]]
    raw = picking.plan(catalog, ddm, picking.make_request(f"{runs[3]} {events[3]}", "RAW", stream="physics_Main"))
    assert raw.datasets == [dataset(world, "RAW")["name"]]
    assert picking.plan(catalog, ddm, picking.make_request(f"{runs[3]} {events[3]}", "AOD", version="f961_m1831")
                        ).datasets == [dataset(world, "AOD", tag="f961_m1831")["name"]]


def test_verification_catches_a_missing_or_doubled_event(picking_world, tmp_path):
    world, out, catalog, ddm = picking_world
    aod = dataset(world, "AOD", tag="f961_m1831")
    runs, events = _events(out, aod)
    req = picking.make_request("\n".join(f"{runs[i]} {events[i]}" for i in range(10)), "AOD", version="f961_m1831")
    plan = picking.plan(catalog, ddm, req)
    outputs = [picking.extract(plan.files, job, tmp_path / "o", k) for k, job in enumerate(plan.jobs)]
    with pytest.raises(picking.EventIndexError, match="duplicated|unexpected|missing"):
        picking.verify(outputs + outputs, plan.found)
    with pytest.raises(picking.EventIndexError, match="missing"):
        picking.verify(outputs, plan.found + [{"run": 1, "event": 2}])


def test_cli_refuses_bad_requests_with_the_reason(tmp_path):
    import subprocess
    import sys

    events = tmp_path / "events.txt"
    events.write_text("358031 1\n358031 two\n")
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "pick", "--events", str(events), "--type", "AOD",
                           "--dry-run"], capture_output=True, text=True)
    assert done.returncode != 0 and "line 2" in done.stderr
    events.write_text("358031 1\n")
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "pick", "--events", str(events), "--type", "XAOD",
                           "--dry-run"], capture_output=True, text=True)
    assert done.returncode != 0 and "data type 'XAOD'" in done.stderr
