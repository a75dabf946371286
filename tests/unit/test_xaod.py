"""The producer indexes real ATLAS xAOD files: the Run 2 TTree layout (a real PHYSLITE file written by Athena) and
the Run 3 RNTuple layout (files written here with uproot in the same layout)."""

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

from eventindex import naming
from eventindex.errors import ProducerError
from eventindex.guid import format_guid
from eventindex.producer import index_file, produce
from eventindex.schema import HLT_MASKS, L1_MASKS

REAL = Path(__file__).resolve().parents[1] / "data" / "atlas" / "DAOD_PHYSLITE.run2-mc16.pool.root"
REAL_FID = "98D9CF31-D6AF-1F47-B373-0B28FC834EB2"
REAL_CHANNEL = 410470  # EventInfoAuxDyn.mcChannelNumber of every event of the real file
MC_NAME = ("mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYSLITE."
           "e6337_s3126_r10201_p4172")
WRONG_MC_NAME = MC_NAME.replace(".410470.", ".410471.")
DATA_NAME = "data23_13p6TeV.00451587.physics_Main.merge.AOD.f1357_m2173"
MASKS = (*L1_MASKS, *HLT_MASKS)


def _branches(*names, path=REAL):
    """An independent read of the real file's branches, straight with uproot."""
    with uproot.open(path) as h:
        return h["CollectionTree"].arrays(list(names), library="np")


def _staged(staging: Path) -> list[Path]:
    return sorted(p for p in staging.rglob("*") if p.is_file()) if staging.exists() else []


def _write_run3(path: Path, guid: str, info: dict) -> None:
    """A Run 3 POOL file: RNTuples EventData (EventInfo), DataHeader, EventTag and the ##Params TTree."""
    n = len(next(iter(info.values())))
    tokens = np.array([f"[DB={guid}][CNT=EventData][CLID=0][TECH=00000202][OID=00000000-{i:08X}]"
                       for i in range(n)])
    with uproot.recreate(path) as out:
        out.mkrntuple("EventData", ak.Array({f"EventInfoAuxDyn:{k}": v for k, v in info.items()}))
        out.mkrntuple("DataHeader", ak.Array({"Token": tokens}))
        out.mkrntuple("EventTag", ak.Array({"Token": tokens, "RunNumber": info["runNumber"]}))
        out.mktree("##Params", {"db_string": "string"})
        out["##Params"].extend({"db_string": np.array([f"[NAME=FID][VALUE={guid}]", "[NAME=POOL_VSN][VALUE=1.1]"])})


def _real_info_as_run3() -> dict:
    """The real file's EventInfo, laid out as Run 3 fields."""
    with uproot.open(REAL) as h:
        a = h["CollectionTree"].arrays(
            ["EventInfoAux.runNumber", "EventInfoAux.eventNumber", "EventInfoAux.lumiBlock", "EventInfoAux.bcid",
             "EventInfoAux.timeStamp", "EventInfoAux.timeStampNSOffset", "EventInfoAuxDyn.mcChannelNumber",
             "EventInfoAuxDyn.mcEventWeights"], library="ak")
    return {name.split(".", 1)[1]: a[name] for name in a.fields}


def _data_info(n: int, run: int, tags: list[list[str]]) -> dict:
    rng = np.random.default_rng(3)
    return {"runNumber": np.full(n, run, np.uint32),
            "eventNumber": rng.choice(10**9, n, replace=False).astype(np.uint64),
            "lumiBlock": rng.integers(1, 800, n).astype(np.uint32),
            "bcid": rng.integers(1, 3564, n).astype(np.uint32),
            "timeStamp": np.full(n, 1_690_000_000, np.uint32), "timeStampNSOffset": np.zeros(n, np.uint32),
            "streamTagNames": ak.Array(tags)}


# --- the real Run 2 file -----------------------------------------------------------------------------------------


def test_real_run2_file_is_indexed_with_its_fid_run_and_eventinfo():
    f = index_file(REAL, naming.parse(MC_NAME))
    t = f.table
    raw = _branches("EventInfoAux.runNumber", "EventInfoAux.eventNumber", "EventInfoAux.lumiBlock",
                    "EventInfoAux.bcid", "EventInfoAux.timeStamp", "EventInfoAux.timeStampNSOffset")
    assert f.guid == REAL_FID and t.num_rows == 40
    assert {format_guid(g) for g in t.column("DAOD_PHYSLITE_guid").to_pylist()} == {REAL_FID}
    assert t.column("DAOD_PHYSLITE_oid").to_pylist() == list(range(40))  # the entry is the reference
    assert set(t.column("run_number").to_pylist()) == {310000}  # the MC run number, accepted for simulation
    assert np.array_equal(t.column("run_number").to_numpy(), raw["EventInfoAux.runNumber"])
    assert np.array_equal(t.column("event_number").to_numpy(), raw["EventInfoAux.eventNumber"])
    assert np.array_equal(t.column("lumi_block").to_numpy(), raw["EventInfoAux.lumiBlock"])
    assert np.array_equal(t.column("bcid").to_numpy(), raw["EventInfoAux.bcid"])
    assert np.array_equal(t.column("timestamp").to_numpy(), raw["EventInfoAux.timeStamp"])
    assert np.array_equal(t.column("timestamp_ns").to_numpy(), raw["EventInfoAux.timeStampNSOffset"])
    assert f.unique == len(set(raw["EventInfoAux.eventNumber"].tolist()))


