"""`make demo`'s ingestion step: every produced dataset of the demo world through the eventindex_ingest DAG, run by
Airflow itself (``dag.test()``, no scheduler needed), on the embedded defaults. Prints one line per dataset.

    python -m eventindex_airflow.demo [--staging DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--staging")
    ap.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    args = ap.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
