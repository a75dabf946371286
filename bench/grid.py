"""A grid dataset written by a production task of many jobs, announced over STOMP: seconds from the last
announcement (the broker has it) to the dataset loaded in the catalogue, and where they go, beside a peer measured
in the same run.

    python -m bench.grid [--jobs 200] [--events 100000] [--repeat 5] [--out bench/results/grid.json]

Setup (untimed): a simulated world whose RAW physics_Main dataset has 2 files per job, registered (closed) in the
local Rucio, produced as ``--jobs`` producer jobs of one task (``njobs`` set) into a staging folder; a real ActiveMQ.

Ours: the jobs' announcements are sent (persistent; the last one with a receipt) and the clock starts when the
broker has the last one. Then what the STOMP DAG and the ingestion DAG do, in-process, without Airflow's scheduling:
``drain_batches`` + ``record_many`` -> ``progress.claim_runs`` -> ``ingest.wait_complete`` (must say complete) ->
``fetch`` -> ``validate`` (against ``announcements.for_dataset`` and Rucio) -> ``load`` (EmbeddedCatalog) ->
``publish``. Peer: the same files produced as ONE job (the ideal case today), one announcement, the same steps.
Each repetition starts from an empty metadata DB and catalogue, the sides alternate; figures are medians. One untimed warm-up run
(another dataset) first, so that neither side pays for a cold start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import stomp

STEPS = ("drain", "claim", "wait_complete", "fetch", "validate", "load", "publish")
AIRFLOW_NOTE = (
    "In production Airflow adds, on top of these figures (not measured here): the STOMP DAG runs every minute "
    "(cron `* * * * *`, max one run at a time), so the last announcement waits up to 60 s (30 s on average) to be "
    "drained, and its drain task waits `idle_s` = 2 s without a message before it stops; `start_ingestion` then "
    "triggers an `eventindex_ingest` run, whose `wait_complete` sensor (reschedule mode) pokes every 30 s - with a "
    "grid task the run already exists from the first announcements, so the last one waits up to 30 s for the next "
    "poke; then each of fetch, validate, load and publish is a task the scheduler queues and a worker starts (about "
    "1-5 s each with the LocalExecutor or Celery). Expect about 1 min (up to ~2 min) more per dataset in production.")


def send_all(host: str, port: int, destination: str, bodies: list[str]) -> None:
    """Send persistently; the last one with a receipt: the broker handles one connection's frames in order, so when
    the receipt arrives it has them all."""
    got = threading.Event()

    class L(stomp.ConnectionListener):
        def on_receipt(self, frame):
            got.set()

    conn = stomp.Connection12([(host, port)])
    conn.set_listener("r", L())
    conn.connect(wait=True)
    for i, body in enumerate(bodies):
        headers = {"persistent": "true"}
        if i == len(bodies) - 1:
            headers["receipt"] = "last"
        conn.send(destination, body, content_type="application/json", headers=headers)
    if not got.wait(60):
        raise SystemExit("no receipt from the broker for the last announcement")
    conn.disconnect()


def pipeline(work: Path, tag: str, broker, ddm, dataset: str, staging: Path, messages: list[dict],
             expect: dict) -> dict:
    """Announce ``messages`` and run the STOMP and ingestion steps on a fresh metadata DB and catalogue: seconds
    per step (from the moment the broker has the last announcement) and counts."""
    from eventindex import announcements, ingest, progress
    from eventindex.catalog.embedded import EmbeddedCatalog
    from eventindex.messaging import drain_batches
    from eventindex.metadata import upgrade
    from eventindex.settings import parse_stomp_url
    from eventindex.workarea import WorkArea

    catalog = EmbeddedCatalog(work / tag / "catalog", f"sqlite:///{work / tag / 'meta.sqlite'}")
    engine = catalog.engine
    upgrade(engine)
    target = parse_stomp_url(broker.url(f"eventindex.grid.{tag}"))
    send_all(broker.host, broker.port, target.destination, [json.dumps(m) for m in messages])
    seconds, t = {}, time.perf_counter()
    start = t

    def lap(step: str) -> None:
        nonlocal t
        now = time.perf_counter()
        seconds[step], t = now - t, now

    counts = drain_batches(target, lambda msgs: announcements.record_many(engine, msgs),
                           announcements.parse_announcement, max_messages=len(messages), idle_s=5)
    lap("drain")
    runs = progress.claim_runs(engine)
    lap("claim")
    seen = ingest.wait_complete(engine, ddm, dataset, str(staging))
    lap("wait_complete")
    fetched = ingest.fetch(dataset, str(staging), WorkArea(str(work / tag / "work"), f"stomp__{dataset}__g1"))
    lap("fetch")
    valid = ingest.validate(fetched, ddm, announcements.for_dataset(engine, dataset))
    lap("validate")
    loaded = ingest.load(catalog, fetched)
    lap("load")
    published = ingest.publish(catalog, dataset)
    lap("publish")
    total = time.perf_counter() - start
    problems = []
    if counts["handled"] != len(messages):
        problems.append(f"drained {counts['handled']} of {len(messages)}")
    if runs != [{"dataset": dataset, "generation": 1}]:
        problems.append(f"claim_runs said {runs}")
    if not seen.complete:
        problems.append(f"wait_complete said: {seen.detail}")
    if loaded is None or published["nevents"] != expect["nevents"] or published["nfiles"] != expect["nfiles"] \
            or valid["nevents"] != expect["nevents"]:
        problems.append(f"loaded {published}, expected {expect}")
    if problems:
        raise SystemExit(f"{tag}: " + "; ".join(problems))
    return {"seconds": seconds, "total": total, "batches": counts["batches"], "index_files": len(fetched.parquet)}


def summarize(runs: list[dict], announced: int) -> dict:
    return {"announcements": announced, "index_files": runs[0]["index_files"],
            "drain_batches": [r["batches"] for r in runs],
            "seconds": round(statistics.median(r["total"] for r in runs), 3),
            "seconds_all": [round(r["total"], 3) for r in runs],
            "steps": {s: round(statistics.median(r["seconds"][s] for r in runs), 3) for s in STEPS}}


def produce_jobs(dataset: dict, world_dir: Path, staging: Path, task_id: int, njobs: int) -> list:
    from eventindex.producer import produce

    paths = [str(world_dir / f["path"]) for f in dataset["files"]]
    groups = [list(g) for g in np.array_split(np.array(paths, dtype=object), njobs)]
    return [produce(dataset["name"], g, str(staging), task_id, job, njobs=njobs)
            for job, g in enumerate(groups, start=1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=200, help="producer jobs of the task (the dataset has 2 files each)")
    ap.add_argument("--events", type=int, default=100_000, help="events in the simulated run")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions of each side (medians reported)")
    ap.add_argument("--out", default="bench/results/grid.json")
    args = ap.parse_args()
    from eventindex.ddm import LocalRucio, register_world
    from eventindex.producer import announcement
    from eventindex.sim.world import WorldConfig, simulate
    from eventindex_harness.activemq import ActiveMQ

    work = Path(tempfile.mkdtemp(prefix="ei-bench-grid-"))
    broker = None
    try:
        t = time.perf_counter()
        world_dir = work / "world"
        # one file per lumi block (raw_file_events=1 cuts at every lumi-block change): 2 files per job. Most of the
        # setup (~70 s) is simulate() shipping the whole run's events to its workers with every file it writes
        world = simulate(world_dir, WorldConfig(runs=1, events_per_run=args.events, lumi_blocks=2 * args.jobs,
                                                raw_file_events=1, aod_merge=10_000, reproc_file_events=10**9,
                                                mc_events=200, mc_file_events=200))
        ddm = LocalRucio(f"sqlite:///{work / 'rucio.sqlite'}")
        register_world(ddm, world, world_dir)
        by_name = {d["name"]: d for d in world["datasets"]}
        grid = next(d for d in world["datasets"] if d["datatype"] == "RAW" and d.get("stream") == "physics_Main")
        warm = next(d for d in world["datasets"] if d["datatype"] == "RAW" and d.get("stream") == "express_express")
        if len(grid["files"]) < args.jobs:
            raise SystemExit(f"{grid['name']} has {len(grid['files'])} files, fewer than {args.jobs} jobs")
        task = grid["task_id"]
        ours = produce_jobs(grid, world_dir, work / "staging-ours", task, args.jobs)
        peer = produce_jobs(grid, world_dir, work / "staging-peer", task, 1)
        warmup = produce_jobs(warm, world_dir, work / "staging-warm", warm["task_id"], 4)
        broker = ActiveMQ(work / "activemq")
        broker.start()
        setup_s = time.perf_counter() - t
        expect = {"nevents": grid["nevents"], "nfiles": len(grid["files"])}
        pipeline(work, "warmup", broker, ddm, warm["name"], work / "staging-warm", [announcement(r) for r in warmup],
                 {"nevents": by_name[warm["name"]]["nevents"], "nfiles": len(warm["files"])})
        sides = {"ours": ("staging-ours", [announcement(r) for r in ours]),
                 "peer_one_job": ("staging-peer", [announcement(r) for r in peer])}
        runs = {side: [] for side in sides}
        for i in range(args.repeat):  # interleaved, so that both sides see the same machine
            for side, (folder, messages) in sides.items():
                runs[side].append(pipeline(work, f"{side}{i}", broker, ddm, grid["name"], work / folder, messages,
                                           expect))
        result = {"dataset": grid["name"], "files": len(grid["files"]), "events": grid["nevents"],
                  "repeat": args.repeat, "setup_seconds_untimed": round(setup_s, 1),
                  **{side: summarize(runs[side], len(sides[side][1])) for side in sides},
                  "airflow_in_production": AIRFLOW_NOTE}
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    o, p = result["ours"], result["peer_one_job"]
    rows = [f"{result['dataset']}: {result['files']} files, {result['events']:,} events; median of "
            f"{result['repeat']} runs each.", "",
            f"| seconds after the last announcement | ours ({o['announcements']} jobs) | peer (1 job) | ours/peer |",
            "|---|---:|---:|---:|"]
    for s in STEPS:
        a, b = o["steps"][s], p["steps"][s]
        rows.append(f"| {s} | {a:.3f} | {b:.3f} | {a / b:.1f}x |" if b else f"| {s} | {a:.3f} | {b:.3f} | - |")
    rows.append(f"| **loaded and published** | **{o['seconds']:.2f}** | **{p['seconds']:.2f}** | "
                f"**{o['seconds'] / p['seconds']:.1f}x** |")
    md = "\n".join(rows + ["", AIRFLOW_NOTE])
    out.with_suffix(".md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
