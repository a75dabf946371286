"""`make demo`'s Airflow steps, run by Airflow itself (``dag.test()``, no scheduler needed), on the embedded defaults:
every produced dataset of the demo world through the eventindex_ingest DAG (one line per dataset), or one picking
request through eventindex_pick (its summary).

    python -m eventindex_airflow.demo [--staging DIR]
    python -m eventindex_airflow.demo --pick EVENTS_FILE --output NAME [--version TAG]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--staging")
    ap.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    ap.add_argument("--pick", help="run eventindex_pick on this file of 'run event' lines instead")
    ap.add_argument("--output", help="with --pick: the output dataset")
    ap.add_argument("--version", help="with --pick: the AMI tag")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="Using `httpx` with")  # fastapi's test client, used by dag.test()
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "airflow_home"))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    from eventindex.catalog.loader import find_staged
    from eventindex.settings import Settings

    logging.disable(logging.WARNING)
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    db.initdb() if not (Path(os.environ["AIRFLOW_HOME"]) / "airflow.db").exists() else db.upgradedb()
    settings = Settings.from_env()
    if args.pick:
        return _pick(DagBag(dag_folder=str(ROOT / "dags")).dags["eventindex_pick"], settings, args)
    staging = args.staging or settings.staging
    _, staged = find_staged(staging)
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["eventindex_ingest"]
    results, started = [], time.perf_counter()
    for i, s in enumerate(staged, start=1):
        t = time.perf_counter()
        run = dag.test(run_conf={"dataset": s.name, "staging_uri": staging, "source": "manual",
                                 "announcement": None, "obsolete_older": False})
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        results.append({"dataset": s.name, "state": str(run.state), "tasks": states,
                        "seconds": round(time.perf_counter() - t, 2)})
        print(f"   [{i}/{len(staged)}] {s.name}: {run.state} ({results[-1]['seconds']:.1f} s)", flush=True)
    seconds = time.perf_counter() - started
    ok = sum(r["state"] == "success" for r in results)
    print(f"   {ok}/{len(results)} ingestion runs succeeded in {seconds:.1f} s "
          f"({len(results) / seconds * 3600:,.0f} datasets/hour through fetch -> validate -> load -> publish)")
    if args.json:
        print(json.dumps({"runs": results, "seconds": seconds}))
    return 0 if ok == len(results) else 1


def _pick(dag, settings, args) -> int:
    from eventindex import picking
    from eventindex.metadata import make_engine

    started = time.perf_counter()
    run = dag.test(run_conf={"events": Path(args.pick).read_text(), "datatype": "AOD", "project": None,
                             "stream": "physics_Main", "version": args.version, "output": args.output,
                             "max_events": None, "backend": "local", "files_per_job": 10, "job_timeout_minutes": 360})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print(f"   eventindex_pick {run.run_id}: {run.state} in {time.perf_counter() - started:.1f} s "
          f"(tasks: {', '.join(f'{k} {v}' for k, v in sorted(states.items()))})")
    did = f"{'.'.join(args.output.split('.')[:2])}:{args.output}"
    done = [r for r in picking.requests(make_engine(settings.metadata_url)) if r["output_dataset"] == did
            and r["state"] == "done"]
    if str(run.state) != "success" or not done:
        return 1
    summary = json.loads(done[-1]["summary"])
    if done[-1]["request_id"] != run.run_id:
        print(f"   already done by {done[-1]['request_id']}: nothing changed (a rerun of a finished request)")
    reasons = {}
    for m in summary["missing_events"]:
        reasons[m["reason"]] = reasons.get(m["reason"], 0) + 1
    print(f"   found {summary['found']:,}, missing {summary['missing']:,} "
          f"({', '.join(f'{k}: {v}' for k, v in reasons.items())}), duplicates {summary['duplicates']} -> "
          f"{summary['output_dataset']} ({len(summary['files'])} file{'s' if len(summary['files']) != 1 else ''}, every found event verified once)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
