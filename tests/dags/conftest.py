"""DAG tests run through Airflow itself (``dag.test()``) on a private AIRFLOW_HOME with its own SQLite DB."""

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_HOME = tempfile.mkdtemp(prefix="ei-airflow-")
os.environ.update({
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),  # the listener that writes a picking run's note
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__PARALLELISM": "4",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
})


@pytest.fixture(scope="session")
def airflow_db():
    from airflow.utils import db

    db.resetdb()
    return _HOME


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    return bag


@pytest.fixture(autouse=True)
def _metadata_db(metadata_home):
    """What `make up` does before Airflow starts: the metadata DB of the test's EVENTINDEX_HOME made at the schema
    head (`eventindex db upgrade`); no task, sensor or listener migrates it."""


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.fixture
def loaded(staged_world, eventindex_home):
    """The small world registered in the local data catalogue and loaded into the catalogue under EVENTINDEX_HOME:
    (world, world folder, staging folder, catalogue, local Rucio)."""
    from eventindex.catalog import open_catalog
    from eventindex.catalog.loader import load_staged
    from eventindex.ddm import LocalRucio, register_world
    from eventindex.settings import Settings

    world, out, staging = staged_world
    eventindex_home.mkdir(parents=True, exist_ok=True)
    rucio = LocalRucio(f"sqlite:///{eventindex_home / 'rucio.sqlite'}")
    register_world(rucio, world, out)
    catalog = open_catalog(Settings.from_env())
    load_staged(catalog, str(staging))
    return world, out, staging, catalog, rucio
