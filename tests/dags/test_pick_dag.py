"""Event picking through Airflow on the small world: local and PanDA (stand-in) backends, retries, reruns."""

import numpy as np
import pytest
import sqlalchemy as sa
import uproot

from eventindex.settings import Settings
from tests.conftest import dataset, dataset_events, event_payloads
from tests.dags.conftest import task_states

from eventindex.picking.request import DEFAULTS


def _conf(**params) -> dict:
    """Every param (dag.test keeps params between runs of the same DAG object)."""
    return {**DEFAULTS, **params}


def _aod_request(world, out, n, seed, missing=0):
    aod = dataset(world, "AOD", tag="f961_m1831")
    pairs = dataset_events(out, aod)
    chosen = [pairs[i] for i in np.random.default_rng(seed).choice(len(pairs), n, replace=False)]
    lines = [f"{r} {e}" for r, e in chosen] + [f"{pairs[0][0]} {10**15 + k}" for k in range(missing)]
    return aod, chosen, "\n".join(lines)


def _output_files(rucio, scope, name):
    files = rucio.list_files(scope, name)
    return {f["name"]: rucio.list_replicas([{"scope": scope, "name": f["name"]}])[0]["rses"]["LOCAL_DISK"][0][7:]
            for f in files}


def _pick_rows():
    with sa.create_engine(Settings.from_env().metadata_url).connect() as conn:
        return conn.execute(sa.text("select request_id, state, found, missing, output_dataset from pick_requests "
                                    "order by created")).all()



def test_pick_run_extracts_exactly_the_found_events_and_registers_the_output(dagbag, loaded, eventindex_home, tmp_path,
                                                                            monkeypatch):
    world, out, _, _, rucio = loaded
    rse = tmp_path / "output-rse"  # not the local home: where every worker stores and reads the outputs
    monkeypatch.setenv("EVENTINDEX_PICKS", str(rse))
    monkeypatch.setenv("EVENTINDEX_PICKS_RSE", "PICKS_DISK")
    aod = dataset(world, "AOD", tag="f961_m1831")
    with uproot.open(out / aod["files"][0]["path"]) as h:
        a = h["events"].arrays(["run_number", "event_number"], library="np")
    idx = np.random.default_rng(2).choice(len(a["event_number"]), 100, replace=False)
    lines = [f"{a['run_number'][i]} {a['event_number'][i]}" for i in idx] + [f"{a['run_number'][0]} {10**15 + k}"
                                                                            for k in range(10)]
    run = dagbag.dags["eventindex_pick"].test(run_conf=_conf(
        events="\n".join(lines), datatype="AOD", project="data18_13TeV", stream="physics_Main", version="f961_m1831",
        output="user.eventindex.pick1.AOD"))
    assert str(run.state) == "success", task_states(run)
    files = rucio.list_files("user.eventindex", "user.eventindex.pick1.AOD")
    got = []
    for f in files:
        path = rucio.list_replicas([{"scope": "user.eventindex", "name": f["name"]}])[0]["rses"]["PICKS_DISK"][0][7:]
        assert path.startswith(str(rse) + "/")
        with uproot.open(path) as h:
            got += h["events"]["event_number"].array(library="np").tolist()
    assert sorted(got) == sorted(int(a["event_number"][i]) for i in idx)
    assert not (eventindex_home / "picks").exists() and not list(eventindex_home.rglob("*.root"))
    with sa.create_engine(Settings.from_env().metadata_url).connect() as conn:
        row = conn.execute(sa.text("select state, found, missing, output_dataset from pick_requests")).one()
    assert tuple(row) == ("done", 100, 10, "user.eventindex:user.eventindex.pick1.AOD")


def test_the_panda_backend_without_a_panda_server_is_refused_before_any_work(dagbag, loaded, monkeypatch):
    for key in ("EVENTINDEX_PANDA_URL", "PANDA_URL"):
        monkeypatch.delenv(key, raising=False)
    run = dagbag.dags["eventindex_pick"].test(run_conf=_conf(events="358031 1", datatype="AOD", backend="panda"))
    assert task_states(run)["plan"] == "failed"
    [row] = _pick_rows()
    assert row.state == "failed"
    with sa.create_engine(Settings.from_env().metadata_url).connect() as conn:
        assert "no PanDA server is configured" in conn.execute(sa.text("select summary from pick_requests")).scalar_one()


