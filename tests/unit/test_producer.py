import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

from eventindex.errors import MalformedDatasetName, ProducerError
from eventindex.guid import format_guid
from eventindex.producer import produce
from eventindex.rootfile import write_events_file
from eventindex.trigger import masks_from_arrow
from tests.conftest import dataset


def _files(out: Path, ds: dict) -> list[str]:
    return [str(out / f["path"]) for f in ds["files"]]


def _staged(staging: Path) -> list[Path]:
    return sorted(p for p in staging.rglob("*") if p.is_file()) if staging.exists() else []


def test_producer_writes_one_parquet_and_a_per_guid_summary(small_world, tmp_path):
    world, out = small_world
    ds = dataset(world, "AOD", tag="f961_m1831")
    result = produce(ds["name"], _files(out, ds), str(tmp_path / "staging"), task_id=42, job_id=3)
    folder = tmp_path / "staging" / ds["name"]
    assert sorted(p.name for p in folder.iterdir()) == ["ei.00000042.000003.parquet",
                                                        "ei.00000042.000003.summary.json"]
    table = pq.read_table(folder / "ei.00000042.000003.parquet")
    assert table.num_rows == ds["nevents"] == result.nevents
    summary = json.loads((folder / "ei.00000042.000003.summary.json").read_text())
    assert {g["guid"]: g["nevents"] for g in summary["guids"]} == {f["guid"]: f["nevents"] for f in ds["files"]}
    assert summary["stages"] == ["RAW", "AOD"]
    assert summary["bytes"] == (folder / "ei.00000042.000003.parquet").stat().st_size
    # own references: the file's GUID and the entry number
    guids = [format_guid(b) for b in table.column("AOD_guid").to_pylist()]
    first = ds["files"][0]
    assert guids[: first["nevents"]] == [first["guid"]] * first["nevents"]
    assert table.column("AOD_oid").to_pylist()[: first["nevents"]] == list(range(first["nevents"]))
    # event numbers per GUID: first/last and unique
    with uproot.open(out / first["path"]) as h:
        evt = h["events"]["event_number"].array(library="np")
    g0 = summary["guids"][0]
    assert g0["unique"] == len(set(evt.tolist())) and g0["first_event"][1] == int(evt.min())
    assert g0["last_event"][1] == int(evt.max())


def test_every_aod_record_references_the_raw_entry_of_the_same_event(small_world, tmp_path):
    world, out = small_world
    ds = dataset(world, "AOD", tag="r11969_r11784_p4072")
    produce(ds["name"], _files(out, ds), str(tmp_path / "s"))
    table = pq.read_table(next((tmp_path / "s" / ds["name"]).glob("*.parquet")))
    raw_paths = {f["guid"]: out / f["path"] for d in world["datasets"] if d["datatype"] == "RAW"
                 for f in d["files"]}
    raw_guid = [format_guid(b) for b in table.column("RAW_guid").to_pylist()]
    raw_oid = table.column("RAW_oid").to_numpy()
    run = table.column("run_number").to_numpy()
    evt = table.column("event_number").to_numpy()
    for guid in set(raw_guid):
        rows = np.array([g == guid for g in raw_guid])
        with uproot.open(raw_paths[guid]) as h:
            raw = h["events"].arrays(["run_number", "event_number"], library="np")
        assert np.array_equal(raw["event_number"][raw_oid[rows]], evt[rows])
        assert np.array_equal(raw["run_number"][raw_oid[rows]], run[rows])


def test_records_keep_trigger_masks_and_simulation_fields(small_world, tmp_path):
    world, out = small_world
    ds = dataset(world, "DAOD_PHYS", mc=True)
    produce(ds["name"], _files(out, ds), str(tmp_path / "s"))
    table = pq.read_table(next((tmp_path / "s" / ds["name"]).glob("*.parquet")))
    assert set(table.column("mc_channel_number").to_pylist()) == {ds["dsid"]}
    assert table.column("stream").null_count == table.num_rows
    with uproot.open(out / ds["files"][0]["path"]) as h:
        tav = h["events"]["l1_tav"].array(library="np")
        w = h["events"]["mc_event_weight"].array(library="np")
    n = len(tav)
    assert np.array_equal(masks_from_arrow(table.column("l1_tav"))[:n], tav.view(np.uint8))
    assert np.array_equal(table.column("mc_event_weight").to_numpy()[:n], w)
    assert [s for s in ("AOD", "DAOD_PHYS") if f"{s}_guid" in table.schema.names] == ["AOD", "DAOD_PHYS"]


# --- bad input: a clear error, nothing written ----------------------------------------------------------------


