"""The consistency DAG through Airflow: a consistent catalogue passes; each kind of inconsistency fails the run and
is recorded with the dataset it concerns."""

import pyarrow.parquet as pq
import sqlalchemy as sa

from eventindex.settings import Settings
from tests.conftest import dataset
from tests.dags.conftest import task_states



def _findings():
    with sa.create_engine(Settings.from_env().metadata_url).connect() as conn:
        return conn.execute(sa.text("select check_name, dataset, count from consistency_reports")).all()


def test_consistent_catalogue_passes(dagbag, loaded):
    run = dagbag.dags["eventindex_consistency"].test()
    assert str(run.state) == "success", task_states(run)
    assert [(c, n) for c, _, n in _findings()] == [("all", 0)]


def test_inconsistencies_fail_the_run_and_are_recorded(dagbag, loaded):
    world, _, staging, catalog, rucio = loaded
    raw = dataset(world, "RAW", stream="physics_MinBias")
    aod_name = raw["name"].replace("daq.RAW", "merge.AOD.f961_m1831")
    table = pq.read_table(next((staging / aod_name).glob("*.parquet")))
    catalog.load(aod_name, table.slice(5))  # 5 events lost in reconstruction
    gone = dataset(world, "RAW")
    rucio.remove_file(gone["scope"], gone["name"], gone["files"][0]["lfn"])
    run = dagbag.dags["eventindex_consistency"].test()
    assert str(run.state) == "failed"
    found = {(c, d): n for c, d, n in _findings()}
    assert found[("raw_vs_aod", aod_name)] == 5
    assert found[("extra_files", gone["name"])] == 1
