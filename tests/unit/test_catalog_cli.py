"""The catalogue through the `eventindex` command, on the embedded defaults under $EVENTINDEX_HOME."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import uproot

from eventindex import metadata
from tests.conftest import dataset

ROOT = Path(__file__).resolve().parents[2]


def ei(*args, check=True):
    return subprocess.run([sys.executable, "-m", "eventindex.cli", *map(str, args)], capture_output=True, text=True,
                          check=check)


@pytest.fixture
def loaded(staged_world, eventindex_home, metadata_home):
    world, out, staging = staged_world
    ei("load", staging, "--menus", out / "menus.json")
    return world, out


def test_committed_ddl_matches_the_schema_in_code():
    for dialect in ("sqlite", "postgresql"):
        assert (ROOT / "sql" / "metadata" / f"schema.{dialect}.sql").read_text() == metadata.ddl(dialect), \
            f"run `eventindex db ddl --dialect {dialect} > sql/metadata/schema.{dialect}.sql`"


# upgrades (Alembic, from every old schema version): tests/unit/test_migrations.py


def test_lookup_json_lists_every_format_with_references(loaded):
    world, out = loaded
    d = dataset(world, "DAOD_PHYS")
    with uproot.open(out / d["files"][0]["path"]) as h:
        run, event = (int(x[0]) for x in h["events"].arrays(["run_number", "event_number"], library="np").values())
    matches = json.loads(ei("lookup", run, event, "--json").stdout)
    by_type = {(m["datatype"], m["version"]): m for m in matches}
    assert ("DAOD_PHYS", "r11969_r11784_p4072_p4309") in by_type
    daod = by_type[("DAOD_PHYS", "r11969_r11784_p4072_p4309")]
    assert daod["refs"]["DAOD_PHYS"] == {"guid": d["files"][0]["guid"], "oid": 0}
    assert set(daod["refs"]) == {"RAW", "AOD", "DAOD_PHYS"}
    assert {"dataset", "datatype", "version", "refs"} <= set(matches[0])
    missing = ei("lookup", run, 1, "--json", check=False)
    assert missing.returncode != 0 and json.loads(missing.stdout) == []


def test_count_json_and_errors(loaded):
    world, _ = loaded
    assert json.loads(ei("count", "--json").stdout) == {"count": world["nevents"]}
    n = json.loads(ei("count", "--stream", "physics_Main", "--type", "RAW", "--json").stdout)["count"]
    assert n == sum(d["nevents"] for d in world["datasets"] if d["datatype"] == "RAW" and d["stream"] == "physics_Main")
    bad = ei("count", "--stream", "x'; drop table datasets;--", check=False)
    assert bad.returncode != 0 and "stream" in bad.stderr
    unknown = ei("count", "--trigger", "HLT_e26_lhtight_ivarlose_L1EM22VHI", check=False)
    assert unknown.returncode != 0 and "HLT_e26_lhtight_ivarloose_L1EM22VHI" in unknown.stderr


@pytest.mark.parametrize("suffix", ["csv", "parquet", "json"])
def test_select_writes_the_requested_columns(loaded, tmp_path, suffix):
    world, _ = loaded
    d = dataset(world, "AOD", tag="f961_m1831")
    target = tmp_path / f"out.{suffix}"
    ei("select", "--dataset", d["name"], "--lumi", "1-5", "--columns", "run_number,event_number,AOD_guid,AOD_oid",
       "--output", target)
    if suffix == "csv":
        rows = list(csv.DictReader(target.open()))
    elif suffix == "json":
        rows = json.loads(target.read_text())
    else:
        rows = pq.read_table(target).to_pylist()
    expect = json.loads(ei("count", "--dataset", d["name"], "--lumi", "1-5", "--json").stdout)["count"]
    assert 0 < len(rows) == expect
    assert set(rows[0]) == {"run_number", "event_number", "AOD_guid", "AOD_oid"}
    assert {r["AOD_guid"] for r in rows} <= {f["guid"] for f in d["files"]}
    bad = ei("select", "--columns", "event_number;drop", "--output", tmp_path / "x.csv", check=False)
    assert bad.returncode != 0 and "unknown column" in bad.stderr
    assert not (tmp_path / "x.csv").exists()


def test_datasets_show_overlaps_and_obsolete(loaded):
    world, _ = loaded
    listed = json.loads(ei("datasets", "--json").stdout)
    assert len(listed) == len(world["datasets"])
    d = dataset(world, "AOD", tag="r11969_r11784_p4072")
    ei("obsolete", d["name"])
    assert len(json.loads(ei("datasets", "--json").stdout)) == len(world["datasets"]) - 1
    shown = json.loads(ei("show", d["name"], "--json").stdout)
    assert shown["status"] == "obsolete"
    ov = json.loads(ei("overlaps", "--json").stdout)
    assert ov["labels"] == ["physics_Main", "physics_MinBias", "express_express"]
    assert ov["matrix"][0][0] == sum(x["nevents"] for x in world["datasets"]
                                     if x["datatype"] == "RAW" and x["stream"] == "physics_Main")


def test_cli_json_answers_are_the_monitoring_answers(loaded):
    from eventindex import monitoring
    from eventindex.catalog import make_selection, open_catalog

    world, _ = loaded
    catalog = open_catalog()
    aod = sorted(d["name"] for d in world["datasets"] if d["datatype"] == "AOD")
    assert json.loads(ei("datasets", "--json", "--type", "AOD", "--offset", 1, "--limit", 2).stdout) == \
        monitoring.dataset_list(catalog, state="loaded", datatype="AOD", offset=1, limit=2)["datasets"]
    assert [r["name"] for r in json.loads(ei("datasets", "--json", "--type", "AOD").stdout)] == aod
    assert {r["source"] for r in json.loads(ei("datasets", "--json", "--source", "manual").stdout)} == {"manual"}
    assert json.loads(ei("show", aod[0], "--json").stdout) == monitoring.dataset_detail(catalog, aod[0])
    by_lumi = json.loads(ei("count", "--type", "RAW", "--stream", "physics_Main", "--by", "lumi_block",
                            "--json").stdout)
    assert by_lumi == monitoring.events_per(catalog, make_selection(datatype="RAW", stream="physics_Main"),
                                            "lumi_block")
    assert sum(r["events"] for r in by_lumi) == sum(d["nevents"] for d in world["datasets"]
                                                    if d["datatype"] == "RAW" and d.get("stream") == "physics_Main")
    table = ei("count", "--type", "RAW", "--by", "run").stdout
    assert all(str(r["run_number"]) in table for r in by_lumi)
    bad = ei("datasets", "--state", "gone", check=False)
    assert bad.returncode == 1 and "state 'gone' is not one of loaded, obsolete, erased" in bad.stderr


def test_restore_from_the_cli_undoes_obsolete(loaded):
    world, _ = loaded
    d = dataset(world, "AOD", tag="r11969_r11784_p4072")
    ei("obsolete", d["name"])
    assert [r["name"] for r in json.loads(ei("datasets", "--json", "--state", "obsolete").stdout)] == [d["name"]]
    assert "restored" in ei("restore", d["name"]).stdout
    assert "loaded already" in ei("restore", d["name"]).stdout
    assert json.loads(ei("datasets", "--json", "--state", "obsolete").stdout) == []
    shown = json.loads(ei("show", d["name"], "--json").stdout)
    assert shown["status"] == "loaded" and [h["action"] for h in shown["history"]][-2:] == ["obsolete", "restore"]
    assert "restore" in ei("show", d["name"]).stdout
    listed = ei("datasets", "--limit", 2)
    assert "manual" in listed.stdout and f"showing 1-2 of {len(world['datasets'])}" in listed.stderr