def _expect_refusal(tmp_path, dataset_name, files, match):
    staging = tmp_path / "staging"
    with pytest.raises((ProducerError, MalformedDatasetName), match=match):
        produce(dataset_name, files, str(staging))
    assert _staged(staging) == []


def test_truncated_file_is_refused_and_nothing_is_written(small_world, tmp_path):
    world, out = small_world
    ds = dataset(world, "RAW")
    good = _files(out, ds)
    bad = tmp_path / Path(good[1]).name
    data = Path(good[1]).read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    _expect_refusal(tmp_path, ds["name"], [good[0], str(bad)], Path(good[1]).name)


def test_not_a_root_file_is_refused(small_world, tmp_path):
    world, _ = small_world
    ds = dataset(world, "RAW")
    junk = tmp_path / f"RAW.1._000001.{uuid.uuid4()}.pool.root"
    junk.write_text("this is not ROOT")
    _expect_refusal(tmp_path, ds["name"], [str(junk)], "not a readable ROOT file")


def test_file_without_the_expected_branches_is_refused(small_world, tmp_path):
    world, _ = small_world
    ds = dataset(world, "RAW")
    guid = str(uuid.uuid4()).upper()
    path = tmp_path / f"RAW.1._000001.{guid}.pool.root"
    n = 10
    write_events_file(path, guid, {"run_number": np.full(n, ds["run_number"], np.uint32),
                                   "event_number": np.arange(n, dtype=np.uint64)}, {})
    _expect_refusal(tmp_path, ds["name"], [str(path)], "missing branches .*l1_tav")


def test_guid_that_does_not_match_the_file_is_refused(small_world, tmp_path):
    world, out = small_world
    ds = dataset(world, "RAW")
    src = Path(_files(out, ds)[0])
    other = str(uuid.uuid4()).upper()
    renamed = tmp_path / src.name.replace(ds["files"][0]["guid"], other)
    shutil.copy(src, renamed)
    _expect_refusal(tmp_path, ds["name"], [str(renamed)], f"GUID mismatch.*{other}")


def test_file_of_another_run_is_refused(small_world, tmp_path):
    world, out = small_world
    raw_runs = [d for d in world["datasets"] if d["datatype"] == "RAW" and d["stream"] == "physics_Main"]
    first, second = raw_runs[0], raw_runs[1]
    _expect_refusal(tmp_path, first["name"], _files(out, first)[:1] + _files(out, second)[:1],
                    f"holds run {second['run_number']}")


def test_file_of_another_stream_is_refused(small_world, tmp_path):
    """A physics_Main RAW file produced as physics_MinBias was accepted and its events relabelled physics_MinBias."""
    world, out = small_world
    main, minbias = dataset(world, "RAW"), dataset(world, "RAW", stream="physics_MinBias")
    assert main["run_number"] == minbias["run_number"]  # the same run: only the stream tells them apart
    wrong = _files(out, main)[0]
    _expect_refusal(tmp_path, minbias["name"], _files(out, minbias)[:1] + [wrong],
                    f"^{wrong}: is a file of stream physics_Main, but dataset {minbias['name']} is stream "
                    "physics_MinBias; nothing written$")
    # and the other way round, for a derived format: an express AOD file is not physics_Main's
    express_aod = dataset(world, "AOD", stream="express_express")
    _expect_refusal(tmp_path, dataset(world, "AOD")["name"], _files(out, express_aod)[:1],
                    "is a file of stream express_express, but dataset .* is stream physics_Main")


def test_unknown_dataset_name_is_refused(small_world, tmp_path):
    world, out = small_world
    ds = dataset(world, "RAW")
    _expect_refusal(tmp_path, "data18_13TeV.00358031.physics_Main.daq.FOO", _files(out, ds), "data type 'FOO'")


def test_cli_produce_reports_the_error_and_exits_non_zero(small_world, tmp_path):
    world, _ = small_world
    ds = dataset(world, "RAW")
    junk = tmp_path / "junk.root"
    junk.write_text("x")
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "produce", "--dataset", ds["name"],
                           "--staging", str(tmp_path / "staging"), str(junk)], capture_output=True, text=True)
    assert done.returncode != 0
    assert "junk.root" in done.stderr and "nothing written" in done.stderr
    assert _staged(tmp_path / "staging") == []


def test_cli_produce_writes_under_the_dataset_folder(small_world, tmp_path):
    world, out = small_world
    ds = dataset(world, "RAW", stream="express_express")
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "produce", "--dataset", ds["name"], "--json",
                           "--staging", str(tmp_path / "st"), "--task-id", "7", "--job-id", "1", *_files(out, ds)],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["nevents"] == ds["nevents"] and result["announced"] is False
    assert Path(result["parquet_uri"]).parent == tmp_path / "st" / ds["name"]
