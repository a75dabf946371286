"""How long the `eventindex` command takes to answer, as a user sees it (a new process each time).

    python -m bench.cli [--runs 1 --events-per-run 20000] [--repeat 7] [--out bench/results/cli.json]

Makes a small world in a temporary EVENTINDEX_HOME (simulated, produced, loaded), then times whole commands as
subprocesses, median of N, next to the floor any Python command pays on this machine in the same run:
``python -c pass`` (the interpreter) and ``python -c "import pyarrow"`` (the columnar stack every query needs).
Target: ``eventindex lookup RUN EVENT`` under 0.5 s. Also lists the biggest imports of a lookup (``-X importtime``),
since on a loaded machine start-up, not the query, is what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eventindex.catalog import make_selection, open_catalog
from eventindex.catalog.loader import load_staged
from eventindex.producer import produce
from eventindex.settings import Settings
from eventindex.sim.world import WorldConfig, simulate

EVENTINDEX = [sys.executable, "-m", "eventindex.cli.main"]


def make_home(home: Path, config: WorldConfig) -> tuple[dict, int, int]:
    """A loaded catalogue under ``home``; returns (world, run, event) of an event in it."""
    world = simulate(home / "world", config)
    for d in world["datasets"]:
        produce(d["name"], [str(home / "world" / f["path"]) for f in d["files"]], str(home / "staging"),
                d["task_id"], 1)
    catalog = open_catalog(Settings.from_env({"EVENTINDEX_HOME": str(home)}))
    load_staged(catalog, str(home / "staging"))
    raw = next(d for d in world["datasets"] if d["datatype"] == "RAW")
    batch = next(iter(catalog.select(make_selection(dataset=raw["name"]), ["run_number", "event_number"])))
    return world, int(batch.column(0)[0].as_py()), int(batch.column(1)[0].as_py())


def wall(cmd: list[str], env: dict, repeat: int) -> dict:
    """Median and spread of the wall time of ``cmd`` (after one unmeasured run that warms the file cache)."""
    times = []
    for i in range(repeat + 1):
        started = time.perf_counter()
        done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-500:]}")
        if i:
            times.append(seconds)
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "max_s": round(max(times), 3)}


def biggest_imports(cmd: list[str], env: dict, n: int = 8) -> list[dict]:
    """The top-level imports of one run of ``cmd``, costliest first (cumulative, as -X importtime reports)."""
    done = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and name.startswith(" ") and not name.startswith("  "):
            rows.append({"module": name.strip(), "ms": round(int(cumulative) / 1000, 1)})
    return sorted(rows, key=lambda r: -r["ms"])[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--events-per-run", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=7, help="median of N for each command")
    ap.add_argument("--out", default="bench/results/cli.json")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ei-bench-cli-"))
    try:
        config = WorldConfig(runs=args.runs, events_per_run=args.events_per_run, mc_events=1000, workers=1)
        world, run, event = make_home(home, config)
        env = {**os.environ, "EVENTINDEX_HOME": str(home)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        commands = {
            "peer: python -c pass": [sys.executable, "-c", "pass"],
            "peer: python -c 'import pyarrow'": [sys.executable, "-c", "import pyarrow"],
            "eventindex --help": [*EVENTINDEX, "--help"],
            f"eventindex lookup {run} {event}": [*EVENTINDEX, "lookup", str(run), str(event)],
            "eventindex count --type RAW": [*EVENTINDEX, "count", "--type", "RAW"],
        }
        results = {name: wall(cmd, env, args.repeat) for name, cmd in commands.items()}
        lookup = commands[f"eventindex lookup {run} {event}"]
        result = {
            "events": world["nevents"], "datasets": len(world["datasets"]), "repeat": args.repeat,
            "commands": results, "lookup_target_s": 0.5,
            "lookup_imports": biggest_imports(lookup, env),
            "machine": {"cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
                        "python": platform.python_version(), "platform": platform.platform()},
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    md = [
        f"Catalogue: {result['events']:,} events in {result['datasets']} datasets; wall time of a new process, "
        f"median of {args.repeat} (load average {result['machine']['load_avg_1min']} on "
        f"{result['machine']['cpus']} cores)",
        "",
        "| command | median s | min s | max s |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {r['median_s']} | {r['min_s']} | {r['max_s']} |" for name, r in results.items()],
        "",
        "Biggest top-level imports of the lookup (ms, cumulative):",
        "",
        "| module | ms |",
        "|---|---:|",
        *[f"| {r['module']} | {r['ms']} |" for r in result["lookup_imports"]],
    ]
    text = "\n".join(md)
    Path(args.out).with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
