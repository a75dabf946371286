"""`make demo`: the main job end to end on the embedded defaults, with Airflow itself running the DAGs
(``dag.test()``: no scheduler or server needed). Steps 1-2 (world, producer) and 4 (queries) are the library's
(:mod:`eventindex.demo`); step 3 ingests every staged dataset through ``eventindex_ingest`` and syncs the conditions
(trigger menus, run periods) through ``eventindex_conditions``, step 5 picks events through ``eventindex_pick``,
and step 6 (a histogram and a skim) is the library's again.

    python -m eventindex_airflow.demo [--fresh] [--seed S --runs N --events-per-run M --lumi-blocks L --mc-events K]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _airflow_environment() -> None:
    """Airflow's own configuration for a demo run inside the project (set before Airflow is imported)."""
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "airflow_home"))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    os.umask(0o077)  # Airflow's home and DB (picks' event lists, users' requests), and ours: the owner's alone


def _dags():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    warnings.filterwarnings("ignore", message="Using `httpx` with")  # fastapi's test client, used by dag.test()
    logging.disable(logging.WARNING)
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    db.initdb() if not (home / "airflow.db").exists() else db.upgradedb()
    return DagBag(dag_folder=str(ROOT / "dags")).dags


def ingest(console, dag, settings) -> bool:
    """Step 3: one eventindex_ingest run per staged dataset, a line each."""
    from eventindex.catalog.loader import find_staged

    console.print(f"3. ingesting every dataset through the eventindex_ingest DAG (Airflow dag.test), into the "
                  f"catalogue {settings.catalog_dir}")
    _, staged = find_staged(settings.staging)
    ok, started = 0, time.perf_counter()
    for i, s in enumerate(staged, start=1):
        t = time.perf_counter()
        run = dag.test(run_conf={"dataset": s.name, "staging_uri": settings.staging, "source": "manual",
                                 "obsolete_older": False})
        ok += str(run.state) == "success"
        jobs = len(s.summaries)
        console.print(f"   [{i}/{len(staged)}] {s.name}: {run.state} ({time.perf_counter() - t:.1f} s"
                      f"{f'; {jobs} jobs, complete, each part checked' if jobs > 1 else ''})", highlight=False)
    seconds = time.perf_counter() - started
    console.print(f"   {ok}/{len(staged)} ingestion runs succeeded in {seconds:.1f} s "
                  f"({len(staged) / seconds * 3600:,.0f} datasets/hour through fetch -> validate -> load -> publish)")
    return ok == len(staged)


def conditions(console, dag, settings) -> bool:
    """Trigger menus and run periods through ``eventindex_conditions``, before any data is queried by trigger."""
    from eventindex.demo import conditions_held

    console.print("   conditions: trigger menus and run periods through the eventindex_conditions DAG")
    started = time.perf_counter()
    run = dag.test()
    if str(run.state) != "success":
        console.print(f"   eventindex_conditions {run.run_id}: {run.state}", highlight=False)
        return False
    console.print(conditions_held(settings, time.perf_counter() - started), highlight=False)
    return True


def pick(console, dag, settings, request) -> bool:
    """Step 5: the request as one eventindex_pick run; its summary (or the earlier one, for a rerun)."""
    from eventindex.metadata import make_engine
    from eventindex.picking import output_did, requests

    started = time.perf_counter()
    run = dag.test(run_conf=request.to_params())
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    console.print(f"   eventindex_pick {run.run_id}: {run.state} (tasks: "
                  f"{', '.join(f'{k} {v}' for k, v in sorted(states.items()))})", highlight=False)
    did = ":".join(output_did(request.output))
    done = [r for r in requests(make_engine(settings.metadata_url), limit=1000)
            if r["output_dataset"] == did and r["state"] == "done"]
    if str(run.state) != "success" or not done:
        return False
    import json

    summary = {**json.loads(done[0]["summary"]), "request_id": done[0]["request_id"],
               "rerun": done[0]["request_id"] != run.run_id}
    from eventindex.demo import print_pick

    print_pick(console, summary, time.perf_counter() - started)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eventindex_airflow.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2018)
    for name in ("runs", "events-per-run", "lumi-blocks", "mc-events"):
        ap.add_argument(f"--{name}", type=int)
    ap.add_argument("--fresh", action="store_true", help="regenerate the world even if one exists")
    args = ap.parse_args(argv)
    _airflow_environment()
    from rich.console import Console

    from eventindex import demo
    from eventindex.errors import EventIndexError
    from eventindex.settings import Settings

    console, settings = Console(), Settings.from_env()
    try:
        config = demo.world_config(args.seed, args.runs, args.events_per_run, args.lumi_blocks, args.mc_events)
        world = demo.prepare(console, settings, config, fresh=args.fresh)
        dags = _dags()
        if not ingest(console, dags["eventindex_ingest"], settings):
            console.print("[red]some ingestion runs failed[/red]; the Airflow logs are in "
                          f"{os.environ['AIRFLOW_HOME']}")
            return 1
        if not conditions(console, dags["eventindex_conditions"], settings):
            console.print(f"[red]the conditions run failed[/red]; the Airflow logs are in {os.environ['AIRFLOW_HOME']}")
            return 1
        wanted = demo.queries(console, settings, world)
        if not pick(console, dags["eventindex_pick"], settings, wanted.request()):
            console.print(f"[red]the picking run failed[/red]; the Airflow logs are in {os.environ['AIRFLOW_HOME']}")
            return 1
        console.print(f"   try: .venv/bin/eventindex pick --dry-run --events {wanted.events_file} --type AOD | picks")
        demo.tag_services(console, settings)
    except EventIndexError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 1
    console.print("   the pages: make up, then http://127.0.0.1:8080/eventindex/ui/operations (queries, picking)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
