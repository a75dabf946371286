"""Datasets per hour through the cluster (CeleryExecutor) with one worker and with two, next to the LocalExecutor
(Airflow standalone, as `make up` runs it), measured in one run on the same stores.

    python -m bench.cluster [--datasets 16] [--out bench/results/cluster.json]

Setup (untimed): the native cluster of `make up-cluster` (eventindex_harness.cluster: PostgreSQL for Airflow and for
the metadata DB, Redis, SeaweedFS's S3, ActiveMQ, Airflow's parts, two Celery workers of concurrency 2); a simulated
world registered in the cluster's Rucio and produced into its S3 staging area.

Each side ingests ``--datasets`` datasets of its own (same sizes on every side: the world has identical runs) with
one eventindex_ingest run each, triggered over REST at once; the clock runs from the first trigger until the last run
has ended. The ingestion pool (eventindex_grid, 4 slots) and parallelism 4 are the same on every side:
- celery_1_worker: worker-2 stopped, worker-1 runs everything (2 task slots);
- celery_2_workers: both workers (4 task slots);
- local_executor: the cluster's Airflow stopped; `scripts/airflow.sh up` (standalone, LocalExecutor, SQLite Airflow DB,
  parallelism 4) on the same metadata DB, S3 staging and work area.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eventindex.airflow_api import AirflowAPI
from eventindex.ddm import LocalRucio, register_world
from eventindex.producer import produce
from eventindex.settings import Settings
from eventindex.sim.world import WorldConfig, simulate
from eventindex_harness.cluster import REPO, Cluster
from eventindex_harness.polling import wait_for
from eventindex_harness.ports import free_port

SIDES = ("celery_1_worker", "celery_2_workers", "local_executor")


def ingest_all(api: AirflowAPI, names: list[str], tag: str) -> dict:
    """Trigger one run per dataset over REST, wait for all; seconds, states and the hosts that ran tasks."""
    started = time.perf_counter()
    runs = {}
    for i, name in enumerate(names):
        run_id = f"bench_{tag}_{i:03d}_{time.time_ns()}"
        api._call("POST", "/api/v2/dags/eventindex_ingest/dagRuns",
                  {"dag_run_id": run_id, "logical_date": None,
                   "conf": {"dataset": name, "source": "manual", "obsolete_older": False}})
        runs[name] = run_id

    def ended():
        states = {n: api._call("GET", f"/api/v2/dags/eventindex_ingest/dagRuns/{r}")["state"] for n, r in runs.items()}
        return states if all(s in ("success", "failed") for s in states.values()) else None

    states = wait_for(ended, 3600, 1.0, f"{len(runs)} ingestion runs")
    seconds = time.perf_counter() - started
    hosts = {}
    for r in runs.values():
        for ti in api._call("GET", f"/api/v2/dags/eventindex_ingest/dagRuns/{r}/taskInstances")["task_instances"]:
            hosts[ti.get("hostname") or "?"] = hosts.get(ti.get("hostname") or "?", 0) + 1
    ok = sum(s == "success" for s in states.values())
    return {"datasets": len(names), "succeeded": ok, "seconds": round(seconds, 1),
            "datasets_per_hour": round(ok / seconds * 3600), "tasks_by_host": hosts}


def _api_when_ready(url: str, password: str) -> AirflowAPI:
    api = AirflowAPI(url, "admin", password)

    def parsed():
        try:
            return not api._call("GET", "/api/v2/dags/eventindex_ingest")["is_paused"]
        except Exception:  # noqa: BLE001 - not parsed yet
            return False
    wait_for(parsed, 300, 2.0, "the ingestion DAG to be parsed")
    return api


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=int, default=16, help="datasets per side (default 16)")
    p.add_argument("--out", default="bench/results/cluster.json")
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="ei-bench-cluster-"))
    base.chmod(0o711)  # PostgreSQL runs as its own user and must reach its folders below
    cluster = Cluster(base / "cluster", workers=2)
    results: dict[str, dict] = {}
    try:
        t0 = time.perf_counter()
        cluster.up()
        print(f"cluster up in {time.perf_counter() - t0:.0f} s ({base})", flush=True)
        env = cluster.eventindex_env()
        os.environ.update(cluster.s3.env)
        settings = Settings.from_env(env)
        runs_needed = -(-3 * args.datasets // 8) + 1  # the world has 8 data datasets per run
        world = simulate(base / "world", WorldConfig(seed=5, runs=runs_needed, events_per_run=20_000,
                                                     lumi_blocks=60, mc_events=300, mc_file_events=300, workers=1))
        settings.home.mkdir(parents=True, exist_ok=True)
        register_world(LocalRucio(settings.local_rucio_url), world, base / "world")
        data = [d for d in world["datasets"] if "dsid" not in d]
        for d in data:
            produce(d["name"], [str(base / "world" / f["path"]) for f in d["files"]], settings.staging,
                    d["task_id"], 1)
        # the same mix of formats on every side: deal the datasets out in turn
        names = {side: [d["name"] for d in data[i::3]][:args.datasets] for i, side in enumerate(SIDES)}
        events = sum(d["nevents"] for d in data[0::3][:args.datasets])
        print(f"world: {len(data)} datasets produced into {settings.staging.split('?')[0]}; "
              f"{args.datasets} per side (~{events:,} events)", flush=True)

        api = _api_when_ready(cluster.url, cluster.secrets["password"])
        cluster.stop_worker(2)
        results["celery_1_worker"] = ingest_all(api, names["celery_1_worker"], "w1")
        print("celery, 1 worker:", results["celery_1_worker"], flush=True)
        cluster.start_worker(2)
        results["celery_2_workers"] = ingest_all(api, names["celery_2_workers"], "w2")
        print("celery, 2 workers:", results["celery_2_workers"], flush=True)

        cluster.stop_airflow()
        local_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        local_env.update({**env, "AIRFLOW_HOME": str(base / "standalone"), "AIRFLOW_PORT": str(free_port()),
                          "AIRFLOW__CORE__PARALLELISM": "4"})
        up = subprocess.run([str(REPO / "scripts/airflow.sh"), "up"], env=local_env, capture_output=True, text=True,
                            timeout=300)
        if up.returncode != 0:
            raise RuntimeError(f"standalone did not start: {up.stdout[-2000:]}{up.stderr[-2000:]}")
        try:
            password = json.loads((base / "standalone" / "simple_auth_manager_passwords.json.generated").read_text())
            local = _api_when_ready(f"http://127.0.0.1:{local_env['AIRFLOW_PORT']}", password["admin"])
            results["local_executor"] = ingest_all(local, names["local_executor"], "local")
            print("local executor:", results["local_executor"], flush=True)
        finally:
            subprocess.run([str(REPO / "scripts/airflow.sh"), "down"], env=local_env, capture_output=True,
                           timeout=120)
    finally:
        cluster.down()

    print(f"\n{'side':20s} {'datasets':>8s} {'ok':>4s} {'seconds':>8s} {'datasets/hour':>14s}  tasks by host")
    for side in SIDES:
        r = results.get(side)
        if r:
            print(f"{side:20s} {r['datasets']:8d} {r['succeeded']:4d} {r['seconds']:8.1f} "
                  f"{r['datasets_per_hour']:14,d}  {r['tasks_by_host']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"datasets_per_side": args.datasets, "cpus": os.cpu_count(),
                                          "results": results}, indent=1))
    print(f"written {args.out}")
    return 0 if all(results.get(s, {}).get("succeeded") == args.datasets for s in SIDES) else 1


if __name__ == "__main__":
    sys.exit(main())