def test_bad_pairs_are_refused_before_any_work(dagbag, loaded):
    run = dagbag.dags["eventindex_pick"].test(run_conf=_conf(events="358031 1\nnot a pair\n", datatype="AOD"))
    states = task_states(run)
    assert states["plan"] == "failed" and "extract" not in {k for k, v in states.items() if v == "success"}


def test_panda_jobs_that_fail_or_stall_once_are_retried_and_the_request_succeeds(dagbag, loaded, panda_standin):
    world, out, _, _, rucio = loaded
    aod, chosen, text = _aod_request(world, out, 150, seed=3, missing=4)
    panda_standin.faults.update({".00000.1": "fail", ".00001.1": "stall"})  # first attempts of jobs 0 and 1
    run = dagbag.dags["eventindex_pick"].test(run_conf=_conf(
        events=text, datatype="AOD", stream="physics_Main", version="f961_m1831", output="user.eventindex.panda.AOD",
        backend="panda",
        files_per_job=1, job_timeout_minutes=0.1))
    assert str(run.state) == "success", task_states(run)
    jobs = sorted(panda_standin.jobs.values(), key=lambda j: j["PandaID"])
    by_name = {".".join(j["jobName"].split(".")[-2:]): j["jobStatus"] for j in jobs}  # job.attempt -> state
    n = len({name.split(".")[0] for name in by_name})
    assert n == len(aod["files"]) >= 2 and by_name == {"00000.1": "failed", "00001.1": "cancelled", "00000.2": "finished",
                                                  "00001.2": "finished", **{f"{k:05d}.1": "finished" for k in range(2, n)}}
    paths = _output_files(rucio, "user.eventindex", "user.eventindex.panda.AOD")
    assert sorted(paths) == sorted(f"user.eventindex.panda.AOD._{k:05d}.{2 if k < 2 else 1}.pool.root"
                                   for k in range(n))
    src = event_payloads(out / f["path"] for f in aod["files"])
    got = event_payloads(paths.values())
    assert sorted(got) == sorted(e for _, e in chosen) and got == {e: src[e] for e in got}
    assert [tuple(r)[1:] for r in _pick_rows()] == [("done", 150, 4, "user.eventindex:user.eventindex.panda.AOD")]


def test_a_job_failing_every_attempt_fails_the_request_with_the_reason(dagbag, loaded, panda_standin):
    world, out, _, _, rucio = loaded
    _, _, text = _aod_request(world, out, 30, seed=5)
    panda_standin.faults.update({f".00000.{k}": "fail" for k in (1, 2, 3)})  # every try of job 0
    run = dagbag.dags["eventindex_pick"].test(run_conf=_conf(
        events=text, datatype="AOD", stream="physics_Main", output="user.eventindex.doomed.AOD", backend="panda",
        files_per_job=1))
    assert str(run.state) == "failed"
    assert sorted(j["jobStatus"] for j in panda_standin.jobs.values() if ".00000." in j["jobName"]) == ["failed"] * 3
    [row] = _pick_rows()
    assert row.state == "failed" and row.output_dataset is None
    with sa.create_engine(Settings.from_env().metadata_url).connect() as conn:
        error = conn.execute(sa.text("select summary from pick_requests")).scalar_one()
    assert "extract" in error and "injected pilot failure" in error
    from eventindex.ddm import DIDNotFound

    with pytest.raises(DIDNotFound):  # nothing registered
        rucio.list_files("user.eventindex", "user.eventindex.doomed.AOD")


