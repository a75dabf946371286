"""Run periods as a selection: ``--period`` / ``period=`` selects the runs the metadata DB's run_periods give the
period, so its counts equal those of the equivalent run range; an unknown period is refused naming the known ones.

The expected periods come from the world's runs (consecutive runs with one menu make a period, lettered from B),
never from the code under test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eventindex import conditions
from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.errors import BadSelection
from tests.conftest import upgraded
from tests.unit.test_conditions import _expected_periods


def _world_periods(world) -> dict[str, tuple[int, int]]:
    """The periods the conditions source holds for the world, as the conditions tests expect them."""
    return {p: (a, b) for p, a, b in _expected_periods(world)}


@pytest.fixture(scope="module")
def period_catalog(staged_world, tmp_path_factory):
    world, out, staging = staged_world
    tmp = tmp_path_factory.mktemp("periods")
    catalog = EmbeddedCatalog(tmp / "cat", upgraded(f"sqlite:///{tmp / 'm.sqlite'}"))
    conditions.sync(conditions.world_source(out), catalog)
    load_staged(catalog, str(staging))
    return world, catalog


def test_counts_of_a_period_equal_counts_of_its_run_range(period_catalog):
    world, catalog = period_catalog
    periods = _world_periods(world)
    assert len(periods) == 2
    project = world["config"]["project"]
    for name, (first, last) in periods.items():
        for extra in ({}, {"stream": "physics_Main", "datatype": "AOD"}, {"project": project, "lumi_blocks": ["3-9"]}):
            by_period = catalog.count(make_selection(period=name, **extra))
            by_runs = catalog.count(make_selection(runs=[(first, last)], **extra))
            assert by_period == by_runs > 0, (name, extra)
    both = catalog.count(make_selection(period="B,C"))
    in_runs = sum(d["nevents"] for d in world["datasets"] if "dsid" not in d)
    assert both == in_runs and both < world["nevents"]  # the simulation samples are in no period


def test_a_period_and_a_run_range_select_their_intersection(period_catalog):
    world, catalog = period_catalog
    (b_first, b_last), (c_first, _) = _world_periods(world).values()
    assert catalog.count(make_selection(period="B", runs=[(c_first, c_first)])) == 0
    assert catalog.count(make_selection(period="B", runs=[(b_first, b_last)])) == \
        catalog.count(make_selection(runs=[(b_first, b_last)]))


def test_selected_events_of_a_period_are_the_runs_of_that_period(period_catalog):
    world, catalog = period_catalog
    first, last = _world_periods(world)["C"]
    runs = {int(r) for b in catalog.select(make_selection(period="C", datatype="RAW"), ["run_number"])
            for r in b.column("run_number").to_numpy()}
    assert runs and all(first <= r <= last for r in runs)


def test_an_unknown_period_is_refused_naming_it_and_the_known_ones(period_catalog):
    world, catalog = period_catalog
    with pytest.raises(BadSelection) as exc:
        catalog.count(make_selection(period="B,Q"))
    message = str(exc.value)
    assert "Q" in message and f"{world['config']['project']} B" in message and " C (" in message
    with pytest.raises(BadSelection, match="mc16_13TeV"):  # periods are per project
        catalog.count(make_selection(period="B", project="mc16_13TeV"))
    with pytest.raises(BadSelection, match="not a run period name"):
        make_selection(period="B; drop table datasets")


def test_a_catalogue_without_synced_periods_says_to_sync_them(staged_world, tmp_path):
    catalog = EmbeddedCatalog(tmp_path / "cat", upgraded(f"sqlite:///{tmp_path / 'm.sqlite'}"))
    with pytest.raises(BadSelection, match="sync the conditions"):
        catalog.count(make_selection(period="B"))


def test_the_cli_period_option_counts_like_the_run_option(staged_world, eventindex_home, metadata_home):
    world, out, staging = staged_world
    eventindex_home.mkdir(parents=True, exist_ok=True)
    (eventindex_home / "world").symlink_to(out)  # `eventindex load` syncs the world's conditions

    def ei(*args, check=True):
        return subprocess.run([sys.executable, "-m", "eventindex.cli", *map(str, args)], capture_output=True,
                              text=True, check=check)

    ei("load", staging)
    periods = _world_periods(world)
    (b_first, b_last), (c_first, c_last) = periods["B"], periods["C"]
    by_period = json.loads(ei("count", "--period", "B", "--period", "C", "--type", "RAW", "--json").stdout)
    by_runs = json.loads(ei("count", "--run", f"{b_first}-{b_last},{c_first}-{c_last}", "--type", "RAW",
                            "--json").stdout)
    assert by_period == by_runs and by_period["count"] > 0
    bad = ei("count", "--period", "X", check=False)
    assert bad.returncode != 0 and "unknown period X" in bad.stderr


def test_the_web_selection_takes_period_like_the_cli(period_catalog):
    from eventindex_web.api import queries

    world, catalog = period_catalog
    first, last = _world_periods(world)["B"]
    sel = queries.selection(period=["B"], type="AOD")
    assert sel.periods == ("B",) and queries.selection(period=["B,C", "C"]).periods == ("B", "C")
    assert catalog.count(sel) == catalog.count(queries.selection(run=[f"{first}-{last}"], type="AOD")) > 0


def test_a_dataset_straddling_a_period_edge_is_refused_not_counted_whole():
    from eventindex.ami.periods import in_periods

    ranges = {"data18_13TeV": ((100, 200),)}
    row = {"name": "data18_13TeV.00000150.physics_Main.merge.AOD.f1", "project": "data18_13TeV"}
    assert in_periods({**row, "first_run": 150, "last_run": 150}, ranges)
    assert not in_periods({**row, "first_run": 201, "last_run": 300}, ranges)
    assert not in_periods({**row, "project": "data17_13TeV", "first_run": 150, "last_run": 150}, ranges)
    with pytest.raises(BadSelection, match="run range"):
        in_periods({**row, "first_run": 190, "last_run": 250}, ranges)


def test_skims_and_histograms_spell_the_period_and_the_skim_dag_takes_it():
    from eventindex.tag import histogram, skim

    sel = make_selection(period="B,C", datatype="AOD")
    assert skim.selection_options(sel)["period"] == ["B", "C"]
    assert skim.selection_of(skim.selection_options(sel)) == sel
    assert "--period B,C" in skim.reproduce_command(sel, ["run_number"], ["AOD"], "x.root")
    assert histogram.selection_dict(sel)["period"] == ["B", "C"]
    conf = skim.dag_conf(sel, ["run_number"], ["AOD"], "x.root")
    assert conf["period"] == ["B", "C"] and skim.selection_of({k: conf[k] for k in skim.SELECTION_OPTIONS}) == sel
