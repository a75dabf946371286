"""The disk a crash loop of loads leaves behind, and what one `eventindex gc` gets back (issue 20's figure: after a
crash loop and one gc, the store within 10% of the live catalogue).

    python -m bench.gc [--runs 1 --events-per-run 20000] [--kills 20] [--seed 20] [--out bench/results/gc.json]

Makes a small world in a temporary EVENTINDEX_HOME and loads it with `eventindex load`; then runs `eventindex load`
again ``--kills`` times, each killed with SIGKILL at a random point (seeded) of the time a whole load takes, and
lets every fourth one finish (a reload replaces every dataset: replaced versions). Then `eventindex gc` as the daily
DAG runs it (min age 1 h: everything is younger, nothing goes) and `eventindex gc --min-age 0` (no load runs now).
Reports the store before and after beside the live catalogue (the files the manifest points at), and checks every
dataset's count against the simulated world.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eventindex.catalog import make_selection, open_catalog
from eventindex.producer import produce
from eventindex.settings import Settings
from eventindex.sim.world import WorldConfig, simulate

EVENTINDEX = [sys.executable, "-m", "eventindex.cli.main"]


def store_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file())


def live_bytes(root: Path, settings: Settings) -> int:
    live = {r["load_id"] for r in open_catalog(settings).datasets(include_obsolete=True)}
    return sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file() and p.name.partition(".")[0] in live)


def run(cmd: list[str], env: dict) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-500:]}")
    return done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--events-per-run", type=int, default=20_000)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--out", default="bench/results/gc.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ei-bench-gc-") as tmp:
        home = Path(tmp)
        env = {**os.environ, "EVENTINDEX_HOME": str(home)}
        env.pop("EVENTINDEX_METADATA_URL", None)
        settings = Settings.from_env(env)
        world = simulate(home / "world", WorldConfig(seed=2018, runs=args.runs, events_per_run=args.events_per_run,
                                                     lumi_blocks=50, mc_events=2000, workers=1))
        for d in world["datasets"]:
            produce(d["name"], [str(home / "world" / f["path"]) for f in d["files"]], str(home / "staging"),
                    d["task_id"], 1)
        run([*EVENTINDEX, "db", "upgrade"], env)
        load = [*EVENTINDEX, "load", str(home / "staging")]
        started = time.perf_counter()
        run(load, env)
        whole = time.perf_counter() - started
        root = Path(settings.catalog_dir)
        live_first = live_bytes(root, settings)
        rng = np.random.default_rng(args.seed)
        finished = 0
        for i in range(args.kills):
            proc = subprocess.Popen(load, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if i % 4 == 3:
                finished += proc.wait() == 0
                continue
            time.sleep(float(rng.uniform(0, whole)))
            proc.send_signal(signal.SIGKILL)
            finished += proc.wait() == 0
        before = store_bytes(root)
        daily = json.loads(run([*EVENTINDEX, "gc", "--json"], env))
        after_daily = store_bytes(root)
        started = time.perf_counter()
        report = json.loads(run([*EVENTINDEX, "gc", "--min-age", "0", "--json"], env))
        gc_seconds = time.perf_counter() - started
        after = store_bytes(root)
        live = live_bytes(root, settings)
        catalog = open_catalog(settings)
        wrong = {d["name"]: (catalog.count(make_selection(dataset=d["name"])), d["nevents"])
                 for d in world["datasets"] if catalog.count(make_selection(dataset=d["name"])) != d["nevents"]}
        if wrong:
            raise SystemExit(f"counts differ from the world after the crash loop: {wrong}")
        result = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average": round(os.getloadavg()[0], 2)},
            "datasets": len(world["datasets"]), "events": int(sum(d["nevents"] for d in world["datasets"])),
            "whole_load_s": round(whole, 2), "loads_started": args.kills, "loads_finished": finished,
            "live_bytes_first_load": live_first, "store_bytes_before_gc": before,
            "daily_gc_removed": len(daily["removed"]), "store_bytes_after_daily_gc": after_daily,
            "gc_min_age_0_removed": len(report["removed"]), "gc_bytes_freed": report["bytes_freed"],
            "gc_seconds": round(gc_seconds, 2), "store_bytes_after_gc": after, "live_bytes": live,
            "ratio_after_gc": round(after / live, 4), "ratio_before_gc": round(before / live, 2),
            "removed_by_reason": {r: sum(1 for x in report["removed"] if x["reason"] == r)
                                  for r in ("partial", "orphan", "replaced")},
        }
    Path(args.out).write_text(json.dumps(result, indent=1))
    mb = lambda n: f"{n / 1e6:,.1f} MB"  # noqa: E731
    text = "\n".join([
        f"Crash loop: `eventindex load` of {result['datasets']} datasets ({result['events']:,} events; a whole load "
        f"{result['whole_load_s']} s) started {args.kills} times, {args.kills - finished} killed with SIGKILL at "
        f"random points (seed {args.seed}), {finished} finished; every count equal to the world's afterwards. "
        f"Load average {result['machine']['load_average']} on {result['machine']['cpus']} cores.",
        "",
        "| | store | vs live catalogue |",
        "|---|---:|---:|",
        f"| after the crash loop | {mb(before)} | {result['ratio_before_gc']}x |",
        f"| after `eventindex gc` (min age 1 h: all is younger) | {mb(after_daily)} | {after_daily / live:.2f}x |",
        f"| after `eventindex gc --min-age 0` ({len(report['removed'])} files, {gc_seconds:.2f} s) | {mb(after)} | "
        f"{result['ratio_after_gc']}x |",
        f"| live catalogue | {mb(live)} | 1x |",
        "",
        f"Removed by reason: {result['removed_by_reason']}.",
    ])
    Path(args.out).with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
