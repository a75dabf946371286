"""End to end with Airflow standalone (scheduler, API server, triggerer) started by `scripts/airflow.sh up` on a
private AIRFLOW_HOME and port: `eventindex pick` logs in with a JWT, triggers eventindex_pick through the REST API,
follows it and prints the summary; PanDA jobs (stand-in) are waited for by the real triggerer, a stalled one is killed
and retried; bad parameters through REST are refused with the reason."""

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from eventindex.catalog import open_catalog
from eventindex.catalog.loader import load_staged
from eventindex.settings import Settings
from eventindex.ddm import LocalRucio, register_world
from tests.conftest import dataset, dataset_events, panda_standin_at, upgraded
from tests.e2e.conftest import admin_api, standalone

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, staged_world):
    """One Airflow standalone for this module's tests (each start costs ~45 s): its own EVENTINDEX_HOME with the small
    world registered and loaded, and the PanDA stand-in. The tests use names of their own (outputs, run ids)."""
    world, out, staging = staged_world
    base = tmp_path_factory.mktemp("pick-cli-rest")
    home = base / "eventindex-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVENTINDEX_HOME", str(home))
        for name in ("EVENTINDEX_STAGING", "EVENTINDEX_STOMP_URL"):
            mp.delenv(name, raising=False)
        settings = Settings.from_env()
        home.mkdir(parents=True)
        upgraded(settings.metadata_url)
        register_world(LocalRucio(settings.local_rucio_url), world, out)
        load_staged(open_catalog(settings), str(staging))
        with panda_standin_at(base, mp) as standin, standalone(base / "airflow", home) as env:
            yield env, world, out, standin


def test_a_200k_line_pick_goes_by_the_requests_area_and_reports_found_and_missing(airflow, tmp_path):
    """200,000 lines (3 MiB, over the 1 MiB a run's params carry): the CLI uploads them to the requests area and
    the run gets their events_uri, which its plan reads."""
    env, world, out, _ = airflow
    import uproot

    from eventindex.picking.request import MAX_INLINE_BYTES, parse_events

    aod = dataset(world, "AOD", tag="f961_m1831")
    with uproot.open(out / aod["files"][0]["path"]) as h:
        a = h["events"].arrays(["run_number", "event_number"], library="np")
    run = a["run_number"][0]
    request = tmp_path / "events.txt"
    request.write_text("\n".join(f"{a['run_number'][i]} {a['event_number'][i]}" for i in range(0, 50, 5))
                       + "".join(f"\n{run} {123456789012 + k}" for k in range(199_990)) + "\n")
    assert request.stat().st_size > 2 * MAX_INLINE_BYTES
    done = subprocess.run([sys.executable, "-m", "eventindex.cli.main", "pick", "--events", str(request), "--type", "AOD",
                           "--version", "f961_m1831", "--stream", "physics_Main", "--out", "user.admin.pick.AOD",
                           "--json"], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["state"], summary["found"], summary["missing"]) == ("success", 10, 199_990)
    assert summary["output_dataset"] == "user.admin:user.admin.pick.AOD"
    assert summary["missing_events"][0] == {"run": int(run), "event": 123456789012, "reason": "event not found"}
    conf = admin_api(env)._call("GET", f"/api/v2/dags/eventindex_pick/dagRuns/{summary['run_id']}")["conf"]
    area = Path(env["EVENTINDEX_HOME"]) / "requests"
    assert not conf["events"] and Path(conf["events_uri"]).parent == area
    assert np.array_equal(parse_events(Path(conf["events_uri"]).read_text())[0], parse_events(request.read_text())[0])


def test_bad_params_through_rest_are_refused_with_the_reason(airflow):
    env, _, _, _ = airflow
    api = admin_api(env)
    req = urllib.request.Request(f"{api.url}/api/v2/dags/eventindex_pick/dagRuns", method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {api._token()}"},
                                 data=json.dumps({"dag_run_id": "bad1", "logical_date": None,
                                                  "conf": {"events": "1 2", "datatype": "XAOD"}}).encode())
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=30)
    assert exc.value.code == 400 and "datatype" in exc.value.read().decode()
    _a_run_refused_by_its_plan_says_why_in_its_note_and_the_picks_list(env, api)


def _a_run_refused_by_its_plan_says_why_in_its_note_and_the_picks_list(env, api):
    """As Airflow's trigger form sends it: the events by events_uri alone (events cleared: null), an output in
    another user's scope. Airflow accepts the params; the plan refuses the request, and the scheduler's listener
    writes the reason into the run's note, and `eventindex picks` (what the Picking page lists) shows it."""
    from eventindex.picking.request import upload_events

    uri = upload_events("358031 1\n", str(Path(env["EVENTINDEX_HOME"]) / "requests"))
    run_id = api.trigger("eventindex_pick", {"events": None, "events_uri": uri, "datatype": "AOD",
                                             "output": "user.someone.x.AOD"})
    assert api.wait("eventindex_pick", run_id, timeout_s=600) == "failed"
    reason = ("plan: refused picking request: output: 'user.someone.x.AOD' is in the scope user.someone; admin may "
              "write only to user.admin")
    note = api._call("GET", f"/api/v2/dags/eventindex_pick/dagRuns/{run_id}")["note"]
    assert note == f"**failed** {reason}"
    picks = subprocess.run([sys.executable, "-m", "eventindex.cli.main", "picks", "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
    [row] = [r for r in json.loads(picks.stdout) if r["request_id"] == run_id]
    assert (row["state"], row["error"]) == ("failed", reason)


def test_panda_jobs_are_awaited_by_the_triggerer_and_a_stalled_one_is_retried(airflow, tmp_path):
    env, world, out, panda_standin = airflow
    aod = dataset(world, "AOD", tag="f961_m1831")
    pairs = [p for f in aod["files"] for p in dataset_events(out, {"files": [f]})[0:400:20]]
    request = tmp_path / "events.txt"
    request.write_text("\n".join(f"{r} {e}" for r, e in pairs))
    panda_standin.faults[".00001.1"] = "stall"  # tape staging that never ends: killed after the timeout, retried
    done = subprocess.run([sys.executable, "-m", "eventindex.cli.main", "pick", "--events", str(request), "--type", "AOD",
                           "--version", "f961_m1831", "--stream", "physics_Main", "--out", "user.admin.panda.AOD",
                           "--backend", "panda", "--files-per-job", "1", "--job-timeout", "0.15", "--json"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["state"], summary["found"], summary["missing"], summary["backend"]) == \
        ("success", len(pairs), 0, "panda")
    attempts: dict[str, dict[int, str]] = {}  # job -> attempt -> state
    for j in panda_standin.jobs.values():
        job, attempt = j["jobName"].split(".")[-2:]
        attempts.setdefault(job, {})[int(attempt)] = j["jobStatus"]
    assert set(attempts) == {"00000", "00001"}
    assert attempts["00001"][1] == "cancelled" and len(attempts["00001"]) >= 2  # the stalled job: killed, retried
    for tries in attempts.values():  # however many timeouts a loaded machine caused: the last try finished (an
        last = max(tries)              # earlier one was killed, or finished just as its timeout fired)
        assert tries[last] == "finished" and all(tries[k] in ("cancelled", "finished") for k in tries if k != last), \
            attempts
    assert sorted(summary["files"]) == [f"user.admin.panda.AOD._{job}.{max(tries)}.pool.root"
                                        for job, tries in sorted(attempts.items())]
