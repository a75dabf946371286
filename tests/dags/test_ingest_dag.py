"""The ingestion DAG run by Airflow (dag.test) on the embedded defaults: the local data catalogue, the local staging
area and the embedded event store under a per-test EVENTINDEX_HOME."""

import pytest
import sqlalchemy as sa

from eventindex.catalog import make_selection, open_catalog
from eventindex.ddm import LocalRucio, register_world
from eventindex.settings import Settings
from tests.conftest import corrupt_copy, dataset
from tests.dags.conftest import task_states


@pytest.fixture
def home(staged_world, eventindex_home):
    world, out, staging = staged_world
    eventindex_home.mkdir(parents=True, exist_ok=True)
    register_world(LocalRucio(f"sqlite:///{eventindex_home / 'rucio.sqlite'}"), world, out)
    return eventindex_home


def test_dag_files_import_without_errors(dagbag):
    assert "eventindex_ingest" in dagbag.dags
    dag = dagbag.dags["eventindex_ingest"]
    assert [t.task_id for t in dag.topological_sort()] == ["wait_complete", "fetch", "validate", "load",
                                                                  "publish"]


def test_ingest_run_loads_the_dataset_and_publishes_the_asset(dagbag, home, staged_world):
    world, _, staging = staged_world
    d = dataset(world, "AOD", tag="f961_m1831")
    dag = dagbag.dags["eventindex_ingest"]
    run = dag.test(run_conf={"dataset": d["name"], "staging_uri": str(staging), "source": "stomp"})
    assert str(run.state) == "success", task_states(run)
    catalog = open_catalog(Settings.from_env())
    assert catalog.count(make_selection(dataset=d["name"])) == d["nevents"]
    # the load task records the source: the run says a STOMP message (a grid job's announcement) triggered it
    assert catalog.show(d["name"])["source"] == "grid"
    # running it again changes nothing: the same version (the same job parts) is loaded once
    run2 = dag.test(run_conf={"dataset": d["name"], "staging_uri": str(staging)})
    assert str(run2.state) == "success"
    assert catalog.count(make_selection()) == d["nevents"]
    assert [h["action"] for h in catalog.show(d["name"])["history"]] == ["load"]
    # unless re-indexing is asked for (a reprocessing campaign re-ingested on purpose)
    run3 = dag.test(run_conf={"dataset": d["name"], "staging_uri": str(staging), "reindex": True})
    assert str(run3.state) == "success"
    assert [h["action"] for h in catalog.show(d["name"])["history"]] == ["load", "reload"]


def test_the_tier0_ingestion_records_its_source(dagbag, home, staged_world):
    world, _, staging = staged_world
    d = dataset(world, "RAW")
    run = dagbag.dags["eventindex_ingest_tier0"].test(run_conf={"dataset": d["name"], "staging_uri": str(staging)})
    assert str(run.state) == "success", task_states(run)
    assert open_catalog(Settings.from_env()).show(d["name"])["source"] == "tier0"


@pytest.mark.parametrize("name, why", [
    ("data17_13TeV:data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831", "differs from the project"),
    ("data18_13TeV.00399999.physics_Main.merge.AOD.f961_m1831", "exists nowhere"),
])
def test_a_dataset_that_cannot_be_ingested_fails_at_once_with_the_reason(dagbag, home, staged_world, name, why):
    """A malformed name (one the form's pattern cannot tell) or a dataset that is nowhere (not staged, not
    announced, unknown to Rucio) will not get better by retrying: the first task fails without retries."""
    _, _, staging = staged_world
    run = dagbag.dags["eventindex_ingest"].test(run_conf={"dataset": name, "staging_uri": str(staging)})
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert str(run.state) == "failed"
    assert str(tis["wait_complete"].state) == "failed" and tis["wait_complete"].try_number == 1
    assert open_catalog(Settings.from_env()).datasets() == []
    if "nowhere" in why:
        from eventindex import progress

        assert why in progress.get(sa.create_engine(Settings.from_env().metadata_url), name)["detail"]


@pytest.mark.parametrize("name, rule", [
    ("data18_13TeV.358031.physics_Main.merge.AOD.f961", "run number '358031' must be 8 digits (e.g. 00358031)"),
    ("data18_13TeV.00358031.physics_Main.merge.AOD", "a AOD dataset needs an AMI tag (e.g. f961_m1831); only RAW has "
                                                     "none"),
])
def test_the_form_takes_any_name_and_a_malformed_one_fails_the_run_at_once_naming_the_rule(dagbag, home, name, rule):
    """Airflow answers a JSON-schema pattern's refusal with the whole regular expression ("Bad Request" in the
    trigger form): the form takes the text, the first task refuses it without retries, and the run's note (where
    the run page shows it, and GET dagRuns returns it) names the rule it breaks."""
    import sqlalchemy as sa
    from airflow.models import DagRun
    from airflow.sdk import Param
    from airflow.utils.session import create_session

    dag = dagbag.dags["eventindex_ingest"]
    schema = dag.params.get_param("dataset").schema
    assert "pattern" not in schema and Param(name, **schema).resolve() == name
    assert "data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831" in dag.params.get_param("dataset").description
    run = dag.test(run_conf={"dataset": name})
    states = task_states(run)
    assert str(run.state) == "failed" and states["wait_complete"] == "failed"
    assert {t for t, s in states.items() if s not in ("None", "upstream_failed")} == {"wait_complete"}
    assert {ti.task_id: ti.try_number for ti in run.get_task_instances()}["wait_complete"] == 1
    with create_session() as session:
        note = session.scalar(sa.select(DagRun).where(DagRun.run_id == run.run_id)).note
    assert note == f"**refused** malformed dataset name {name!r}: {rule}"


