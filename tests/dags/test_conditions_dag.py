"""The conditions DAG run by Airflow (dag.test): trigger menus reach the metadata DB from the conditions source with no
manual step, so that a trigger-name count on data loaded before them works; the Asset is emitted on change only."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventindex.catalog import make_selection, open_catalog
from eventindex.catalog.loader import load_staged
from eventindex.errors import MenuMissing
from eventindex.settings import Settings
from eventindex.trigger import bit_is_set, load_menus, masks_from_arrow
from tests.conftest import dataset
from tests.dags.conftest import task_states

CHAIN = "HLT_mu26_ivarmedium_L1MU14FCH"


def _conditions_events() -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id) \
            .filter(AssetModel.name == "eventindex://conditions").count()


def _expected(staging, name, menus) -> int:
    table = pa.concat_tables([pq.read_table(p) for p in sorted((staging / name).glob("*.parquet"))])
    smk = table.column("smk").to_numpy()
    total = 0
    for key in np.unique(smk):
        level, bit = menus[int(key)].locate(CHAIN)
        masks = masks_from_arrow(table.column("hlt_passed" if level == "HLT" else "l1_tav"))
        total += int((bit_is_set(masks, bit) & (smk == key)).sum())
    return total


@pytest.mark.parametrize("through", ["default", "connection"])
def test_the_conditions_dag_syncs_the_menus_so_that_a_trigger_count_works(dagbag, staged_world, eventindex_home,
                                                                          monkeypatch, tmp_path, through):
    world, out, staging = staged_world
    if through == "default":  # the world's conditions source under EVENTINDEX_HOME
        eventindex_home.mkdir(parents=True, exist_ok=True)
        (eventindex_home / "world").symlink_to(out)
    else:  # the eventindex_conditions connection names the conditions DB
        monkeypatch.setenv("AIRFLOW_CONN_EVENTINDEX_CONDITIONS", json.dumps(
            {"conn_type": "generic", "extra": {"url": f"sqlite:///{out / 'upstream.sqlite'}"}}))
    d = dataset(world, "RAW")
    catalog = open_catalog(Settings.from_env())
    load_staged(catalog, str(staging / d["name"]))
    sel = make_selection(dataset=d["name"], triggers=[CHAIN])
    with pytest.raises(MenuMissing):
        catalog.count(sel)
    before = _conditions_events()
    dag = dagbag.dags["eventindex_conditions"]
    run = dag.test()
    assert task_states(run) == {"sync": "success", "changed": "success"}
    assert _conditions_events() == before + 1
    assert catalog.count(sel) == _expected(staging, d["name"], load_menus(out / "menus.json")[0]) > 0
    # nothing new: the run succeeds, the Asset is not emitted again
    again = dag.test()
    assert task_states(again) == {"sync": "success", "changed": "skipped"}
    assert _conditions_events() == before + 1


def test_without_a_world_the_default_source_has_nothing_to_sync(dagbag, eventindex_home):
    run = dagbag.dags["eventindex_conditions"].test()
    assert task_states(run)["sync"] == "skipped"
    assert not (eventindex_home / "world" / "upstream.sqlite").exists()


def test_a_data_files_own_trigger_menu_reaches_the_metadata_db_through_the_dag(dagbag, staged_world, eventindex_home,
                                                                               monkeypatch):
    from pathlib import Path

    import uproot

    _, out, _ = staged_world
    monkeypatch.setenv("AIRFLOW_CONN_EVENTINDEX_CONDITIONS", json.dumps(
        {"conn_type": "generic", "extra": {"url": f"sqlite:///{out / 'upstream.sqlite'}"}}))
    real = Path(__file__).resolve().parents[1] / "data" / "atlas" / "DAOD_PHYSLITE.run2-mc16.pool.root"
    with uproot.open(real) as f:  # the SMK of the file's menu, read straight from its metadata tree
        smk = int(f["MetaData"]["TriggerMenuAux./TriggerMenuAux.smk"].array(library="np")[0][0])
    run = dagbag.dags["eventindex_conditions"].test(run_conf={"files": [str(real)]})
    assert task_states(run)["sync"] == "success"
    menus = open_catalog(Settings.from_env()).menus()
    assert smk in menus and any(menus[smk].hlt_chains) and any(menus[smk].l1_items)
