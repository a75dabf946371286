"""Conditions reach the metadata DB through ``conditions.sync``: trigger menus and run periods copied once from the
conditions source (the world's COMA tables), new ones after the next sync; a dataset whose menu is missing, or whose
events carry no trigger decisions, is loaded, flagged and refused by trigger queries instead of counting 0.

Expected values come from the world (world.json, menus.json) and the staged Parquet files, never from the code under
test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
import sqlalchemy as sa

from eventindex import conditions, upstream
from eventindex import metadata as md
from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.errors import MenuMissing, NoTriggerInformation, NotFound
from eventindex.sim.triggers import build_menu
from eventindex.trigger import bit_is_set, load_menus, masks_from_arrow
from tests.conftest import dataset, upgraded

ATLAS_FILE = Path("/work/shared/data/atlas/DAOD_PHYSLITE.run2-mc16.pool.root")
CHAIN = "HLT_e26_lhtight_ivarloose_L1EM22VHI"


@pytest.fixture
def source(small_world, tmp_path):
    """A copy of the small world's conditions source (tests add to it): (world, world folder, URL)."""
    world, out = small_world
    shutil.copy(out / "upstream.sqlite", tmp_path / "upstream.sqlite")
    return world, out, f"sqlite:///{tmp_path / 'upstream.sqlite'}"


@pytest.fixture
def catalog(tmp_path):
    return EmbeddedCatalog(tmp_path / "cat", upgraded(f"sqlite:///{tmp_path / 'm.sqlite'}"))


def _expected_periods(world) -> list[tuple[str, int, int]]:
    """Consecutive runs with the same menu make one period, lettered from B."""
    out: list[list] = []
    for run in sorted(world["runs"], key=lambda r: r["run_number"]):
        if out and out[-1][3] == run["smk"]:
            out[-1][2] = run["run_number"]
        else:
            out.append([chr(ord("B") + len(out)), run["run_number"], run["run_number"], run["smk"]])
    return [(p, a, b) for p, a, b, _ in out]