def test_real_file_records_carry_the_dataset_channel_and_the_first_mc_weight():
    t = index_file(REAL, naming.parse(MC_NAME)).table
    raw = _branches("EventInfoAuxDyn.mcChannelNumber", "EventInfoAuxDyn.mcEventWeights")
    assert set(raw["EventInfoAuxDyn.mcChannelNumber"].tolist()) == {REAL_CHANNEL}
    assert t.column("mc_channel_number").to_pylist() == [naming.parse(MC_NAME).dsid] * 40
    assert t.column("mc_event_weight").to_pylist() == [float(w[0]) for w in raw["EventInfoAuxDyn.mcEventWeights"]]
    assert t.column("stream").null_count == 40  # simulation has no stream


def test_a_file_without_trigger_decisions_gets_null_masks_not_zero_ones(tmp_path):
    path = tmp_path / "DAOD_PHYSLITE.40000001._000009.pool.root.1"
    _write_run3(path, str(uuid.uuid4()).upper(), _real_info_as_run3())  # EventInfo only, no xTrigDecision
    t = index_file(path, naming.parse(MC_NAME)).table
    for m in MASKS:
        assert t.column(m).null_count == t.num_rows, m
        assert t.schema.field(m).nullable
    assert t.schema.metadata[b"eventindex.trigger"] == b"none"
    assert set(t.column("smk").to_pylist()) == {0}


def test_the_real_file_gives_masks_for_every_event_and_its_menu_in_the_metadata():
    t = index_file(REAL, naming.parse(MC_NAME)).table
    assert all(t.column(m).null_count == 0 for m in MASKS)
    assert b"eventindex.trigger" not in t.schema.metadata
    [menu] = json.loads(t.schema.metadata[b"eventindex.menus"])
    assert menu["smk"] == 2216 and len(menu["hlt_chains"]) == 4242  # counters up to 4241


def test_wrong_dsid_in_the_dataset_name_is_refused_naming_the_file_and_both_channels(tmp_path):
    staging = tmp_path / "staging"
    with pytest.raises(ProducerError) as err:
        produce(WRONG_MC_NAME, [str(REAL)], str(staging))
    message = str(err.value)
    assert REAL.name in message and "410470" in message and "410471" in message and "nothing written" in message
    assert _staged(staging) == []


def test_produce_of_the_real_file_writes_parquet_with_masks_that_the_catalogue_loads_with_its_menu(tmp_path,
                                                                                                 metadata_home):
    from eventindex.catalog import open_catalog
    from eventindex.catalog.loader import load_staged
    from eventindex.catalog.selection import make_selection

    result = produce(MC_NAME, [str(REAL)], str(tmp_path / "staging"), task_id=5, job_id=2)
    folder = tmp_path / "staging" / MC_NAME
    table = pq.read_table(folder / "ei.00000005.000002.parquet")
    assert table.num_rows == result.nevents == 40
    assert all(table.column(m).null_count == 0 for m in MASKS)
    summary = json.loads((folder / "ei.00000005.000002.summary.json").read_text())
    assert summary["guids"] == [{**summary["guids"][0], "guid": REAL_FID, "lfn": REAL.name, "nevents": 40}]
    catalog = open_catalog()
    assert 2216 not in catalog.menus()
    [loaded] = load_staged(catalog, str(tmp_path / "staging"))
    assert loaded.nevents == 40
    assert catalog.menus()[2216].locate("HLT_e26_lhtight_idperf") == ("HLT", 1)
    assert catalog.show(MC_NAME)["smks"] == [2216]
    back = list(catalog.select(make_selection(dataset=MC_NAME), ["event_number", "l1_tav", "hlt_passed"]))
    assert sum(b.num_rows for b in back) == 40 and all(b.column("l1_tav").null_count == 0 for b in back)


def test_real_file_name_without_a_guid_is_accepted(tmp_path):
    renamed = tmp_path / "DAOD_PHYSLITE.37233417._000052.pool.root.1"
    shutil.copy(REAL, renamed)
    result = produce(MC_NAME, [str(renamed)], str(tmp_path / "staging"))
    assert result.files[0]["guid"] == REAL_FID and result.files[0]["lfn"] == renamed.name


