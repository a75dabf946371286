"""AMI's derived quantities (eventindex.ami.derived): production status from the task's, Rucio's and the catalogue's
states, cross-section and filter efficiency propagated from the generation tasks down to AOD and DAOD, recomputed
when fresh information arrives.

Expected values are computed here from the world's production-system table read with SQL (a sample's generation
tasks found by its DSID in their output names, not through the input links the code follows) and from the
world's datasets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from eventindex import progress
from eventindex.ami import derived
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.trigger import load_menus
from tests.conftest import upgraded


@pytest.fixture
def setup(staged_world, tmp_path):
    """The small world loaded into a fresh catalogue, and a copy of its upstream DB to change: (world, catalogue,
    upstream URL)."""
    world, out, staging = staged_world
    shutil.copy(out / "upstream.sqlite", tmp_path / "upstream.sqlite")
    catalog = EmbeddedCatalog(tmp_path / "catalog", upgraded(f"sqlite:///{tmp_path / 'metadata.sqlite'}"))
    catalog.save_menus(load_menus(out / "menus.json")[0].values())
    load_staged(catalog, str(staging))
    return world, catalog, f"sqlite:///{tmp_path / 'upstream.sqlite'}"


def _generation(url: str, dsid: int) -> dict[int, tuple[float, float]]:
    with sa.create_engine(url).connect() as conn:
        rows = conn.execute(sa.text("SELECT task_id, output_datasets, cross_section_pb, filter_efficiency "
                                    "FROM prodsys_tasks")).all()
    return {t: (x, e) for t, outs, x, e in rows
            if any(f".{dsid}." in o and ".evgen.EVNT." in o for o in json.loads(outs))}


def _update(url: str, task_id: int, **values) -> None:
    """Change a task upstream as the production system would, with a newer last_update."""
    sets = ", ".join(f"{k} = :{k}" for k in values)
    with sa.create_engine(url).begin() as conn:
        last = conn.execute(sa.text("SELECT max(last_update) FROM prodsys_tasks")).scalar()
        later = datetime.fromisoformat(str(last)) + timedelta(hours=1)
        conn.execute(sa.text(f"UPDATE prodsys_tasks SET {sets}, last_update = :later WHERE task_id = :id"),
                     {**values, "later": later, "id": task_id})


def _mc(world, datatype):
    return [d for d in world["datasets"] if "dsid" in d and d["datatype"] == datatype]


def _task_of(url: str, name: str) -> int:
    with sa.create_engine(url).connect() as conn:
        rows = conn.execute(sa.text("SELECT task_id, output_datasets FROM prodsys_tasks")).all()
    return next(t for t, outs in rows if name in json.loads(outs))


def test_cross_section_and_filter_efficiency_descend_from_the_generation_tasks(setup):
    world, catalog, url = setup
    derived.sync_tasks(catalog.engine, url)
    mc = _mc(world, "AOD") + _mc(world, "DAOD_PHYS")
    assert len(mc) == 4
    for d in mc:
        gen = _generation(url, d["dsid"])
        assert len(gen) == 3
        xs, eff = [x for x, _ in gen.values()], [e for _, e in gen.values()]
        q = derived.stored(catalog.engine, d["name"])
        assert q["generation_tasks"] == sorted(gen)
        assert q["cross_section_avg"] == pytest.approx(sum(xs) / 3)
        assert (q["cross_section_min"], q["cross_section_max"]) == (min(xs), max(xs))
        assert q["filter_efficiency_avg"] == pytest.approx(sum(eff) / 3)
        assert (q["filter_efficiency_min"], q["filter_efficiency_max"]) == (min(eff), max(eff))
    data = next(d for d in world["datasets"] if d["datatype"] == "DAOD_PHYS" and "dsid" not in d)
    q = derived.stored(catalog.engine, data["name"])
    assert q["cross_section_avg"] is None and q["generation_tasks"] == []


def test_a_changed_generation_task_recomputes_what_descends_from_it_and_nothing_else(setup):
    world, catalog, url = setup
    derived.sync_tasks(catalog.engine, url)
    assert derived.sync_tasks(catalog.engine, url) == []  # nothing new upstream: nothing recomputed
    aod = _mc(world, "AOD")[0]
    gen = _generation(url, aod["dsid"])
    task = min(gen)
    _update(url, task, cross_section_pb=1000.0, filter_efficiency=0.25)
    done = derived.sync_tasks(catalog.engine, url)
    same_sample = {d["name"] for d in world["datasets"] if d.get("dsid") == aod["dsid"]}
    assert same_sample <= {q["dataset"] for q in done}
    assert not {d["name"] for d in world["datasets"] if "dsid" in d} - same_sample & {q["dataset"] for q in done}
    xs = [1000.0 if t == task else x for t, (x, _) in gen.items()]
    for name in same_sample:
        q = derived.stored(catalog.engine, name)
        assert q["reason"] == "prodsys"
        assert q["cross_section_avg"] == pytest.approx(sum(xs) / 3) and q["cross_section_max"] == 1000.0
        assert q["filter_efficiency_min"] == 0.25


def test_production_status_follows_the_task_rucio_and_the_catalogue(setup):
    world, catalog, url = setup
    engine = catalog.engine
    daod = _mc(world, "DAOD_PHYS")[0]
    name, nfiles = daod["name"], len(daod["files"])
    assert (derived.stored(engine, name)["production_status"], derived.stored(engine, name)["reason"]) == \
        ("complete", "load")
    progress.record_closed(engine, name, files=nfiles + 1, events=daod["nevents"])
    q = derived.stored(engine, name)
    assert (q["production_status"], q["reason"]) == ("incomplete", "rucio")
    assert q["detail"]["rucio"]["files"] == nfiles + 1 and q["detail"]["catalogue"]["nfiles"] == nfiles
    progress.record_closed(engine, name, files=nfiles, events=daod["nevents"])
    assert derived.stored(engine, name)["production_status"] == "complete"
    derived.sync_tasks(engine, url)
    _update(url, _task_of(url, name), status="running")
    derived.sync_tasks(engine, url)
    q = derived.stored(engine, name)
    assert (q["production_status"], q["reason"], q["detail"]["task"]["status"]) == ("running", "prodsys", "running")
    _update(url, _task_of(url, name), status="aborted")
    derived.sync_tasks(engine, url)
    assert derived.stored(engine, name)["production_status"] == "failed"
    _update(url, _task_of(url, name), status="done")
    derived.sync_tasks(engine, url)
    catalog.mark_obsolete(name)
    assert (derived.stored(engine, name)["production_status"], derived.stored(engine, name)["reason"]) == \
        ("obsolete", "catalogue")
    catalog.restore(name)
    assert derived.stored(engine, name)["production_status"] == "complete"


def test_a_tier0_dataset_flagged_ready_and_not_indexed_is_produced(setup):
    world, catalog, url = setup
    new = "data18_13TeV.00358999.physics_Main.daq.RAW"
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("INSERT INTO tier0_datasets VALUES (:n, 358999, 'physics_Main', 'RAW', 'READY', "
                             ":t, :t)"), {"n": new, "t": datetime(2018, 10, 1)})
    done = {q["dataset"]: q for q in derived.sync_tier0(catalog.engine, url)}
    assert done[new]["production_status"] == "produced" and done[new]["reason"] == "tier0"
    assert done[new]["detail"]["task"] == {"source": "tier0", "task_id": None, "status": "READY"}
    raw = next(d["name"] for d in world["datasets"] if d["datatype"] == "RAW")
    assert done[raw]["production_status"] == "complete"
    assert derived.sync_tier0(catalog.engine, url) == []  # no flag changed


def test_show_and_ami_sync_on_the_command_line(setup, tmp_path):
    world, catalog, url = setup
    env = {**os.environ, "EVENTINDEX_HOME": str(tmp_path)}
    ei = lambda *a: subprocess.run([sys.executable, "-m", "eventindex.cli", *a], capture_output=True,  # noqa: E731
                                   text=True, env=env)
    r = ei("ami", "sync", "--upstream", url, "--json")
    assert r.returncode == 0, r.stderr
    aod = _mc(world, "AOD")[0]
    assert aod["name"] in {q["dataset"] for q in json.loads(r.stdout)}
    r = ei("show", aod["name"], "--json")
    assert r.returncode == 0, r.stderr
    ami = json.loads(r.stdout)["ami"]
    xs = [x for x, _ in _generation(url, aod["dsid"]).values()]
    assert ami["production_status"] == "complete" and ami["cross_section_avg"] == pytest.approx(sum(xs) / 3)
    r = ei("show", aod["name"])
    assert "cross-section" in r.stdout and "complete" in r.stdout
