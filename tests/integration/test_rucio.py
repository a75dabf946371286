"""The pipeline against a real Rucio 41.5 server: the local catalogue answers as Rucio does, validation uses
Rucio's file list, event counts and dataset state, and an unreachable Rucio is a transient error, not bad data."""

import pytest

from eventindex import ingest
from eventindex.ddm import DDMError, LocalRucio, guid_key, register_world
from eventindex.workarea import WorkArea
from tests.conftest import dataset

pytestmark = pytest.mark.integration


@pytest.fixture
def registered(real_rucio, small_world, tmp_path):
    world, out = small_world
    register_world(real_rucio, world, out)
    local = LocalRucio(f"sqlite:///{tmp_path / 'local.sqlite'}")
    register_world(local, world, out)
    return real_rucio, local


def test_the_local_catalogue_answers_like_rucio(registered, small_world):
    real, local = registered
    world, _ = small_world
    for d in (dataset(world, "RAW"), dataset(world, "DAOD_PHYS", mc=True)):
        a = {guid_key(f["guid"]): (f["name"], f["events"], f["bytes"], f["adler32"]) for f in real.list_files(d["scope"], d["name"])}
        b = {guid_key(f["guid"]): (f["name"], f["events"], f["bytes"], f["adler32"]) for f in local.list_files(d["scope"], d["name"])}
        assert a == b and len(a) == len(d["files"])
        for key in ("is_open", "length", "events"):
            assert real.get_metadata(d["scope"], d["name"])[key] == local.get_metadata(d["scope"], d["name"])[key]
        f = d["files"][0]
        assert real.get_dataset_by_guid(f["guid"]) == local.get_dataset_by_guid(f["guid"])
        did = [{"scope": d["scope"], "name": f["lfn"]}]
        assert real.list_replicas(did)[0]["rses"] == local.list_replicas(did)[0]["rses"]


def test_validation_against_real_rucio(registered, staged_world, tmp_path):
    real, _ = registered
    world, out, staging = staged_world
    d = dataset(world, "AOD", tag="f961_m1831")
    fetched = ingest.fetch(d["name"], str(staging), WorkArea(str(tmp_path / "work"), "run1"))
    assert ingest.validate(fetched, real)["nevents"] == d["nevents"]
    # the same index under another dataset name, which Rucio knows with one file fewer and a wrong event count
    import json
    import shutil

    other = d["name"].replace("physics_Main", "physics_CosmicCalo")
    shutil.copytree(staging / d["name"], tmp_path / "st2" / other)
    for summary in (tmp_path / "st2" / other).glob("*.summary.json"):
        summary.write_text(json.dumps({**json.loads(summary.read_text()), "dataset": other}))
    files = [{"scope": d["scope"], "name": f"{other}.{i}", "bytes": 1, "adler32": "00000001",
              "pfn": f"file:///nonexistent/{other}.{i}", "meta": {"guid": f["guid"], "events": f["nevents"] + (i == 0)}} for i, f in enumerate(d["files"][:-1])]
    real.register_dataset(d["scope"], other, files, "LOCAL_DISK")
    fetched = ingest.fetch(other, str(tmp_path / "st2"), WorkArea(str(tmp_path / "work"), "run1"))
    with pytest.raises(ingest.ValidationFailed) as exc:
        ingest.validate(fetched, real)
    whats = {(p.file, p.what.split(",")[0]) for p in exc.value.problems}
    assert (f"{other}.0", f"Rucio says {d['files'][0]['nevents'] + 1} events") in {
        (f, w.split(" the index")[0].rstrip(",")) for f, w in whats}
    assert (d["files"][-1]["guid"], "not a file of the dataset in Rucio") in whats


def test_rucio_down_is_transient_and_validation_passes_once_it_is_back(registered, rucio_server, staged_world,
                                                                      tmp_path):
    real, _ = registered
    world, _, staging = staged_world
    d = dataset(world, "RAW")
    fetched = ingest.fetch(d["name"], str(staging), WorkArea(str(tmp_path / "work"), "run1"))
    rucio_server.stop()
    try:
        with pytest.raises(DDMError) as exc:
            ingest.validate(fetched, real)
        assert not isinstance(exc.value, ingest.ValidationFailed)
    finally:
        rucio_server.start()
    assert ingest.validate(fetched, real)["nevents"] == d["nevents"]


def test_cli_registers_the_world_in_a_real_rucio(rucio_server, small_world, monkeypatch):
    import subprocess
    import sys

    from eventindex.ddm import RealRucio

    world, out = small_world
    monkeypatch.setenv("RUCIO_CONFIG", rucio_server.config)
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "ddm", "register", "--world", str(out), "--rucio"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    d = dataset(world, "DAOD_PHYS")
    assert len(RealRucio().list_files(d["scope"], d["name"])) == len(d["files"])


def test_dataset_replicas_and_the_complete_replica_preferred_by_picking_match_rucio(registered, tmp_path):
    from eventindex import picking

    real, local = registered
    scope, name = "data18_13TeV", "data18_13TeV.00999999.physics_Main.merge.AOD.f961_m1831"
    files = [{"scope": scope, "name": f"AOD.99._00000{k}.pool.root", "bytes": 100 + k, "adler32": f"0000000{k + 1}",
              "meta": {"guid": f"0000000{k}-1111-2222-3333-444455556666", "events": 10},
              "pfn": f"file://{tmp_path}/disk/AOD.99._00000{k}.pool.root"} for k in range(2)]
    partial = [{"scope": scope, "name": files[0]["name"], "bytes": 100, "adler32": "00000001",
                "pfn": f"file://{tmp_path}/aaa/{files[0]['name']}"}]
    for ddm in (real, local):
        ddm.register_dataset(scope, name, files, "LOCAL_DISK")
        if hasattr(ddm, "ensure_rse"):
            ddm.ensure_rse("AAA_PARTIAL", [scope])
        ddm.add_replicas("AAA_PARTIAL", partial)
    shape = [{r["rse"]: (r["length"], r["available_length"]) for r in ddm.list_dataset_replicas(scope, name)}
             for ddm in (real, local)]
    assert shape[0] == shape[1] == {"LOCAL_DISK": (2, 2), "AAA_PARTIAL": (2, 1)}
    found = [{"run": 999999, "event": 1, "guid": files[0]["meta"]["guid"], "oid": 0, "dataset": name}]
    for ddm in (real, local):
        resolved, _, _ = picking.resolve(ddm, found)
        assert [f["pfn"] for f in resolved.values()] == [files[0]["pfn"]]  # not the partial RSE, first by name