def test_a_file_missing_from_rucio_fails_validation_and_loads_nothing(dagbag, home, staged_world):
    world, _, staging = staged_world
    d = dataset(world, "RAW")
    LocalRucio(f"sqlite:///{home / 'rucio.sqlite'}").remove_file(d["scope"], d["name"], d["files"][0]["lfn"])
    run = dagbag.dags["eventindex_ingest"].test(run_conf={"dataset": d["name"], "staging_uri": str(staging)})
    states = task_states(run)
    assert states["validate"] == "failed" and states["load"] != "success"
    assert open_catalog(Settings.from_env()).datasets() == []
    engine = sa.create_engine(Settings.from_env().metadata_url)
    with engine.connect() as conn:
        reports = conn.execute(sa.text("select dataset, file, problem from validation_reports")).all()
    assert (d["name"], d["files"][0]["guid"], "not a file of the dataset in Rucio") in reports


@pytest.fixture
def rucio_connection(rucio_server, real_rucio, staged_world, monkeypatch):
    """The world registered in the real Rucio server, and the Airflow connection that points at it."""
    import json

    world, out, _ = staged_world
    register_world(real_rucio, world, out)
    password = (rucio_server.base / "etc" / "password").read_text().strip()
    monkeypatch.setenv("AIRFLOW_CONN_EVENTINDEX_RUCIO", json.dumps({
        "conn_type": "rucio", "host": rucio_server.url, "login": "ddmlab", "password": password,
        "extra": {"account": "root", "config": rucio_server.config}}))
    return rucio_server


@pytest.mark.integration
def test_ingest_validates_against_a_real_rucio_server(dagbag, rucio_connection, staged_world, eventindex_home):
    world, out, staging = staged_world
    d = dataset(world, "DAOD_PHYS", mc=True)
    run = dagbag.dags["eventindex_ingest"].test(run_conf={"dataset": d["name"], "staging_uri": str(staging)})
    assert str(run.state) == "success", task_states(run)
    assert open_catalog(Settings.from_env()).count(make_selection(dataset=d["name"])) == d["nevents"]


def test_a_corrupt_staging_file_fails_fetch_without_retries(dagbag, home, staged_world, tmp_path):
    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="physics_MinBias")
    copy = corrupt_copy(staging, d["name"], tmp_path / "staging")
    run = dagbag.dags["eventindex_ingest"].test(run_conf={"dataset": d["name"], "staging_uri": str(copy)})
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert str(tis["fetch"].state) == "failed" and tis["fetch"].try_number == 1  # not retried
    assert open_catalog(Settings.from_env()).datasets() == []
    with sa.create_engine(Settings.from_env().metadata_url).connect() as conn:
        problems = [p for (p,) in conn.execute(sa.text("select problem from validation_reports"))]
    assert any("adler32" in p for p in problems)


@pytest.mark.integration
def test_rucio_down_for_a_while_is_retried_then_succeeds(dagbag, rucio_connection, staged_world, eventindex_home):
    import threading
    import time

    rucio_server = rucio_connection
    world, out, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    rucio_server.stop()
    back = threading.Timer(6.0, rucio_server.start)
    back.start()
    try:
        started = time.monotonic()
        run = dagbag.dags["eventindex_ingest"].test(run_conf={"dataset": d["name"], "staging_uri": str(staging)})
    finally:
        back.join()
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert str(run.state) == "success", task_states(run)
    assert tis["wait_complete"].try_number > 1  # failed while Rucio was down, retried, then passed
    assert time.monotonic() - started >= 6


@pytest.mark.parametrize("case", ["unknown to Rucio", "malformed summary"])
def test_a_dataset_unknown_to_rucio_or_a_malformed_summary_fails_the_wait_without_retries(dagbag, home, staged_world,
                                                                                          tmp_path, case):
    """Neither gets better by waiting: the sensor fails on its first try (the grace period set to 0 here; 10 minutes
    by default) with the message in the progress table."""
    import json
    import shutil

    from eventindex import progress

    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    name = d["name"] if case == "malformed summary" else d["name"].replace("express_express", "physics_CosmicCalo")
    folder = tmp_path / "staging" / name
    shutil.copytree(staging / d["name"], folder)
    summary = next(folder.glob("*.summary.json"))
    summary.write_text("{" if case == "malformed summary" else
                       json.dumps({**json.loads(summary.read_text()), "dataset": name}))
    run = dagbag.dags["eventindex_ingest"].test(run_conf={"dataset": name, "staging_uri": str(tmp_path / "staging"),
                                                          "unknown_to_rucio_minutes": 0})
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert str(tis["wait_complete"].state) == "failed" and tis["wait_complete"].try_number == 1
    assert open_catalog(Settings.from_env()).datasets() == []
    detail = progress.get(sa.create_engine(Settings.from_env().metadata_url), name)["detail"]
    assert detail == (f"{name} is unknown to Rucio after 0 minutes" if case == "unknown to Rucio" else
                      f"{summary}: malformed producer summary: not JSON (Expecting property name enclosed in double "
                      "quotes at line 1 column 2)")
