"""Provenance and count history in ``show --json``: parents and children follow the AMI tag chains of the small
world (RAW -> Tier-0 AOD, RAW -> reprocessed AOD -> DAOD_PHYS; simulation AOD -> DAOD_PHYS); a reload with a file
fewer appears in ``history_counts`` with its changes. Expected values are written out by hand from world.json."""

from __future__ import annotations

import pytest

from eventindex import monitoring
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.producer import produce
from eventindex.sim.world import DERIV_TAG, MC_DERIV_TAG, MC_TAG, REPRO_TAG, T0_TAG
from tests.conftest import dataset, upgraded


@pytest.fixture(scope="module")
def loaded(staged_world, tmp_path_factory):
    world, out, staging = staged_world
    tmp = tmp_path_factory.mktemp("provenance")
    catalog = EmbeddedCatalog(tmp / "cat", upgraded(f"sqlite:///{tmp / 'm.sqlite'}"))
    load_staged(catalog, str(staging))
    return world, out, catalog, tmp


def _name(world, run, datatype, tag="", stream="physics_Main"):
    return next(d["name"] for d in world["datasets"] if d.get("run_number") == run and d.get("stream") == stream
                and d["datatype"] == datatype and (d["amitag"] or "") == tag)


def test_parents_and_children_follow_the_tag_chains(loaded):
    world, _, catalog, _ = loaded
    run = min(r["run_number"] for r in world["runs"])
    raw, t0 = _name(world, run, "RAW"), _name(world, run, "AOD", T0_TAG)
    repro, deriv = _name(world, run, "AOD", REPRO_TAG), _name(world, run, "DAOD_PHYS", DERIV_TAG)
    expected = {raw: ([], sorted([t0, repro])), t0: ([raw], []), repro: ([raw], [deriv]), deriv: ([repro], [])}
    for name, (parents, children) in expected.items():
        got = monitoring.dataset_detail(catalog, name)["provenance"]
        assert got == {"parents": parents, "children": children}, name
    minbias = _name(world, run, "RAW", stream="physics_MinBias")  # another stream is another sample
    assert monitoring.dataset_detail(catalog, minbias)["provenance"]["children"] == \
        [_name(world, run, "AOD", T0_TAG, stream="physics_MinBias")]


def test_a_simulation_aod_has_no_parent_in_the_catalogue_and_its_derivation_as_child(loaded):
    world, _, catalog, _ = loaded
    aod, daod = dataset(world, "AOD", mc=True), dataset(world, "DAOD_PHYS", mc=True)
    assert (aod["amitag"], daod["amitag"]) == (MC_TAG, MC_DERIV_TAG)
    assert monitoring.dataset_detail(catalog, aod["name"])["provenance"] == {"parents": [], "children": [daod["name"]]}
    assert monitoring.dataset_detail(catalog, daod["name"])["provenance"] == {"parents": [aod["name"]], "children": []}


def test_history_counts_show_a_reload_with_a_file_fewer(loaded):
    world, out, catalog, tmp = loaded
    run = max(r["run_number"] for r in world["runs"])  # the provenance tests use the first run
    d = next(x for x in world["datasets"] if x["name"] == _name(world, run, "RAW"))
    assert len(d["files"]) >= 2
    shorter = tmp / "shorter"
    produce(d["name"], [str(out / f["path"]) for f in d["files"][:-1]], str(shorter), d["task_id"], 2)
    load_staged(catalog, str(shorter))
    counts = monitoring.dataset_detail(catalog, d["name"])["history_counts"]
    fewer = d["nevents"] - d["files"][-1]["nevents"]
    assert [(h["action"], h["nfiles"], h["nevents"], h["nfiles_change"], h["nevents_change"]) for h in counts] == [
        ("load", len(d["files"]), d["nevents"], None, None),
        ("reload", len(d["files"]) - 1, fewer, -1, fewer - d["nevents"])]
    catalog.mark_obsolete(d["name"])  # not a change of counts: not listed
    assert len(monitoring.dataset_detail(catalog, d["name"])["history_counts"]) == 2


def test_a_schema_7_database_gains_load_history_nfiles_and_its_old_loads_show_null(tmp_path):
    import sqlalchemy as sa

    from eventindex import metadata as md
    from eventindex.ami.provenance import history_counts

    from tests import legacy_schema

    url = f"sqlite:///{tmp_path / 'v7.sqlite'}"
    with sa.create_engine(url).begin() as conn:  # what a version-7 installation holds: load_history without nfiles
        legacy_schema.build(conn, 7)
        conn.exec_driver_sql("INSERT INTO load_history (dataset, action, load_id, nevents, at) "
                             "VALUES ('d', 'load', 'a', 10, '2026-01-01 00:00:00')")
    assert md.upgrade(url) == md.SCHEMA_HEAD
    engine = md.make_engine(url)
    with engine.connect() as conn:
        history = [dict(r._mapping) for r in conn.execute(sa.select(md.load_history))]
    assert history_counts(history) == [{"at": history[0]["at"], "action": "load", "load_id": "a", "nfiles": None,
                                        "nevents": 10, "nfiles_change": None, "nevents_change": None}]
