"""Where picked events go: the output RSE's storage (EVENTINDEX_PICKS), whatever machine planned the request; outputs
are written to the worker's scratch space, stored whole, read back and registered through their URIs."""

import json
import tempfile
from pathlib import Path

import pytest

from eventindex import panda, picking
from eventindex.errors import NotFound
from eventindex.picking.outputs import pfn_of, without_credentials
from eventindex.settings import Settings
from tests.conftest import dataset, dataset_events, event_payloads

RUN_ID = "manual__2026-01-01T00:00:00+00:00"
FOLDER = "manual__2026-01-01T00_00_00_00_00"  # the run id as one path component


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """This worker's own scratch space (its TMPDIR)."""
    folder = tmp_path / "worker-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _request(world, out, output: str, every: int = 97, n: int = 30):
    pairs = dataset_events(out, dataset(world, "AOD", tag="f961_m1831"))[::every][:n]
    return pairs, picking.PickRequest.from_params({
        "events": "\n".join(f"{r} {e}" for r, e in pairs), "datatype": "AOD", "version": "f961_m1831",
        "output": output, "files_per_job": 1})


@pytest.mark.parametrize("spelling", ["folder", "file-uri"])
def test_a_request_stores_its_outputs_in_the_picks_rse_and_nothing_in_the_local_home(
        picking_world, eventindex_home, metadata_home, tmp_path, monkeypatch, scratch, spelling):
    world, out, catalog, ddm = picking_world
    rse = tmp_path / "elsewhere" / "picks"
    monkeypatch.setenv("EVENTINDEX_PICKS", str(rse) if spelling == "folder" else rse.as_uri())
    monkeypatch.setenv("EVENTINDEX_PICKS_RSE", "CERN-PROD_SCRATCHDISK")
    pairs, request = _request(world, out, "user.tester.elsewhere.AOD")
    summary = picking.runner_for(Settings.from_env(), RUN_ID, catalog, ddm).run(request)
    folder = rse / FOLDER
    assert summary["found"] == len(pairs) and len(summary["files"]) >= 2
    assert sorted(p.name for p in folder.iterdir()) == sorted(summary["files"])
    assert summary["output_uri"] == (str(folder) if spelling == "folder" else folder.as_uri())
    assert summary["output_rse"] == "CERN-PROD_SCRATCHDISK"
    # nothing in the planner's local folder, nothing left in the worker's scratch space
    assert not (eventindex_home / "picks").exists() and not list(eventindex_home.rglob("*.root"))
    assert list(scratch.iterdir()) == []
    # registered at the output RSE, the PFNs the objects' URIs
    for name in summary["files"]:
        [replica] = ddm.list_replicas([{"scope": "user.tester", "name": name}])
        assert replica["rses"] == {"CERN-PROD_SCRATCHDISK": [(folder / name).as_uri()]}
    got = event_payloads(folder / name for name in summary["files"])
    assert sorted(got) == sorted(e for _, e in pairs)


def test_the_default_output_rse_is_the_local_picks_folder(picking_world, eventindex_home, metadata_home):
    world, out, catalog, ddm = picking_world
    settings = Settings.from_env()
    assert (settings.picks, settings.picks_rse) == (str(eventindex_home.resolve() / "picks"), "LOCAL_DISK")
    _, request = _request(world, out, "user.tester.home.AOD", n=5)
    summary = picking.runner_for(settings, "r1", catalog, ddm).run(request)
    assert summary["output_uri"] == str(eventindex_home.resolve() / "picks" / "r1")
    assert sorted(p.name for p in (eventindex_home / "picks" / "r1").iterdir()) == sorted(summary["files"])


def test_the_transformation_stores_its_output_at_the_output_uri_and_reports_it(picking_world, tmp_path, monkeypatch,
                                                                                scratch):
    world, out, catalog, ddm = picking_world
    _, request = _request(world, out, "user.tester.job.AOD", n=8)
    plan = picking.plan(catalog, ddm, request, files_per_job=50)
    [guids] = plan.jobs
    rse = tmp_path / "rse" / "req1"
    args = ["--output-uri", rse.as_uri(), "--job", "0", "--lfn", "user.tester.job.AOD._00000.1.pool.root"]
    for g in guids:
        args += ["--input", plan.files[g]["pfn"], g, panda.entries_text(plan.files[g]["oids"])]
    workdir = tmp_path / "job"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = panda.run_job_command(args)
    stored = rse / "user.tester.job.AOD._00000.1.pool.root"
    assert result["uri"] == stored.as_uri() and stored.stat().st_size == result["bytes"]
    [reported] = json.loads((workdir / "jobReport.json").read_text())["files"]["output"]
    assert (reported["fsize"], reported["nentries"], reported["guid"]) == (result["bytes"], 8, result["guid"])
    assert list(scratch.iterdir()) == [] and sorted(p.name for p in workdir.iterdir()) == ["jobReport.json"]
    # what the planner finds from PanDA's answer
    state = {"panda_id": 7, "outputs": [{"lfn": result["lfn"], "guid": result["guid"]}]}
    [found] = panda.job_outputs(state, rse.as_uri())
    assert found == {k: result[k] for k in ("lfn", "guid", "uri", "nevents", "bytes")}
    assert picking.verify([found], plan.found) == {"events": 8, "duplicates": 0}


def test_an_output_missing_from_the_rse_is_not_found_naming_where_it_was_looked_for(tmp_path):
    state = {"panda_id": 4100000001, "outputs": [{"lfn": "user.t.x._00000.1.pool.root", "guid": "G"}]}
    with pytest.raises(NotFound, match=r"4100000001 says it produced user\.t\.x\._00000\.1\.pool\.root, but there is "
                                       rf"no such file at {tmp_path}/req/user\.t\.x\._00000\.1\.pool\.root"):
        panda.job_outputs(state, str(tmp_path / "req"))
    with pytest.raises(NotFound, match=f"no output file at {tmp_path}/req/x.root"):
        picking.verify([{"lfn": "x.root", "uri": str(tmp_path / "req" / "x.root")}], [])


def test_pfns_and_what_others_see_carry_no_credentials():
    uri = "s3://AKID:SECRET@picks/prefix/r1/x.root?endpoint_override=127.0.0.1:8333&scheme=http&secret_key=S"
    assert without_credentials(uri) == "s3://picks/prefix/r1/x.root?endpoint_override=127.0.0.1:8333&scheme=http"
    assert pfn_of(uri) == without_credentials(uri)
    assert pfn_of("/data/picks/../picks/r1/x.root") == "file:///data/picks/r1/x.root"
    assert without_credentials("/data/picks/r1") == "/data/picks/r1"
