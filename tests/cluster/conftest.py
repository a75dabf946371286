"""The cluster of `make up-cluster` (eventindex_harness.cluster: PostgreSQL x2, Redis, SeaweedFS, Airflow's api-server,
scheduler, dag-processor, triggerer and two Celery workers), started once for tests/cluster and stopped after it; the
session's ActiveMQ is its broker. A world is registered in the cluster's Rucio and produced into its S3 staging area.

Skip these tests locally with ``-m "not cluster"``; `make test` and CI run them."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventindex.airflow_api import AirflowAPI
from eventindex.catalog import open_catalog
from eventindex.ddm import LocalRucio, register_world
from eventindex.metadata import make_engine
from eventindex.producer import produce
from eventindex.settings import Settings
from eventindex_harness.cluster import Cluster
from eventindex_harness.polling import wait_for


@dataclass
class Site:
    cluster: Cluster
    api: AirflowAPI
    env: dict[str, str]
    settings: Settings
    world: dict
    world_dir: object

    def datasets(self, datatype: str | None = None) -> list[dict]:
        return [d for d in self.world["datasets"] if datatype is None or d["datatype"] == datatype]

    def ingest(self, names: list[str], tag: str) -> dict[str, str]:
        """One eventindex_ingest run per dataset, triggered over REST as an operator would; run ids by dataset."""
        runs = {}
        for i, name in enumerate(names):
            run_id = f"cluster_{tag}_{i:03d}_{time.time_ns()}"
            self.api._call("POST", "/api/v2/dags/eventindex_ingest/dagRuns",
                           {"dag_run_id": run_id, "logical_date": None,
                            "conf": {"dataset": name, "source": "manual", "obsolete_older": False}})
            runs[name] = run_id
        return runs

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_runs(self, runs: dict[str, str], dag_id: str = "eventindex_ingest", timeout: float = 600) -> dict:
        def done():
            states = {name: self.run_state(dag_id, run_id) for name, run_id in runs.items()}
            return states if all(s in ("success", "failed") for s in states.values()) else None
        return wait_for(done, timeout, 2.0, f"{len(runs)} {dag_id} runs to end")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Every try of one task, from its history and its current state: [{try_number, hostname, state}, ...]."""
        history = self.api._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        return sorted(history["task_instances"], key=lambda t: t["try_number"])

    def loads(self, name: str) -> int:
        """How many times a dataset was loaded into the catalogue (load history rows that loaded something)."""
        import sqlalchemy as sa

        from eventindex import metadata as md

        engine = make_engine(self.settings.metadata_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(md.load_history).where(
                (md.load_history.c.dataset == name) & md.load_history.c.action.in_(("load", "reload")))).all()
        engine.dispose()
        return len(rows)

    def catalog(self):
        return open_catalog(self.settings)


@pytest.fixture(scope="session")
def site(activemq):
    from eventindex.sim.world import WorldConfig, simulate

    # not under pytest's tmp folders: those are 0700 and PostgreSQL runs as its own user
    base = Path(tempfile.mkdtemp(prefix="ei-cluster-"))
    cluster = Cluster(base, workers=2, stomp_url=activemq.url("eventindex.cluster"))
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                            "AWS_EC2_METADATA_DISABLED")}
    try:
        cluster.up()
        env = cluster.eventindex_env()
        os.environ.update(cluster.s3.env)  # the producer and the checks below write and read the cluster's S3
        settings = Settings.from_env(env)
        world_dir = base / "world"
        world = simulate(world_dir, WorldConfig(seed=23, runs=4, events_per_run=4000, lumi_blocks=30,
                                                raw_file_events=900, reproc_file_events=1500, mc_events=600,
                                                mc_file_events=300, workers=1))
        settings.home.mkdir(parents=True, exist_ok=True)
        register_world(LocalRucio(settings.local_rucio_url), world, world_dir)
        for d in world["datasets"]:
            produce(d["name"], [str(world_dir / f["path"]) for f in d["files"]], settings.staging, d["task_id"], 1)
        api = AirflowAPI(cluster.url, "admin", cluster.secrets["password"])
        wait_for(lambda: _dag_parsed(api, "eventindex_ingest") and _dag_parsed(api, "eventindex_pick"), 180, 2.0,
                 "the dag-processor to parse the ingestion and picking DAGs")
        yield Site(cluster, api, env, settings, world, world_dir)
    finally:
        cluster.down()
        shutil.rmtree(base, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _dag_parsed(api: AirflowAPI, dag_id: str) -> bool:
    try:
        return not api._call("GET", f"/api/v2/dags/{dag_id}")["is_paused"]
    except Exception:  # noqa: BLE001 - not there yet
        return False
