"""The PanDA backend through the real panda-client against the PanDA STAND-IN (harness/panda_standin.py): what the
client sends decodes to the jobs we mean, the jobs' transformation extracts exactly the planned events, and states,
kills and an unreachable server come back as they should."""

import shlex

import numpy as np
import pytest

from eventindex import panda, picking
from eventindex.errors import ConfigurationError
from eventindex.settings import Settings
from tests.conftest import dataset, dataset_events, event_payloads
from eventindex_harness.polling import wait_for
from eventindex_harness.ports import free_port


def _plan(picking_world, n=120, files_per_job=1):
    world, out, catalog, ddm = picking_world
    aod = dataset(world, "AOD", tag="f961_m1831")
    lines = "\n".join(f"{r} {e}" for r, e in _some_events(out, aod, n))
    req = picking.PickRequest.from_params({"events": lines, "datatype": "AOD", "version": "f961_m1831",
                                           "stream": "physics_Main"})
    return aod, picking.plan(catalog, ddm, req, files_per_job=files_per_job)


def _config():
    return panda.PandaConfig.from_settings(Settings.from_env())


def _some_events(out, aod, n):
    pairs = dataset_events(out, aod)
    rng = np.random.default_rng(11)
    return [pairs[i] for i in rng.choice(len(pairs), n, replace=False)]


def test_entry_lists_travel_as_compact_ranges():
    entries = [9, 0, 1, 2, 7, 10, 11, 2, 500]
    assert panda.entries_text(entries) == "0-2,7,9-11,500"
    assert panda.parse_entries(panda.entries_text(entries)) == sorted(set(entries))


def test_jobs_reach_panda_as_built_and_extract_exactly_the_planned_events(picking_world, panda_standin, tmp_path):
    world, out, catalog, ddm = picking_world
    aod, plan = _plan(picking_world)
    assert len(plan.jobs) >= 2
    cfg = _config()
    specs = [panda.job_spec(cfg, "req1", k, 1, plan.files, guids, str(tmp_path / "out"), "user.tester.p.AOD")
             for k, guids in enumerate(plan.jobs)]
    ids = panda.PandaJobs(cfg).submit(specs)
    assert len(set(ids)) == len(plan.jobs)
    # what the server decoded from panda-client's positional lists
    for k, pid in enumerate(ids):
        job = panda_standin.jobs[pid]
        assert job["jobName"] == f"eventindex_pick.req1.{k:05d}.1" and job["computingSite"] == "ANALY_LOCAL"
        inputs = [f for f in job["Files"] if f["type"] == "input"]
        assert sorted(f["GUID"] for f in inputs) == sorted(plan.jobs[k])
        for f in inputs:
            assert (f["lfn"], f["dataset"], f["scope"]) == (plan.files[f["GUID"]]["lfn"], aod["name"], "data18_13TeV")
        args = shlex.split(job["jobParameters"])
        assert args[args.index("--output-uri") + 1] == str(tmp_path / "out")
        entries = {args[i + 2]: panda.parse_entries(args[i + 3]) for i, a in enumerate(args) if a == "--input"}
        assert entries == {g: plan.files[g]["oids"] for g in plan.jobs[k]}
        assert [f["lfn"] for f in job["Files"] if f["type"] == "output"] == [panda.output_lfn("user.tester.p.AOD", k, 1)]
    jobs = panda.PandaJobs(cfg)
    states = wait_for(lambda: (s := jobs.status(ids)) and all(v["state"] in panda.TERMINAL for v in s.values()) and s)
    assert {v["state"] for v in states.values()} == {"finished"}, states
    outputs = [o for pid in ids for o in panda.job_outputs(states[pid], str(tmp_path / "out"))]
    assert picking.verify(outputs, plan.found) == {"events": len(plan.found), "duplicates": 0}
    src = event_payloads(out / f["path"] for f in aod["files"])
    got = event_payloads(o["uri"] for o in outputs)
    assert got == {e: src[e] for e in got} and len(got) == len(plan.found)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(o["lfn"] for o in outputs)
    # the GUID the pilot reported is the one written in the file
    import uproot

    from eventindex.rootfile import read_fid

    for o in outputs:
        with uproot.open(o["uri"]) as h:
            assert read_fid(h) == o["guid"].upper()


