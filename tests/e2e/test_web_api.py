"""The EventIndex web app's REST API on a real Airflow standalone (the plugin loaded by the api-server, Airflow's
own JWTs and roles): who may do what (401 / 403), bad parameters (400 naming them, nothing changed), and answers equal
to the CLI's on the same catalogue."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import dataset, dataset_events

pytestmark = pytest.mark.integration


def _aod(web):
    return dataset(web.world, "AOD", tag="f961_m1831")


def test_no_token_or_a_forged_one_is_401_on_every_route(web):
    forged = web.token("viewer")[:-4] + "AAAA"
    for method, path in [("GET", "/api/v1/datasets"), ("GET", "/api/v1/count?type=RAW"), ("GET", "/api/v1/picks"),
                         ("POST", f"/api/v1/datasets/{_aod(web)['name']}/obsolete"), ("POST", "/api/v1/picks")]:
        assert web.call(method, path, user=None)[0] == 401, path
        assert web.call(method, path, user=None, token=forged)[0] == 401, path
        assert web.call(method, path, user=None, token="not-a-jwt")[0] == 401, path


def test_a_viewer_reads_but_may_neither_declare_obsolete_nor_submit_a_pick(web):
    name = _aod(web)["name"]
    assert web.call("GET", "/api/v1/datasets", user="viewer")[0] == 200
    picks_before = web.call("GET", "/api/v1/picks", user="viewer")[1]
    before = web.call("GET", f"/api/v1/datasets/{name}", user="viewer")[1]["status"]  # whatever other tests did
    status, body, _ = web.call("POST", f"/api/v1/datasets/{name}/obsolete", user="viewer")
    assert status == 403 and "edit access" in body["detail"]
    status, answer, _ = web.submit_pick("viewer", {"datatype": "AOD"}, b"1 2\n")
    assert status == 403, answer
    assert web.call("GET", f"/api/v1/datasets/{name}", user="viewer")[1]["status"] == before  # unchanged
    assert web.call("GET", "/api/v1/picks", user="viewer")[1] == picks_before


def test_bad_parameters_are_400_naming_the_parameter(web):
    cases = {"/api/v1/datasets?state=bogus": "state", "/api/v1/count?run=abc": "run",
             "/api/v1/count?stream=no%20such": "stream", "/api/v1/lookup?run=x&event=1": "run",
             "/api/v1/events-per?by=fill": "by", "/api/v1/select?type=AOD&format=xml": "format",
             "/api/v1/select?type=AOD&columns=no_such_column": "no_such_column",
             "/api/v1/datasets?limit=0": "limit", "/api/v1/rates?bucket=week": "bucket",
             "/api/v1/count?run=4294967296": "run 4294967296 is out of range",
             "/api/v1/lookup?run=4294967296&event=1": "run 4294967296 is out of range",
             "/api/v1/count?trigger=": "trigger is empty", "/api/v1/count?trigger=%20": "trigger is empty",
             "/api/v1/count?bcid=1-999999999999": "BCID 999999999999 is out of range",
             "/api/v1/count?trigger=" + "not%20" * 200 + "HLT_x": "deeper than 32 levels",
             "/api/v1/count?trigger=" + "(" * 900 + "HLT_x" + ")" * 900: "deeper than 32 levels"}
    for path, named in cases.items():
        status, body, _ = web.call("GET", path)
        assert status == 400 and named in body["detail"], (path, status, body)
    assert web.call("GET", "/api/v1/datasets/data18_13TeV.00999999.physics_Main.daq.RAW")[0] == 404


def test_dataset_list_and_details_equal_the_cli(web):
    rest = web.call("GET", "/api/v1/datasets?type=AOD&limit=1000")[1]
    cli = json.loads(web.cli("datasets", "--type", "AOD", "--json"))
    assert rest["datasets"] == cli and rest["total"] == len(cli) > 0
    assert {d["name"] for d in cli} == {d["name"] for d in web.world["datasets"] if d["datatype"] == "AOD"}
    page = web.call("GET", "/api/v1/datasets?limit=2&offset=1")[1]
    everything = web.call("GET", "/api/v1/datasets?limit=1000")[1]
    assert page["datasets"] == everything["datasets"][1:3] and page["total"] == everything["total"]
    name = _aod(web)["name"]
    detail = web.call("GET", f"/api/v1/datasets/{name}")[1]
    assert {k: v for k, v in detail.items() if k != "runs"} == json.loads(web.cli("show", name, "--json"))
    assert detail["nevents"] == _aod(web)["nevents"] == sum(f["nevents"] for f in _aod(web)["files"])


def test_a_datasets_details_list_the_airflow_runs_that_touched_it(web):
    from eventindex.airflow_api import AirflowAPI

    name = dataset(web.world, "RAW", stream="express_express")["name"]
    api = AirflowAPI(web.url, "admin", web.passwords["admin"])
    run_id = api.trigger("eventindex_ingest", {"dataset": name, "staging_uri": str(web.staging)})
    assert api.wait("eventindex_ingest", run_id, poll_s=3, timeout_s=600) == "success"
    runs = web.call("GET", f"/api/v1/datasets/{name}", user="viewer")[1]["runs"]
    assert [(r["dag_id"], r["run_id"], r["state"], r["url"]) for r in runs] == \
        [("eventindex_ingest", run_id, "success", f"/dags/eventindex_ingest/runs/{run_id}")]
    other = dataset(web.world, "RAW", stream="physics_MinBias")["name"]
    assert web.call("GET", f"/api/v1/datasets/{other}")[1]["runs"] == []


def test_operations_show_a_stuck_dataset_and_the_rates_add_up_to_the_loads(web):
    from eventindex import progress
    from eventindex.metadata import make_engine
    from eventindex.settings import Settings

    stuck = "data18_13TeV.00358999.physics_Main.merge.AOD.f961_m1831"
    engine = make_engine(Settings.from_env({"EVENTINDEX_HOME": web.env["EVENTINDEX_HOME"]}).metadata_url)
    progress.mark(engine, stuck, "stuck", "waiting for 2 of 3 files since 7 h")
    ops = web.call("GET", "/api/v1/operations", user="viewer")[1]
    assert (stuck, "stuck", "waiting for 2 of 3 files since 7 h") in \
        [(r["dataset"], r["state"], r["detail"]) for r in ops["in_flight"]]
    [row] = [r for r in ops["by_state"] if r["state"] == "stuck"]
    assert row["source"] is None and row["datasets"] == sum(r["state"] == "stuck" for r in ops["in_flight"]) >= 1
    datasets = web.call("GET", "/api/v1/datasets?limit=1000")[1]["datasets"]
    loaded = [r for r in ops["by_state"] if r["state"] == "loaded"]
    assert sum(r["datasets"] for r in loaded) == sum(d["status"] == "loaded" for d in datasets)
    rates = web.call("GET", "/api/v1/rates?bucket=day")[1]
    loads = [h for d in datasets for h in web.call("GET", f"/api/v1/datasets/{d['name']}")[1]["history"]
             if h["action"] in ("load", "reload")]  # the fixture's loads, and any reload an ingestion run made
    assert sum(r["datasets"] for r in rates) == len(loads) >= len(datasets)
    assert sum(r["events"] for r in rates) == sum(h["nevents"] for h in loads)


def test_queries_equal_the_cli(web):
    run, event = dataset_events(web.world_dir, _aod(web))[7]
    assert web.call("GET", f"/api/v1/lookup?run={run}&event={event}")[1] == \
        json.loads(web.cli("lookup", str(run), str(event), "--json"))
    assert web.call("GET", "/api/v1/count?type=RAW&stream=physics_Main&lumi=3-9")[1] == \
        json.loads(web.cli("count", "--type", "RAW", "--stream", "physics_Main", "--lumi", "3-9", "--json"))
    assert web.call("GET", "/api/v1/overlaps")[1] == json.loads(web.cli("overlaps", "--json"))
    per_lb = web.call("GET", f"/api/v1/events-per?by=lumi_block&type=RAW&run={run}")[1]
    assert per_lb == json.loads(web.cli("count", "--by", "lumi_block", "--type", "RAW", "--run", str(run), "--json"))
    assert sum(r["events"] for r in per_lb) == web.call("GET", f"/api/v1/count?type=RAW&run={run}")[1]["count"]


def test_select_streams_at_most_the_row_limit_it_states(web):
    status, body, headers = web.call("GET", "/api/v1/select?type=AOD&columns=run_number,event_number&limit=7")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert status == 200 and headers["x-row-limit"] == "7" and len(rows) == 7
    assert set(rows[0]) == {"run_number", "event_number"}
    count = web.call("GET", "/api/v1/count?type=RAW&lumi=1-2")[1]["count"]
    everything = web.call("GET", "/api/v1/select?type=RAW&lumi=1-2&format=json")[1]
    assert len(everything) == count > 7


def test_a_user_declares_a_dataset_obsolete_and_restores_it(web):
    name = _aod(web)["name"]
    before = web.call("GET", f"/api/v1/count?dataset={name}")[1]["count"]
    status, body, _ = web.call("POST", f"/api/v1/datasets/{name}/obsolete", user="analyst")
    assert status == 200 and body == {"dataset": name, "status": "obsolete", "changed": True}
    assert web.call("GET", f"/api/v1/count?dataset={name}")[1]["count"] == 0
    assert json.loads(web.cli("show", name, "--json"))["status"] == "obsolete"
    status, body, _ = web.call("POST", f"/api/v1/datasets/{name}/restore", user="analyst")
    assert status == 200 and body["status"] == "loaded" and body["changed"]
    assert web.call("GET", f"/api/v1/count?dataset={name}")[1]["count"] == before > 0
    assert [h["action"] for h in web.call("GET", f"/api/v1/datasets/{name}")[1]["history"]][-2:] == \
        ["obsolete", "restore"]


def test_a_pick_uploaded_as_multipart_runs_as_the_caller_and_reports_found_and_missing(web):
    pairs = dataset_events(web.world_dir, _aod(web))[0:60:6]
    events = ("\n".join(f"{r} {e}" for r, e in pairs) + f"\n{pairs[0][0]} 123456789012\n").encode()
    status, answer, _ = web.submit_pick("analyst", {"datatype": "AOD", "version": "f961_m1831", "stream": "physics_Main",
                                                   "output": "user.analyst.web.AOD", "files_per_job": "5"}, events)
    assert status == 201, answer
    assert answer["run_url"] == f"/dags/eventindex_pick/runs/{answer['request_id']}"
    done = web.wait_pick(answer["request_id"], "analyst")
    assert done["run"]["state"] == "success" and done["run"]["triggered_by"] == "analyst"
    assert (done["found"], done["missing"]) == (len(pairs), 1)
    assert done["output_dataset"] == "user.analyst:user.analyst.web.AOD"
    assert {t["state"] for t in done["tasks"]} <= {"success", "skipped"} and not done["failed_steps"]
    rest = next(r for r in web.call("GET", "/api/v1/picks")[1] if r["request_id"] == answer["request_id"])
    cli = next(r for r in json.loads(web.cli("picks", "--json")) if r["request_id"] == answer["request_id"])
    assert {k: v for k, v in rest.items() if k != "run_url"} == cli and cli["state"] == "done"


def test_a_refused_pick_changes_nothing(web):
    before = web.call("GET", "/api/v1/picks?limit=1000")[1]
    for fields, events, named in [({"datatype": "AOD", "output": "user.admin.stolen.AOD"}, b"1 2\n", "output"),
                                  ({"datatype": "AOD"}, b"1 2\n/etc/passwd\n", "line 2"),
                                  ({"datatype": "XAOD"}, b"1 2\n", "datatype"),
                                  ({"datatype": "AOD", "files_per_job": "many"}, b"1 2\n", "files_per_job"),
                                  ({"datatype": "AOD"}, b"\xff\xfe", "UTF-8")]:
        status, answer, _ = web.submit_pick("analyst", fields, events)
        assert status == 400 and named in answer["detail"], (fields, answer)
        assert "passwd" not in answer["detail"]
    assert web.call("GET", "/api/v1/picks?limit=1000")[1] == before


def test_the_app_documents_itself_in_openapi(web):
    status, spec, _ = web.call("GET", "/openapi.json", user=None)
    assert status == 200
    assert {"/api/v1/datasets", "/api/v1/datasets/{name}/obsolete", "/api/v1/datasets/{name}/restore",
            "/api/v1/lookup", "/api/v1/count", "/api/v1/overlaps", "/api/v1/select", "/api/v1/picks",
            "/api/v1/picks/{request_id}"} <= set(spec["paths"])


def test_a_failed_pick_shows_the_failed_step_and_its_error(web):
    """No PanDA server is configured on this site: the plan step refuses a PanDA request, and the request's details
    name that step, its error and its log."""
    pairs = dataset_events(web.world_dir, _aod(web))[0:5]
    status, answer, _ = web.submit_pick("analyst", {"datatype": "AOD", "backend": "panda"},
                                        "\n".join(f"{r} {e}" for r, e in pairs).encode())
    assert status == 201, answer
    done = web.wait_pick(answer["request_id"], "analyst")
    assert done["run"]["state"] == "failed" and done["state"] == "failed"
    [step] = done["failed_steps"]
    assert step["task_id"] == "plan" and "PanDA" in step["error"]
    assert step["log_url"] == f"/dags/eventindex_pick/runs/{answer['request_id']}/tasks/plan"
    cli = next(r for r in json.loads(web.cli("picks", "--json")) if r["request_id"] == answer["request_id"])
    assert cli["error"] == done["error"] == f"plan: {step['error']}"


def test_a_histogram_equals_the_cli_and_bad_options_are_400_naming_them(web):
    rest = web.call("GET", "/api/v1/histogram?column=lumi_block&column=bcid&bins=6&bins=8&range=0,30&range=0,3600"
                           "&type=RAW&stream=physics_Main&lumi=2-20", user="viewer")[1]
    cli = json.loads(web.cli("histogram", "--column", "lumi_block", "--column", "bcid", "--bins", "6", "--bins", "8",
                             "--range", "0,30", "--range", "0,3600", "--type", "RAW", "--stream", "physics_Main",
                             "--lumi", "2-20", "--json"))
    assert rest == cli and cli["entries"] > 0 and len(cli["counts"]) == 6
    weighted = web.call("GET", "/api/v1/histogram?column=bcid&bins=5&project=mc16_13TeV&weight=true")[1]
    assert weighted == json.loads(web.cli("histogram", "--column", "bcid", "--bins", "5", "--project", "mc16_13TeV",
                                          "--weight", "--json")) and "variances" in weighted
    for query, named in {"column=jet_pt&bins=5": "jet_pt", "column=bcid&bins=0": "bins",
                         "column=bcid&bins=5&range=9,3": "range"}.items():
        status, body, _ = web.call("GET", f"/api/v1/histogram?{query}")
        assert status == 400 and named in body["detail"], (query, status, body)
