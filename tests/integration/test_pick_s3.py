"""Event picking's outputs in an object store (SeaweedFS's S3 gateway on loopback): the local backend and the PanDA
backend (stand-in; its jobs are other processes) store the files under the request's folder in the bucket, nothing
lands in the planner's home, the embedded Rucio registers the objects' URIs (without credentials) at the output RSE,
and verification reads them back through S3."""

import shlex
import tempfile
import uuid
from contextlib import ExitStack

import pyarrow.fs as pafs
import pytest

from eventindex import panda, picking
from eventindex.errors import NotFound
from eventindex.picking.outputs import local_copy
from eventindex.settings import Settings
from eventindex.staging import open_staging
from tests.conftest import dataset, dataset_events, event_payloads


pytestmark = pytest.mark.integration
RSE = "S3_PICKS"


@pytest.fixture
def picks(seaweedfs, monkeypatch, tmp_path, request):
    """A bucket of its own as the output RSE; the S3 credentials in the environment (the PanDA jobs inherit them);
    this worker's scratch space watched."""
    bucket = "picks-" + request.node.name.replace("_", "-")[:40].strip("-").lower()
    seaweedfs.create_bucket(bucket)
    for key, value in seaweedfs.env.items():
        monkeypatch.setenv(key, value)
    uri = seaweedfs.uri(bucket, f"eventindex/picks-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("EVENTINDEX_PICKS", uri)
    monkeypatch.setenv("EVENTINDEX_PICKS_RSE", RSE)
    scratch = tmp_path / "worker-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return uri, scratch


def _request(world, out, output: str, backend: str = "local", n: int = 40):
    pairs = dataset_events(out, dataset(world, "AOD", tag="f961_m1831"))[::53][:n]
    return pairs, picking.PickRequest.from_params({
        "events": "\n".join(f"{r} {e}" for r, e in pairs), "datatype": "AOD", "version": "f961_m1831",
        "output": output, "backend": backend, "files_per_job": 1})


def _objects(uri: str) -> list[str]:
    fs, base = open_staging(uri)
    return sorted(i.path[len(base) + 1:] for i in fs.get_file_info(pafs.FileSelector(base, recursive=True))
                  if i.type == pafs.FileType.File)


def _check(summary, pairs, uri, request_folder, ddm, home, scratch):
    assert summary["found"] == len(pairs) and len(summary["files"]) >= 2
    assert _objects(uri) == sorted(f"{request_folder}/{lfn}" for lfn in summary["files"])
    assert summary["output_uri"].startswith("s3://") and summary["output_rse"] == RSE
    assert not (home / "picks").exists() and not list(home.rglob("*.root")) and list(scratch.iterdir()) == []
    scope = summary["output_dataset"].split(":")[0]
    head, _, query = uri.partition("?")
    for lfn in summary["files"]:
        [replica] = ddm.list_replicas([{"scope": scope, "name": lfn}])
        assert replica["rses"] == {RSE: [f"{head}/{request_folder}/{lfn}?{query}"]}
    with ExitStack() as stack:  # the payloads, read back through S3
        paths = [stack.enter_context(local_copy(f"{head}/{request_folder}/{lfn}?{query}")) for lfn in summary["files"]]
        got = event_payloads(paths)
    assert sorted(got) == sorted(e for _, e in pairs)


def test_local_extraction_stores_the_outputs_in_the_object_store(picking_world, picks, metadata_home):
    world, out, catalog, ddm = picking_world
    uri, scratch = picks
    pairs, request = _request(world, out, "user.tester.s3local.AOD")
    summary = picking.runner_for(Settings.from_env(), "manual__s3:local", catalog, ddm).run(request)
    _check(summary, pairs, uri, "manual__s3_local", ddm, metadata_home, scratch)


def test_panda_jobs_store_their_outputs_in_the_object_store(picking_world, picks, panda_standin, metadata_home):
    world, out, catalog, ddm = picking_world
    uri, scratch = picks
    head, _, query = uri.partition("?")
    pairs, request = _request(world, out, "user.tester.s3panda.AOD", backend="panda")
    runner = picking.runner_for(Settings.from_env(), "s3panda", catalog, ddm)
    summary = runner.run(request, panda.PandaJobs(panda.PandaConfig.from_settings(Settings.from_env())))
    _check(summary, pairs, uri, "s3panda", ddm, metadata_home, scratch)
    for job in panda_standin.jobs.values():  # the output's location, without credentials
        args = shlex.split(job["jobParameters"])
        assert args[args.index("--output-uri") + 1] == runner.output_uri == f"{head}/s3panda?{query}"
    # an output PanDA reports but the store does not hold: NotFound, naming where it was looked for
    state = {"panda_id": 1, "outputs": [{"lfn": "user.tester.s3panda.AOD._00099.1.pool.root", "guid": "G"}]}
    with pytest.raises(NotFound, match=r"no such file at s3://.*/s3panda/user\.tester\.s3panda\.AOD\._00099"):
        panda.job_outputs(state, runner.output_uri)
