"""Producer and world-generation benchmark.

    python -m bench.producer [--runs 3 --events-per-run 70000] [--out bench/results/producer.json]

Builds the mini-ATLAS world (timed: the demo world must be made in under a minute), then indexes every dataset
on ONE core (CPU affinity and Arrow thread pools set to 1) with our producer and with the obvious peer written
with the same libraries (uproot -> awkward -> ``ak.to_parquet``, all index branches), and prints both side by side.
Target: >= 300k events/s for the producer on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import awkward as ak
import pyarrow as pa
import uproot

from eventindex.producer import produce
from eventindex.rootfile import INDEX_BRANCHES, MC_BRANCHES
from eventindex.sim.world import WorldConfig, simulate


def one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def peer(world: dict, world_dir: Path, staging: Path) -> float:
    """uproot -> awkward -> Parquet: the same branches, without our schema work."""
    start = time.perf_counter()
    for ds in world["datasets"]:
        branches = list(INDEX_BRANCHES) + (list(MC_BRANCHES) if "dsid" in ds else [])
        parts = []
        for f in ds["files"]:
            with uproot.open(world_dir / f["path"]) as h:
                tree = h["events"]
                names = branches + [b for b in tree.keys() if b.startswith("prov_")]
                parts.append(tree.arrays(names, library="ak"))
        out = staging / ds["name"]
        out.mkdir(parents=True, exist_ok=True)
        ak.to_parquet(ak.concatenate(parts), out / "peer.parquet", compression="zstd")
    return time.perf_counter() - start


def ours(world: dict, world_dir: Path, staging: Path) -> float:
    start = time.perf_counter()
    for ds in world["datasets"]:
        produce(ds["name"], [str(world_dir / f["path"]) for f in ds["files"]], str(staging), ds["task_id"], 1)
    return time.perf_counter() - start


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events-per-run", type=int, default=70_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of N for each side")
    ap.add_argument("--out", default="bench/results/producer.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ei-bench-"))
    try:
        config = WorldConfig(runs=args.runs, events_per_run=args.events_per_run)
        t = time.perf_counter()
        world = simulate(work / "world", config)
        world_s = time.perf_counter() - t
        one_core()
        n = world["nevents"]
        best = {"ours": float("inf"), "peer": float("inf")}
        for i in range(args.repeat):
            for name, fn in (("ours", ours), ("peer", peer)):
                staging = work / f"staging-{name}-{i}"
                best[name] = min(best[name], fn(world, work / "world", staging))
        sizes = {name: size(work / f"staging-{name}-0") for name in best}
        result = {
            "events": n, "files": world["nfiles"], "datasets": len(world["datasets"]),
            "world_generation_s": round(world_s, 2), "world_events_per_s": round(n / world_s),
            "ours": {"events_per_s_one_core": round(n / best["ours"]), "seconds": round(best["ours"], 3),
                     "bytes_per_event": round(sizes["ours"] / n, 1)},
            "peer": {"name": "uproot -> awkward -> ak.to_parquet", "events_per_s_one_core": round(n / best["peer"]),
                     "seconds": round(best["peer"], 3), "bytes_per_event": round(sizes["peer"] / n, 1)},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    md = [
        f"World: {n:,} events in {result['files']} ROOT files, generated in {world_s:.1f} s "
        f"({result['world_events_per_s']:,} events/s, 2 workers)",
        "",
        "| producer (one core) | events/s | seconds | bytes/event in Parquet |",
        "|---|---:|---:|---:|",
        f"| eventindex produce | {result['ours']['events_per_s_one_core']:,} | {result['ours']['seconds']} | "
        f"{result['ours']['bytes_per_event']} |",
        f"| peer: {result['peer']['name']} | {result['peer']['events_per_s_one_core']:,} | "
        f"{result['peer']['seconds']} | {result['peer']['bytes_per_event']} |",
    ]
    text = "\n".join(md)
    Path(args.out).with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
