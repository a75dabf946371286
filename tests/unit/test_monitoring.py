"""The use cases the CLI and the web app share (eventindex.monitoring), the dataset source and restore.

Expected values come from the simulated world (world.json, the ROOT files read with uproot) or are set up by the
test itself, never from the function under test.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import uproot

from eventindex import consistency, ingest, monitoring, progress
from eventindex import metadata as md
from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.errors import BadLoad, BadRequest, DatasetNotFound, Problem
from eventindex.trigger import load_menus
from tests import legacy_schema
from tests.conftest import dataset, upgraded

TRIGGER = "HLT_mu26_ivarmedium_L1MU14FCH"


@pytest.fixture
def world_catalog(staged_world, tmp_path):
    """The small world loaded as `eventindex load` does (no source given): (world, world folder, staging, catalogue)."""
    world, out, staging = staged_world
    catalog = EmbeddedCatalog(tmp_path / "cat", upgraded(f"sqlite:///{tmp_path / 'm.sqlite'}"))
    catalog.save_menus(load_menus(out / "menus.json")[0].values())
    load_staged(catalog, str(staging))
    return world, out, staging, catalog


def _reload(catalog, staging, name: str, source: str | None):
    return catalog.load(name, sorted(str(p) for p in (Path(staging) / name).glob("*.parquet")), source=source)


def _root_columns(out, datasets, branches):
    parts = []
    for d in datasets:
        for f in d["files"]:
            with uproot.open(Path(out) / f["path"]) as h:
                parts.append(h["events"].arrays(branches, library="np"))
    return [np.concatenate([p[b] for p in parts]).astype(np.int64) for b in branches]


# --- source ---------------------------------------------------------------------------------------------------


def test_a_load_records_its_source_and_a_load_without_one_is_manual(world_catalog):
    world, _, staging, catalog = world_catalog
    assert {r["source"] for r in catalog.datasets()} == {"manual"}
    d = dataset(world, "AOD")
    _reload(catalog, staging, d["name"], "tier0")
    assert catalog.show(d["name"])["source"] == "tier0"
    assert {r["name"]: r["source"] for r in catalog.datasets()}[d["name"]] == "tier0"
    with pytest.raises(BadLoad, match="source 'hlt' is not one of"):
        _reload(catalog, staging, d["name"], "hlt")
    assert catalog.show(d["name"])["source"] == "tier0"


@pytest.mark.parametrize("dag_id, run_id, source", [
    ("eventindex_ingest_tier0", "tier0__x", "tier0"),
    ("eventindex_ingest_tier0", "manual__2026-01-01", "tier0"),
    ("eventindex_ingest_campaign", "backfill__x", "campaign"),
    ("eventindex_ingest", "stomp__data18_13TeV.00358031.physics_Main.daq.RAW__g1__x", "grid"),
    ("eventindex_ingest", "manual__2026-11-29T19:00:00", "manual"),
    ("eventindex_pick", "scheduled__x", "manual"),
])
def test_the_source_is_derived_from_the_ingesting_dag_and_run(dag_id, run_id, source):
    assert ingest.source_of(dag_id, run_id) == source


@pytest.mark.parametrize("asked, source", [("stomp", "grid"), ("tier0", "tier0"), ("prodsys", "campaign"),
                                           ("manual", "manual")])
def test_the_source_a_run_was_triggered_with_wins_over_its_dag(asked, source):
    assert ingest.source_of("eventindex_ingest", "manual__2026-11-29T19:00:00", asked) == source


def test_a_schema_6_database_is_upgraded_keeping_its_datasets_with_no_source(world_catalog, tmp_path):
    _, _, _, loaded = world_catalog
    row = {k: v for k, v in loaded.datasets()[0].items() if k not in ("id", "source")}
    row.update(stages=json.dumps(row["stages"]), smks=json.dumps(row["smks"]))
    url = f"sqlite:///{tmp_path / 'v6.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # what a version-6 installation holds: no datasets.source
        legacy_schema.build(conn, 6)
        conn.execute(sa.table("datasets", *[sa.column(k) for k in row]).insert().values(**row))
    assert "source" not in {c["name"] for c in sa.inspect(engine).get_columns("datasets")}
    assert md.upgrade(url) == md.SCHEMA_HEAD
    catalog = EmbeddedCatalog(tmp_path / "cat6", url)
    [kept] = catalog.datasets()
    assert kept["name"] == row["name"] and kept["nevents"] == row["nevents"] and kept["source"] is None
    listed = monitoring.dataset_list(catalog)
    assert listed["total"] == 1 and listed["datasets"][0]["source"] is None


# --- restore --------------------------------------------------------------------------------------------------


def test_restore_brings_an_obsolete_dataset_back_into_counts_and_history(world_catalog):
    world, _, _, catalog = world_catalog
    d = dataset(world, "RAW")
    sel = make_selection(datatype="RAW", stream="physics_Main")
    full = catalog.count(sel)
    assert catalog.mark_obsolete(d["name"]) is True
    assert catalog.mark_obsolete(d["name"]) is False
    assert catalog.count(sel) == full - d["nevents"]
    assert catalog.restore(d["name"]) is True
    assert catalog.restore(d["name"]) is False
    assert catalog.count(sel) == full
    shown = catalog.show(d["name"])
    assert shown["status"] == "loaded" and shown["obsolete_at"] is None
    assert [h["action"] for h in shown["history"]] == ["load", "obsolete", "restore"]


def test_an_erased_dataset_cannot_be_restored(world_catalog):
    world, _, _, catalog = world_catalog
    d = dataset(world, "AOD")
    catalog.mark_erased(d["name"])
    with pytest.raises(BadRequest, match="cannot be restored: it was erased"):
        catalog.restore(d["name"])
    assert catalog.show(d["name"])["status"] == "erased"
    with pytest.raises(DatasetNotFound):
        catalog.restore("data18_13TeV.00000001.physics_Main.daq.RAW")


# --- dataset_list ---------------------------------------------------------------------------------------------


def test_dataset_list_filters_and_pages_in_name_order(world_catalog):
    world, _, staging, catalog = world_catalog
    names = sorted(d["name"] for d in world["datasets"])
    everything = monitoring.dataset_list(catalog, limit=1000)
    assert everything["total"] == len(names) and [r["name"] for r in everything["datasets"]] == names
    assert set(everything["datasets"][0]) == set(monitoring.ROW_KEYS)
    json.dumps(everything)  # JSON-native as it is

    page = monitoring.dataset_list(catalog, offset=2, limit=3)
    assert (page["total"], page["offset"], page["limit"]) == (len(names), 2, 3)
    assert [r["name"] for r in page["datasets"]] == names[2:5]

    aod = sorted(d["name"] for d in world["datasets"] if d["datatype"] == "AOD")
    assert [r["name"] for r in monitoring.dataset_list(catalog, datatype="AOD")["datasets"]] == aod
    mc = sorted(d["name"] for d in world["datasets"] if "dsid" in d)
    project = mc[0].split(".")[0]
    assert [r["name"] for r in monitoring.dataset_list(catalog, project=project)["datasets"]] == \
        sorted(n for n in names if n.split(".")[0] == project)

    catalog.mark_obsolete(aod[0])
    _reload(catalog, staging, aod[1], "grid")
    assert [r["name"] for r in monitoring.dataset_list(catalog, state="obsolete")["datasets"]] == [aod[0]]
    assert monitoring.dataset_list(catalog, state="loaded")["total"] == len(names) - 1
    assert [r["name"] for r in monitoring.dataset_list(catalog, source="grid")["datasets"]] == [aod[1]]
    assert monitoring.dataset_list(catalog, state="erased") == {"total": 0, "offset": 0, "limit": 100,
                                                                "datasets": []}


@pytest.mark.parametrize("params, message", [
    ({"state": "x"}, "state 'x' is not one of loaded, obsolete, erased"),
    ({"source": "hlt"}, "source 'hlt' is not one of tier0, grid, campaign, manual"),
    ({"offset": -1}, "offset -1 is out of range"),
    ({"offset": "1; drop"}, "offset '1; drop' is not a whole number"),
    ({"limit": 0}, "limit 0 is out of range"),
    ({"limit": 1001}, "limit 1001 is out of range"),
    ({"limit": True}, "limit True is not a whole number"),
])
def test_bad_listing_parameters_are_refused_naming_them(world_catalog, params, message):
    with pytest.raises(BadRequest) as caught:
        monitoring.dataset_list(world_catalog[3], **params)
    assert str(caught.value).startswith(message)


# --- dataset_detail and operations ----------------------------------------------------------------------------


def test_dataset_detail_adds_reports_and_progress_to_show(world_catalog):
    world, _, _, catalog = world_catalog
    d, other = dataset(world, "RAW"), dataset(world, "AOD")
    ingest.record_problems(catalog.engine, [Problem(d["name"], "f1", "bad checksum"),
                                            Problem(other["name"], None, "not ours")])
    consistency.record(catalog.engine, [consistency.Finding("duplicates", d["name"], "2 duplicated events", 2)])
    progress.mark(catalog.engine, d["name"], progress.LOADED)
    detail = monitoring.dataset_detail(catalog, d["name"])
    assert json.loads(json.dumps(detail)) == detail
    shown = catalog.show(d["name"])
    assert detail["name"] == shown["name"] and detail["nevents"] == shown["nevents"] == d["nevents"]
    assert detail["loaded_at"] == shown["loaded_at"].isoformat()
    assert len(detail["files"]) == len(d["files"]) and detail["history"][0]["action"] == "load"
    assert [(v["file"], v["problem"]) for v in detail["validation_reports"]] == [("f1", "bad checksum")]
    assert [(c["check_name"], c["count"]) for c in detail["consistency_reports"]] == [("duplicates", 2)]
    assert detail["progress"]["state"] == "loaded"
    assert monitoring.dataset_detail(catalog, other["name"])["progress"] is None
    with pytest.raises(DatasetNotFound):
        monitoring.dataset_detail(catalog, "data18_13TeV.00000001.physics_Main.daq.RAW")


def test_operations_counts_states_and_sources_and_shows_what_is_in_flight(world_catalog):
    world, _, _, catalog = world_catalog
    gone = dataset(world, "AOD")
    catalog.mark_obsolete(gone["name"])
    waiting = "data18_13TeV.00999999.physics_Main.merge.AOD.f1_m2"
    progress.mark(catalog.engine, waiting, progress.WAITING, "waiting for 1 of 2 files")
    progress.mark(catalog.engine, dataset(world, "RAW")["name"], progress.LOADED)
    ingest.record_problems(catalog.engine, [Problem(waiting, None, "count mismatch")])
    consistency.record(catalog.engine, [consistency.Finding("stale", gone["name"], "old run", 1)])
    consistency.record(catalog.engine, [])
    ops = monitoring.operations(catalog)
    assert json.loads(json.dumps(ops)) == ops
    by = {(r["state"], r["source"]): (r["datasets"], r["events"]) for r in ops["by_state"]}
    live = [d for d in world["datasets"] if d["name"] != gone["name"]]
    assert by == {("loaded", "manual"): (len(live), sum(d["nevents"] for d in live)),
                  ("obsolete", "manual"): (1, gone["nevents"]), ("waiting", None): (1, 0)}
    assert [(p["dataset"], p["state"]) for p in ops["in_flight"]] == [(waiting, "waiting")]
    assert [(v["dataset"], v["problem"]) for v in ops["validation"]] == [(waiting, "count mismatch")]
    assert [(c["check_name"], c["count"]) for c in ops["consistency"]] == [("all", 0)]  # the latest run only


# --- ingestion rates ------------------------------------------------------------------------------------------


def test_ingestion_rates_count_loads_and_reloads_per_hour_and_day(tmp_path):
    catalog = EmbeddedCatalog(tmp_path / "cat", upgraded(f"sqlite:///{tmp_path / 'm.sqlite'}"))
    history = [("load", 10, datetime(2026, 11, 1, 9, 5)), ("reload", 20, datetime(2026, 11, 1, 9, 59, 59)),
               ("obsolete", None, datetime(2026, 11, 1, 9, 30)), ("load", 5, datetime(2026, 11, 1, 11, 0)),
               ("restore", None, datetime(2026, 11, 1, 11, 1)), ("load", 7, datetime(2026, 11, 2, 0, 0, 1))]
    with catalog.engine.begin() as conn:
        conn.execute(md.load_history.insert(), [{"dataset": f"d{i}", "action": a, "nevents": n, "at": at}
                                                for i, (a, n, at) in enumerate(history)])
    assert monitoring.ingestion_rates(catalog) == [
        {"t": "2026-11-01T09:00:00", "datasets": 2, "events": 30},
        {"t": "2026-11-01T11:00:00", "datasets": 1, "events": 5},
        {"t": "2026-11-02T00:00:00", "datasets": 1, "events": 7}]
    assert monitoring.ingestion_rates(catalog, "day") == [
        {"t": "2026-11-01T00:00:00", "datasets": 3, "events": 35},
        {"t": "2026-11-02T00:00:00", "datasets": 1, "events": 7}]
    with pytest.raises(BadRequest, match="bucket 'week' is not one of hour, day"):
        monitoring.ingestion_rates(catalog, "week")


# --- events per run / lumi block, overlaps ---------------------------------------------------------------------


def test_events_per_run_and_lumi_block_match_the_root_files(world_catalog):
    world, out, _, catalog = world_catalog
    raws = [d for d in world["datasets"] if d["datatype"] == "RAW" and d.get("stream") == "physics_Main"]
    run, lumi = _root_columns(out, raws, ["run_number", "lumi_block"])
    sel = make_selection(datatype="RAW", stream="physics_Main")
    assert monitoring.events_per(catalog, sel) == [{"run_number": r, "events": n}
                                                   for r, n in sorted(Counter(run.tolist()).items())]
    per_lumi = monitoring.events_per(catalog, sel, by="lumi_block")
    assert per_lumi == [{"run_number": r, "lumi_block": lb, "events": n}
                        for (r, lb), n in sorted(Counter(zip(run.tolist(), lumi.tolist())).items())]
    cut = monitoring.events_per(catalog, make_selection(datatype="RAW", stream="physics_Main", lumi_blocks=["3-7"]),
                                by="lumi_block")
    assert cut == [r for r in per_lumi if 3 <= r["lumi_block"] <= 7] and cut
    with pytest.raises(BadRequest, match="by 'event' is not one of run, lumi_block"):
        monitoring.events_per(catalog, sel, by="event")


def test_events_per_run_of_a_trigger_selection_adds_up_to_its_count(world_catalog):
    _, _, _, catalog = world_catalog
    sel = make_selection(datatype="AOD", version="latest", triggers=[TRIGGER])  # scanned, not from the key files
    rows = monitoring.events_per(catalog, sel)
    assert rows and sum(r["events"] for r in rows) == catalog.count(sel) > 0
    assert [r["run_number"] for r in rows] == sorted({r["run_number"] for r in rows})


def test_overlaps_default_to_the_three_streams_on_raw(world_catalog):
    world, _, _, catalog = world_catalog
    answer = monitoring.overlaps(catalog, make_selection())
    assert answer["labels"] == ["physics_Main", "physics_MinBias", "express_express"]
    assert json.loads(json.dumps(answer)) == answer
    for i, stream in enumerate(answer["labels"]):
        assert answer["matrix"][i][i] == sum(d["nevents"] for d in world["datasets"]
                                             if d["datatype"] == "RAW" and d.get("stream") == stream)
    assert answer["matrix"] == [list(r) for r in zip(*answer["matrix"])]