def _rows(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def test_sync_copies_menus_and_periods_once_and_a_second_sync_changes_nothing(source, catalog):
    world, out, url = source
    menus, _ = load_menus(out / "menus.json")
    result = conditions.sync(url, catalog)
    assert result.menus_added == sorted(menus) and result.changed
    assert catalog.menus() == menus
    held = [(p["period"], p["first_run"], p["last_run"]) for p in conditions.periods(catalog, world["config"]["project"])]
    assert held == _expected_periods(world) and len(held) == 2
    again = conditions.sync(url, catalog)
    assert not again.changed and again.menus_added == [] and again.periods_added == again.periods_updated == []
    assert (again.source_menus, again.source_periods) == (len(menus), len(held))
    assert _rows(catalog.engine, md.trigger_menus) == len(menus) and _rows(catalog.engine, md.run_periods) == 2


def test_a_new_menu_in_the_source_appears_after_the_next_sync(source, catalog):
    world, out, url = source
    conditions.sync(url, catalog)
    assert 2999 not in catalog.menus()  # read once, so that the catalogue has menus cached
    new, _ = build_menu(2999, 1)
    upstream.write_conditions(url, [new])
    result = conditions.sync(url, catalog)
    assert result.menus_added == [2999] and result.periods_added == []
    assert catalog.menus()[2999] == new


def test_a_period_that_grew_in_the_source_is_updated(source, catalog):
    world, out, url = source
    conditions.sync(url, catalog)
    last = upstream.read_periods(url)[-1]
    upstream.write_conditions(url, periods=[{**last, "last_run": last["last_run"] + 100}])
    result = conditions.sync(url, catalog)
    assert result.periods_updated == [f"{last['project']} {last['period']}"] and result.menus_added == []
    assert conditions.periods(catalog)[-1]["last_run"] == last["last_run"] + 100


def test_sync_into_a_bare_metadata_engine(source, tmp_path):
    world, out, url = source
    engine = md.make_engine(upgraded(f"sqlite:///{tmp_path / 'bare.sqlite'}"))
    assert conditions.sync(url, engine).menus_added == sorted(load_menus(out / "menus.json")[0])
    with engine.connect() as conn:
        assert sorted(md.load_menus(conn)) == sorted(load_menus(out / "menus.json")[0])


def test_a_conditions_source_that_does_not_exist_is_not_found_and_not_created(catalog, tmp_path):
    missing = tmp_path / "nowhere" / "upstream.sqlite"
    with pytest.raises(NotFound, match="no conditions source"):
        conditions.sync(f"sqlite:///{missing}", catalog)
    assert not missing.exists()


def test_the_menu_of_a_real_xaod_file_is_read_from_its_metadata():
    menus = conditions.menus_from_file(ATLAS_FILE)
    assert [m.smk for m in menus] == [2216]
    menu = menus[0]
    assert menu.locate("L1_EM22VHI")[0] == "L1" and menu.locate("HLT_e26_lhtight_idperf") == ("HLT", 1)
    assert menu.hlt_seeds["HLT_e26_lhtight_idperf"] == "L1_EM22VHI"
    # every chain, counters past the default 1024-bit mask included (the HLT masks get the width the menu needs)
    assert len(menu.l1_items) <= 512 and menu.locate("HLT_j30_xe60_razor220")[0] == "HLT"
    with uproot.open(ATLAS_FILE) as h:
        ids = h["MetaData"]["TriggerMenuAux./TriggerMenuAux.chainIds"].array(library="np")[0][0]
    assert len(menu.hlt_chains) == int(max(ids)) + 1 == 4242 and sum(c is not None for c in menu.hlt_chains) == len(ids)


def test_our_own_files_carry_no_menu_of_their_own(small_world):
    world, out = small_world
    assert conditions.menus_from_file(out / dataset(world, "RAW")["files"][0]["path"]) == []


# --- menu missing -------------------------------------------------------------------------------------------------


def _passing(staging: Path, name: str, menu, chain: str) -> int:
    """Events of a staged dataset whose mask has the chain's bit set, decoded independently of the catalogue."""
    table = pa.concat_tables([pq.read_table(p) for p in sorted((staging / name).glob("*.parquet"))])
    level, bit = menu.locate(chain)
    masks = masks_from_arrow(table.column("hlt_passed" if level == "HLT" else "l1_tav"))
    return int((bit_is_set(masks, bit) & (table.column("smk").to_numpy() == menu.smk)).sum())


def _raw_of_runs(world) -> tuple[dict, dict]:
    first, last = world["runs"][0], world["runs"][-1]
    assert first["smk"] != last["smk"]  # the world changes menu between runs
    pick = [d for d in world["datasets"] if d["datatype"] == "RAW" and d.get("stream") == "physics_Main"]
    return (next(d for d in pick if d["run_number"] == first["run_number"]),
            next(d for d in pick if d["run_number"] == last["run_number"]))


def test_a_dataset_whose_menu_is_missing_loads_flagged_and_its_trigger_query_names_it(staged_world, catalog, source):
    world, out, staging = staged_world
    _, _, url = source
    menus, _ = load_menus(out / "menus.json")
    early, late = _raw_of_runs(world)
    catalog.save_menus([menus[world["runs"][0]["smk"]]])  # only the first run's menu is known
    for d in (early, late):
        load_staged(catalog, str(staging / d["name"]))
    late_smk = world["runs"][-1]["smk"]
    assert catalog.show(late["name"])["menu_missing"] == [late_smk]
    assert catalog.show(early["name"])["menu_missing"] == []
    with pytest.raises(MenuMissing) as exc:
        catalog.count(make_selection(datatype="RAW", triggers=[CHAIN]))
    assert late["name"] in str(exc.value) and str(late_smk) in str(exc.value) and early["name"] not in str(exc.value)
    with pytest.raises(MenuMissing):  # the scan path (an event-level cut) and selecting say the same
        catalog.count(make_selection(datatype="RAW", triggers=[CHAIN], lumi_blocks=["1-10"]))
    with pytest.raises(MenuMissing):
        list(catalog.select(make_selection(dataset=late["name"], triggers=[CHAIN])))
    # the dataset with its menu answers; the whole selection does once the conditions are synced
    expect_early = _passing(staging, early["name"], menus[world["runs"][0]["smk"]], CHAIN)
    assert catalog.count(make_selection(dataset=early["name"], triggers=[CHAIN])) == expect_early > 0
    conditions.sync(url, catalog)
    assert catalog.show(late["name"])["menu_missing"] == []
    expect_late = _passing(staging, late["name"], menus[late_smk], CHAIN)
    assert catalog.count(make_selection(datatype="RAW", triggers=[CHAIN])) == expect_early + expect_late


def _without_trigger(staging: Path, name: str) -> pa.Table:
    """A staged dataset's records as a producer writes them for files without trigger decisions: SMK 0, null masks."""
    table = pa.concat_tables([pq.read_table(p) for p in sorted((staging / name).glob("*.parquet"))])
    for column in ("smk", "l1psk", "hltpsk"):
        table = table.set_column(table.schema.get_field_index(column), column,
                                 pa.array(np.zeros(table.num_rows, np.uint32)))
    for column in ("l1_tbp", "l1_tap", "l1_tav", "hlt_passed", "hlt_prescaled", "hlt_resurrected"):
        i = table.schema.get_field_index(column)
        table = table.set_column(i, table.schema.field(i).with_nullable(True),
                                 pa.nulls(table.num_rows, table.schema.field(i).type))
    return table


def test_a_dataset_without_trigger_information_says_so_instead_of_counting_0(staged_world, catalog):
    world, out, staging = staged_world
    catalog.save_menus(load_menus(out / "menus.json")[0].values())
    d = dataset(world, "DAOD_PHYS", mc=True)
    other = dataset(world, "AOD", mc=True)
    catalog.load(d["name"], _without_trigger(staging, d["name"]))
    load_staged(catalog, str(staging / other["name"]))
    shown = catalog.show(d["name"])
    assert shown["trigger_information"] is False and shown["menu_missing"] == []
    assert catalog.show(other["name"])["trigger_information"] is True
    assert catalog.count(make_selection(dataset=d["name"])) == d["nevents"]  # loaded, counted without triggers
    for sel in (make_selection(dataset=d["name"], triggers=[CHAIN]),
                make_selection(project="mc16_13TeV", triggers=[CHAIN]),
                make_selection(dataset=d["name"], triggers=[CHAIN], lumi_blocks=["0-1000"])):
        with pytest.raises(NoTriggerInformation) as exc:
            catalog.count(sel)
        assert f"no trigger information in {d['name']}" in str(exc.value)
    # the other sample still answers by trigger
    expect = sum(_passing(staging, other["name"], m, CHAIN) for m in load_menus(out / "menus.json")[0].values())
    assert catalog.count(make_selection(dataset=other["name"], triggers=[CHAIN])) == expect


def test_the_cli_shows_a_missing_menu_and_eventindex_load_syncs_the_worlds_conditions(staged_world, eventindex_home, metadata_home):
    from tests.unit.test_catalog_cli import ei

    world, out, staging = staged_world
    _, late = _raw_of_runs(world)
    ei("load", staging / late["name"])  # no world under EVENTINDEX_HOME: no conditions source, nothing synced
    shown = ei("show", late["name"]).stdout
    assert "menu missing" in shown and str(world["runs"][-1]["smk"]) in shown
    refused = ei("count", "--dataset", late["name"], "--trigger", CHAIN, check=False)
    assert refused.returncode == 1 and "menu missing" in refused.stderr and late["name"] in refused.stderr
    (eventindex_home / "world").symlink_to(out)  # the world, with its conditions source
    ei("load", staging / late["name"])
    assert "menu missing" not in ei("show", late["name"]).stdout
    menu = load_menus(out / "menus.json")[0][world["runs"][-1]["smk"]]
    counted = ei("count", "--dataset", late["name"], "--trigger", CHAIN, "--json").stdout
    assert json.loads(counted)["count"] == _passing(staging, late["name"], menu, CHAIN) > 0
