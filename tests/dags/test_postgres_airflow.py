"""One run with PostgreSQL behind everything: Airflow's own metadata DB and the EventIndex metadata DB on a real
PostgreSQL 15, the ingestion DAG run by the `airflow dags test` command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eventindex.catalog import make_selection, open_catalog
from eventindex.ddm import LocalRucio, register_world
from eventindex.settings import Settings
from tests.conftest import dataset

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_ingestion_with_airflow_and_eventindex_metadata_on_postgresql(postgres, staged_world, eventindex_home,
                                                                       tmp_path, monkeypatch):
    world, out, staging = staged_world
    eventindex_home.mkdir(parents=True, exist_ok=True)
    register_world(LocalRucio(f"sqlite:///{eventindex_home / 'rucio.sqlite'}"), world, out)
    airflow_db = postgres.create_database("airflow_pg_test")
    meta_db = postgres.create_database("eventindex_pg_test")
    subprocess.run([sys.executable, "-m", "eventindex.cli", "db", "upgrade"], env={**os.environ,
                   "EVENTINDEX_METADATA_URL": meta_db}, check=True, capture_output=True, timeout=120)
    monkeypatch.setenv("EVENTINDEX_METADATA_URL", meta_db)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "EVENTINDEX_METADATA_URL": meta_db, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    d = dataset(world, "AOD", tag="f961_m1831")
    done = subprocess.run([airflow, "dags", "test", "eventindex_ingest", "-c",
                           json.dumps({"dataset": d["name"], "staging_uri": str(staging)})],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    import sqlalchemy as sa

    with sa.create_engine(airflow_db).connect() as conn:
        states = dict(conn.execute(sa.text("select task_id, state from task_instance where dag_id = 'eventindex_ingest'"))
                      .all())
    assert states == {"wait_complete": "success", "fetch": "success", "validate": "success", "load": "success",
                      "publish": "success"}
    assert open_catalog(Settings.from_env()).count(make_selection(dataset=d["name"])) == d["nevents"]
