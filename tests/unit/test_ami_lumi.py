"""Lost lumi blocks: a reprocessing that dropped the events of some lumi blocks reports exactly those blocks (per
run) in ``show --json``; a complete one reports none; what has no RAW to compare with reports null.

The world is made for these tests with known lost blocks; the expected blocks are read from its ROOT files with
uproot, never from the code under test."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import uproot

from eventindex import monitoring
from eventindex.ami.lumi import lost_lumi_blocks
from eventindex.catalog import open_catalog
from eventindex.producer import produce
from eventindex.sim.world import REPRO_TAG, T0_TAG, WorldConfig, simulate

LOST = (3, 7, 12)


def ei(*args, check=True):
    return subprocess.run([sys.executable, "-m", "eventindex.cli", *map(str, args)], capture_output=True, text=True,
                          check=check)


@pytest.fixture(scope="module")
def lossy_world(tmp_path_factory):
    """Two runs; the reprocessing of the first run's physics_Main loses lumi blocks 3, 7 and 12; produced:
    physics_Main, the simulation, and physics_MinBias AOD without its RAW: (world, world folder, staging)."""
    out = tmp_path_factory.mktemp("lossy")
    config = WorldConfig(seed=5, runs=2, events_per_run=1500, lumi_blocks=20, raw_file_events=400,
                         reproc_file_events=600, mc_events=100, mc_file_events=100, lost_lumi_blocks=LOST, workers=1)
    world = simulate(out / "world", config)
    staging = out / "staging"
    for d in world["datasets"]:
        if d.get("stream") in ("physics_Main", None) or d["datatype"] == "AOD":
            produce(d["name"], [str(out / "world" / f["path"]) for f in d["files"]], str(staging), d["task_id"], 1)
    return world, out / "world", staging


def _lumi_blocks(world_dir, d) -> set[int]:
    lbs = set()
    for f in d["files"]:
        with uproot.open(world_dir / f["path"]) as h:
            lbs |= set(np.unique(h["events"]["lumi_block"].array(library="np")).tolist())
    return lbs


def _ds(world, run, datatype, tag=None, stream="physics_Main"):
    return next(d for d in world["datasets"] if d.get("run_number") == run and d.get("stream") == stream
                and d["datatype"] == datatype and (tag is None or d["amitag"] == tag))


@pytest.fixture
def lossy_catalog(lossy_world, eventindex_home, metadata_home):
    world, world_dir, staging = lossy_world
    ei("load", staging, "--menus", world_dir / "menus.json")
    return world, world_dir, open_catalog()


def test_a_reprocessing_that_lost_lumi_blocks_reports_exactly_those(lossy_catalog):
    world, world_dir, catalog = lossy_catalog
    first, second = sorted(r["run_number"] for r in world["runs"])
    raw, repro = _ds(world, first, "RAW"), _ds(world, first, "AOD", REPRO_TAG)
    expected = sorted(_lumi_blocks(world_dir, raw) - _lumi_blocks(world_dir, repro))
    assert expected == list(LOST)  # the world lost what it was asked to, and the RAW had events there
    assert lost_lumi_blocks(catalog, repro["name"]) == {first: expected}
    shown = json.loads(ei("show", repro["name"], "--json").stdout)
    assert shown["lost_lumi_blocks"] == {str(first): expected}
    assert shown == monitoring.dataset_detail(catalog, repro["name"])
    assert "lost lumi" in ei("show", repro["name"]).stdout


def test_a_complete_reprocessing_and_the_tier0_aod_lose_none(lossy_catalog):
    world, world_dir, catalog = lossy_catalog
    first, second = sorted(r["run_number"] for r in world["runs"])
    complete = _ds(world, second, "AOD", REPRO_TAG)
    assert _lumi_blocks(world_dir, _ds(world, second, "RAW")) == _lumi_blocks(world_dir, complete)
    assert monitoring.dataset_detail(catalog, complete["name"])["lost_lumi_blocks"] == {}
    assert monitoring.dataset_detail(catalog, _ds(world, first, "AOD", T0_TAG)["name"])["lost_lumi_blocks"] == {}


def test_what_has_no_raw_to_compare_with_reports_null(lossy_catalog):
    world, world_dir, catalog = lossy_catalog
    first, _ = sorted(r["run_number"] for r in world["runs"])
    for d in (_ds(world, first, "RAW"), _ds(world, first, "DAOD_PHYS"),
              next(d for d in world["datasets"] if "dsid" in d and d["datatype"] == "AOD"),
              _ds(world, first, "AOD", stream="physics_MinBias")):  # its RAW is not loaded
        assert monitoring.dataset_detail(catalog, d["name"])["lost_lumi_blocks"] is None, d["name"]


def test_a_default_world_loses_no_lumi_blocks():
    assert WorldConfig().lost_lumi_blocks == ()