def test_rerunning_a_finished_request_changes_nothing(dagbag, loaded):
    world, out, _, _, rucio = loaded
    _, chosen, text = _aod_request(world, out, 40, seed=4, missing=2)
    conf = _conf(events=text, datatype="AOD", output="user.eventindex.again.AOD", files_per_job=1)
    first = dagbag.dags["eventindex_pick"].test(run_conf=conf)
    assert str(first.state) == "success", task_states(first)
    before = {name: (path, uproot.open(path)["events"].num_entries) for name, path in
              _output_files(rucio, "user.eventindex", "user.eventindex.again.AOD").items()}
    rows = _pick_rows()
    again = dagbag.dags["eventindex_pick"].test(run_conf=conf)
    assert str(again.state) == "success"
    states = task_states(again)
    assert states["plan"] == "skipped" and states["verify_register_summary"] == "skipped", states
    after = {name: (path, uproot.open(path)["events"].num_entries) for name, path in
             _output_files(rucio, "user.eventindex", "user.eventindex.again.AOD").items()}
    assert after == before and sum(n for _, n in after.values()) == 40
    assert _pick_rows() == rows
    # the same output name for other events is refused before any work
    other = dagbag.dags["eventindex_pick"].test(run_conf={**conf, "events": "\n".join(text.splitlines()[:5])})
    assert task_states(other)["plan"] == "failed"
    assert _output_files(rucio, "user.eventindex", "user.eventindex.again.AOD").keys() == before.keys()


@pytest.mark.parametrize("output, reason", [
    ("data18_13TeV.00358031.physics_Main.merge.AOD.f961_m9999",
     "output: 'data18_13TeV.00358031.physics_Main.merge.AOD.f961_m9999' is not a dataset in a user or group scope "
     "like user.jdoe.picked.AOD"),
    ("user.tester.x.AOD",
     "output: 'user.tester.x.AOD' is in the scope user.tester; eventindex may write only to user.eventindex")])
def test_an_output_outside_the_callers_scopes_is_refused_with_the_reason_in_the_note_and_the_list(
        dagbag, loaded, eventindex_home, output, reason):
    """As a run triggered from Airflow's form (the web app and the CLI refuse it before triggering): the plan
    refuses it before any work, and the reason, one line, is the run's note and the request's error in the list the
    Picking page and `eventindex picks` read, not only in the task's log."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    from eventindex.metadata import make_engine
    from eventindex.picking.history import listing

    run = dagbag.dags["eventindex_pick"].test(run_conf=_conf(events="358031 1", datatype="AOD", output=output))
    assert task_states(run)["plan"] == "failed"  # dag.test() acts as the service account: user.eventindex only
    error = f"plan: refused picking request: {reason}"
    [row] = listing(make_engine(Settings.from_env().metadata_url))
    assert (row["request_id"], row["state"], row["requested"], row["found"], row["output_dataset"]) == \
        (run.run_id, "failed", 0, None, None)
    assert row["error"].startswith(error) and "\n" not in row["error"]
    with create_session() as session:
        note = session.scalar(sa.select(DagRun).where(DagRun.run_id == run.run_id)).note
    assert note.startswith(f"**failed** {error}") and "\n" not in note and "task_failure" not in note
    assert not (eventindex_home / "work").exists() and not (eventindex_home / "picks").exists()


def test_a_request_uploaded_to_the_requests_area_is_read_by_uri(dagbag, loaded, eventindex_home):
    from eventindex.picking.request import upload_events

    world, out, _, _, _ = loaded
    _, _, text = _aod_request(world, out, 20, seed=5)
    uri = upload_events(text, str(eventindex_home / "requests"))
    # what Airflow's form sends for a request given by events_uri alone: events cleared (null); the form requires
    # a field whose type does not admit null, so events must admit it
    events = dagbag.dags["eventindex_pick"].params.get_param("events").schema
    assert "null" in events["type"] and events["format"] == "multiline"
    run = dagbag.dags["eventindex_pick"].test(run_conf=_conf(events=None, events_uri=uri, datatype="AOD",
                                                             output="user.eventindex.byuri.AOD"))
    assert str(run.state) == "success", task_states(run)
    assert [tuple(r)[1:] for r in _pick_rows()] == [("done", 20, 0, "user.eventindex:user.eventindex.byuri.AOD")]
