"""`make demo` end to end on a small world: Airflow runs the ingestion and picking DAGs (dag.test), and a second
call changes nothing."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from eventindex.demo import REAL_DATASET

pytestmark = pytest.mark.integration


def test_make_demo_ingests_through_the_dags_picks_and_a_rerun_changes_nothing(eventindex_home, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), EVENTINDEX_HOME=str(eventindex_home),
               AIRFLOW__CORE__PARALLELISM="4", COLUMNS="250")
    args = [sys.executable, "-m", "eventindex_airflow.demo", "--runs", "1", "--events-per-run", "2000",
            "--lumi-blocks", "10", "--mc-events", "4500"]
    first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    world = json.loads((eventindex_home / "world" / "world.json").read_text())
    staged = sorted((eventindex_home / "staging").glob("*/*.parquet"))
    # every dataset of the world, and the real ATLAS file's; grid datasets staged by one job per file
    assert {p.parent.name for p in staged} == {d["name"] for d in world["datasets"]} | {REAL_DATASET}
    for d in world["datasets"]:
        jobs = [p for p in staged if p.parent.name == d["name"]]
        assert len(jobs) == (len(d["files"]) if d["source"] == "prodsys" else 1), d["name"]
    assert any(d["source"] == "prodsys" and len(d["files"]) > 1 for d in world["datasets"])
    assert sum(pq.read_metadata(p).num_rows for p in staged) == world["nevents"] + 40  # the real file: 40 events
    n = len(world["datasets"]) + 1
    assert f"{world['nevents']:,} events indexed" in first.stdout and "simulating" in first.stdout
    assert f"{n}/{n} ingestion runs succeeded" in first.stdout
    assert "(the real ATLAS file): DAOD_PHYSLITE file 98D9CF31-D6AF-1F47-B373-0B28FC834EB2 entry" in first.stdout
    either = _real_file_passing("HLT_e26_lhtight_nod0_ivarloose") | _real_file_passing("HLT_mu26_ivarmedium")
    assert f"{either.sum()} of 40 events pass HLT_e26_lhtight_nod0_ivarloose or HLT_mu26_ivarmedium" in first.stdout
    assert "events of the real ATLAS file passing two triggers" in first.stdout
    assert "found 1,000, missing 20 -> user.eventindex:user.eventindex.demo.picked.AOD" in first.stdout  # step 5: event picking
    picked = sorted((eventindex_home / "picks").rglob("*.pool.root"))
    assert picked
    # step 6: the histogram's entries and the skim's events are what the catalogue counts for the same selections
    import re

    import uproot

    from eventindex.catalog import make_selection, open_catalog
    from eventindex.settings import Settings

    catalog = open_catalog(Settings.from_env(env))
    mu = ["HLT_mu26_ivarmedium_L1MU14FCH"]
    entries = int(re.search(r"HLT_mu26_ivarmedium_L1MU14FCH: ([\d,]+) events", first.stdout).group(1).replace(",", ""))
    assert entries == catalog.count(make_selection(datatype="RAW", stream="physics_Main", triggers=mu))
    with uproot.open(eventindex_home / "demo-skim.root") as f:
        tree = f["events"]
        assert tree.num_entries == catalog.count(make_selection(datatype="AOD", stream="physics_Main", version="f961_m1831",
                                                                lumi_blocks=["10-20"], triggers=mu))
        assert {"run_number", "event_number", "AOD_guid", "AOD_entry", "RAW_guid", "RAW_entry"} <= set(tree.keys())
    # a second call reuses the world, re-indexes idempotently (same objects), and the pick changes nothing
    second = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "reusing the world" in second.stdout and f"{n}/{n} ingestion runs succeeded" in second.stdout
    assert sorted((eventindex_home / "staging").glob("*/*.parquet")) == staged
    assert not list((eventindex_home / "staging").rglob("*.part"))
    assert "already done by" in second.stdout and sorted((eventindex_home / "picks").rglob("*.pool.root")) == picked


def _real_file_passing(chain: str):
    """Which events of the real file passed ``chain``: its counter from the file's menu, its bit in the words."""
    import numpy as np
    import uproot

    from eventindex.demo import REAL_FILE

    with uproot.open(REAL_FILE) as f:
        menu = f["MetaData"].arrays(["TriggerMenuAux.chainIds", "TriggerMenuAux.chainNames"], library="np")
        words = f["CollectionTree"]["xTrigDecisionAux./xTrigDecisionAux.efPassedPhysics"].array(library="np")
    counter = int(dict(zip(menu["TriggerMenuAux.chainNames"][0][0], menu["TriggerMenuAux.chainIds"][0][0]))[chain])
    return np.array([(int(w[counter // 32]) >> (counter % 32)) & 1 == 1 for w in words])