def test_file_name_with_another_guid_than_the_fid_is_refused(tmp_path):
    other = str(uuid.uuid4()).upper()
    renamed = tmp_path / f"DAOD_PHYSLITE.37233417._000052.{other}.pool.root"
    shutil.copy(REAL, renamed)
    with pytest.raises(ProducerError, match=f"GUID mismatch.*{other}.*{REAL_FID}"):
        produce(MC_NAME, [str(renamed)], str(tmp_path / "staging"))
    assert _staged(tmp_path / "staging") == []


def test_cli_produce_indexes_a_real_xaod_file(tmp_path):
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "produce", "--dataset", MC_NAME, "--json",
                           "--staging", str(tmp_path / "st"), str(REAL)], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["nevents"] == 40 and result["files"][0]["guid"] == REAL_FID


# --- Run 3: RNTuple ---------------------------------------------------------------------------------------------


def test_run3_rntuple_file_is_indexed_like_the_same_events_in_run2_ttree(tmp_path):
    guid = str(uuid.uuid4()).upper()
    path = tmp_path / "DAOD_PHYSLITE.40000001._000001.pool.root.1"
    _write_run3(path, guid, _real_info_as_run3())
    with uproot.open(path) as h:
        assert h.classnames()["EventData;1"] == "ROOT::RNTuple"
    ds = naming.parse(MC_NAME)
    run3, run2 = index_file(path, ds), index_file(REAL, ds)
    assert run3.guid == guid
    assert {format_guid(g) for g in run3.table.column("DAOD_PHYSLITE_guid").to_pylist()} == {guid}
    # EventInfo alike (the trigger, which _write_run3 leaves out, is compared in test_xaod_trigger.py)
    same = [c for c in run2.table.schema.names if c not in ("DAOD_PHYSLITE_guid", "smk", "l1psk", "hltpsk", *MASKS)]
    assert run3.table.select(same).equals(run2.table.select(same))


def test_run3_data_file_gets_the_dataset_stream_and_no_simulation_fields(tmp_path):
    ds = naming.parse(DATA_NAME)
    info = _data_info(50, ds.run_number, [["Main", "express"]] * 10 + [["Main"]] * 40)
    path = tmp_path / "AOD.35000001._000001.pool.root.1"
    _write_run3(path, str(uuid.uuid4()).upper(), info)
    t = index_file(path, ds).table
    assert set(t.column("stream").to_pylist()) == {"physics_Main"}
    assert np.array_equal(t.column("event_number").to_numpy(), info["eventNumber"])
    assert np.array_equal(t.column("bcid").to_numpy(), info["bcid"])
    assert t.column("mc_channel_number").null_count == t.column("mc_event_weight").null_count == 50
    assert all(t.column(m).null_count == 50 for m in MASKS)


def test_run3_data_file_of_another_run_is_refused(tmp_path):
    ds = naming.parse(DATA_NAME)
    path = tmp_path / "AOD.35000001._000002.pool.root.1"
    _write_run3(path, str(uuid.uuid4()).upper(), _data_info(5, 451588, [["Main"]] * 5))
    with pytest.raises(ProducerError, match=f"{path.name}.*holds run 451588.*is run 451587"):
        produce(DATA_NAME, [str(path)], str(tmp_path / "staging"))
    assert _staged(tmp_path / "staging") == []


def test_run3_data_file_whose_events_carry_another_stream_is_refused(tmp_path):
    ds = naming.parse(DATA_NAME)
    path = tmp_path / "AOD.35000001._000003.pool.root.1"
    _write_run3(path, str(uuid.uuid4()).upper(), _data_info(5, ds.run_number, [["CosmicCalo"]] * 5))
    with pytest.raises(ProducerError, match="stream tag 'Main' of physics_Main.*CosmicCalo"):
        index_file(path, ds)


def test_run3_file_without_event_numbers_is_refused_naming_the_field(tmp_path):
    info = _data_info(5, 451587, [["Main"]] * 5)
    del info["eventNumber"]
    path = tmp_path / "AOD.35000001._000004.pool.root.1"
    _write_run3(path, str(uuid.uuid4()).upper(), info)
    with pytest.raises(ProducerError, match=f"{path.name}.*EventData.*eventNumber"):
        index_file(path, naming.parse(DATA_NAME))


def test_mc_run3_file_of_another_channel_is_refused(tmp_path):
    info = _real_info_as_run3()
    info["mcChannelNumber"] = np.full(len(info["runNumber"]), 410471, np.uint32)
    path = tmp_path / "DAOD_PHYSLITE.40000001._000002.pool.root.1"
    _write_run3(path, str(uuid.uuid4()).upper(), info)
    with pytest.raises(ProducerError, match=f"{path.name}.*mc_channel_number 410471.*channel 410470"):
        produce(MC_NAME, [str(path)], str(tmp_path / "staging"))
    assert _staged(tmp_path / "staging") == []
