"""The daily maintenance DAG through Airflow: it removes the store's garbage (a replaced version past its min age, a
crashed load's partial file) but no live file, and forgets old Rucio CLOSE records nobody announced; a dry run
changes nothing."""

import json
import os
import time
from datetime import timedelta

import pyarrow.parquet as pq

from eventindex import metadata as md
from eventindex import progress
from eventindex.catalog import make_selection
from eventindex.rucio_events import handle_rucio_event, parse_rucio_event
from tests.conftest import dataset
from tests.dags.conftest import task_states

STALE = "data18_13TeV.00358031.physics_Main.merge.AOD.f1_m1"
RECENT = "data18_13TeV.00358031.physics_Main.merge.AOD.f2_m2"


def _returned(run, task_id: str) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(select(XComModel).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id, XComModel.task_id == task_id,
            XComModel.key == "return_value")).one()
        value = XComModel.deserialize_value(row)
    return json.loads(value) if isinstance(value, str) else value


def _garbage(catalog, staging, world) -> tuple[str, list, list]:
    """A reload whose replaced version is two hours past its replacement, a crashed load's partial file, and two
    CLOSE records (40 and 5 days old) of datasets nobody announced: (dataset, garbage files, live files)."""
    name = dataset(world, "AOD", tag="f961_m1831")["name"]
    old = catalog._row(name)["load_id"]
    catalog.load(name, pq.read_table(next((staging / name).glob("*.parquet"))).slice(1))
    folder = catalog.root / "data" / f"dataset={name}"
    part = folder / "18f0000000000003-c0ffee00.parquet.part"
    part.write_bytes(b"x" * 4096)
    when = time.time() - 7200
    os.utime(part, (when, when))
    with catalog.engine.begin() as conn:
        conn.execute(md.load_history.update().where(md.load_history.c.replaced_load_id == old)
                     .values(at=md.now() - timedelta(hours=2)))
    for ds, days in ((STALE, 40), (RECENT, 5)):
        body = json.dumps({"event_type": "CLOSE", "payload": {"scope": "data18_13TeV", "name": ds, "length": 1}})
        handle_rucio_event(catalog.engine, catalog, parse_rucio_event(body))
        with catalog.engine.begin() as conn:
            conn.execute(md.dataset_progress.update().where(md.dataset_progress.c.dataset == ds)
                         .values(closed_at=md.now() - timedelta(days=days)))
    garbage = sorted(folder.glob(f"{old}.*")) + [part]
    live = sorted(p for p in (catalog.root / "data").rglob("*") if p.is_file() and p not in garbage)
    return name, garbage, live


def test_the_maintenance_dag_removes_garbage_and_old_close_records_but_nothing_live(dagbag, loaded):
    world, _, staging, catalog, _ = loaded
    name, garbage, live = _garbage(catalog, staging, world)
    assert len(garbage) == 4 and all(p.exists() for p in garbage)
    size = sum(p.stat().st_size for p in garbage)
    dag = dagbag.dags["eventindex_maintenance"]
    dry = dag.test(run_conf={"dry_run": True})
    assert str(dry.state) == "success", task_states(dry)
    assert _returned(dry, "collect_garbage")["removed"] == 4 and all(p.exists() for p in garbage)
    assert progress.get(catalog.engine, STALE) is not None
    run = dag.test(logical_date=dry.logical_date + timedelta(seconds=1), run_conf={"dry_run": False})
    assert str(run.state) == "success", task_states(run)
    assert _returned(run, "collect_garbage") == {"backend": "embedded", "removed": 4, "bytes_freed": size,
                                                 "kept": 0, "dry_run": False}
    assert not any(p.exists() for p in garbage) and all(p.exists() for p in live)
    assert _returned(run, "prune_rucio_closes") == {"pruned": 1, "dry_run": False}
    assert progress.get(catalog.engine, STALE) is None and progress.get(catalog.engine, RECENT) is not None
    for d in world["datasets"]:  # every dataset still whole
        expected = d["nevents"] - 1 if d["name"] == name else d["nevents"]
        assert catalog.count(make_selection(dataset=d["name"])) == expected