def test_a_failing_transformation_is_reported_failed_with_its_error(picking_world, panda_standin, tmp_path):
    _, plan = _plan(picking_world, n=10, files_per_job=50)
    cfg = _config()
    files = {g: {**f, "pfn": f"file://{tmp_path}/gone.root"} for g, f in plan.files.items()}
    [pid] = panda.PandaJobs(cfg).submit([panda.job_spec(cfg, "bad", 0, 1, files, plan.jobs[0], tmp_path, "user.t.x")])
    state = wait_for(lambda: (s := panda.PandaJobs(cfg).status([pid])[pid])["state"] in panda.TERMINAL and s)
    assert state["state"] == "failed" and "gone.root" in state["error"]


def test_a_stalled_job_can_be_killed_and_unknown_jobs_are_none(picking_world, panda_standin, tmp_path):
    _, plan = _plan(picking_world, n=10, files_per_job=50)
    panda_standin.faults["stall.00000.1"] = "stall"
    cfg = _config()
    jobs = panda.PandaJobs(cfg)
    [pid] = jobs.submit([panda.job_spec(cfg, "stall", 0, 1, plan.files, plan.jobs[0], tmp_path, "user.t.x")])
    wait_for(lambda: jobs.status([pid])[pid]["state"] == "activated")
    jobs.kill([pid])
    assert jobs.status([pid, 12345])[pid]["state"] == "cancelled"
    assert jobs.status([12345]) == {12345: None}


def test_an_unreachable_panda_is_a_clear_transient_error(picking_world, tmp_path, monkeypatch):
    _, plan = _plan(picking_world, n=5, files_per_job=50)
    cfg = panda.PandaConfig(f"http://127.0.0.1:{free_port()}/server/panda")
    with pytest.raises(panda.PandaError, match="127.0.0.1"):
        panda.PandaJobs(cfg).submit([panda.job_spec(cfg, "x", 0, 1, plan.files, plan.jobs[0], tmp_path, "user.t.x")])
    with pytest.raises(panda.PandaError, match="getJobStatus"):
        panda.PandaJobs(cfg).status([1])


def test_calls_without_the_right_token_are_refused(picking_world, panda_standin, tmp_path, monkeypatch):
    _, plan = _plan(picking_world, n=5, files_per_job=50)
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    cfg = _config()
    spec = panda.job_spec(cfg, "x", 0, 1, plan.files, plan.jobs[0], tmp_path, "user.t.x")
    monkeypatch.setenv("OIDC_AUTH_TOKEN_FILE", str(wrong))
    with pytest.raises(panda.PandaError, match="refused"):
        panda.PandaJobs(_config()).submit([spec])
    assert panda_standin.jobs == {}
    monkeypatch.delenv("OIDC_AUTH_TOKEN_FILE")
    with pytest.raises(ConfigurationError, match="needs an ID token"):
        panda.PandaJobs(_config())


def test_a_whole_request_runs_in_process_through_panda_and_a_stalled_job_is_killed(picking_world, panda_standin,
                                                                                   tmp_path, monkeypatch,
                                                                                   metadata_home):
    world, out, catalog, ddm = picking_world
    aod = dataset(world, "AOD", tag="f961_m1831")
    chosen = _some_events(out, aod, 40)
    events = "\n".join(f"{r} {e}" for r, e in chosen)
    monkeypatch.setenv("EVENTINDEX_PICKS", str(tmp_path / "rse"))  # the jobs' outputs go to the output RSE
    runner = picking.runner_for(Settings.from_env(), "inprocess1", catalog, ddm)
    request = picking.PickRequest.from_params({"events": events, "datatype": "AOD", "backend": "panda",
                                               "output": "user.tester.inproc.AOD", "files_per_job": 100})
    summary = runner.run(request, panda.PandaJobs(_config()))
    assert (summary["found"], summary["missing"], summary["backend"]) == (40, 0, "panda")
    src = event_payloads(out / f["path"] for f in aod["files"])
    assert summary["output_uri"] == runner.output_uri == str(tmp_path / "rse" / "inprocess1")
    got = event_payloads(tmp_path / "rse" / "inprocess1" / lfn for lfn in summary["files"])
    assert sorted(got) == sorted(e for _, e in chosen) and got == {e: src[e] for e in got}
    # a job that never ends is killed after the timeout, and the request fails with the reason
    panda_standin.faults[".00000.1"] = "stall"
    stalled = picking.PickRequest.from_params({"events": events, "datatype": "AOD", "backend": "panda",
                                               "output": "user.tester.stall.AOD", "job_timeout_minutes": 0.02})
    with pytest.raises(panda.PandaError, match="timeout"):
        picking.runner_for(Settings.from_env(), "inprocess2", catalog, ddm).run(stalled, panda.PandaJobs(_config()))
    assert [j["jobStatus"] for j in panda_standin.jobs.values() if "inprocess2" in j["jobName"]] == ["cancelled"]
