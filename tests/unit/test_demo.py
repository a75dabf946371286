"""The demo command end to end on a small world, as `make demo` runs it."""

import json
import subprocess
import sys

import pyarrow.parquet as pq


def test_demo_simulates_indexes_and_reports_under_eventindex_home(eventindex_home):
    args = [sys.executable, "-m", "eventindex.cli", "demo", "--runs", "1", "--events-per-run", "2000",
            "--lumi-blocks", "10", "--mc-events", "300"]
    first = subprocess.run(args, capture_output=True, text=True, check=True)
    world = json.loads((eventindex_home / "world" / "world.json").read_text())
    staged = sorted((eventindex_home / "staging").glob("*/*.parquet"))
    assert len(staged) == len(world["datasets"])
    assert sum(pq.read_metadata(p).num_rows for p in staged) == world["nevents"]
    assert f"{world['nevents']:,} events indexed" in first.stdout
    assert "simulating" in first.stdout
    assert "found 1,000, missing 20 -> user.demo:user.demo.picked.AOD" in first.stdout  # step 5: event picking
    picked = sorted((eventindex_home / "picks").rglob("*.pool.root"))
    # a second call reuses the world and re-indexes idempotently (same objects, no duplicates)
    second = subprocess.run(args, capture_output=True, text=True, check=True)
    assert "reusing the world" in second.stdout
    assert sorted((eventindex_home / "staging").glob("*/*.parquet")) == staged
    assert not list((eventindex_home / "staging").rglob("*.part"))
    assert "already done by demo-" in second.stdout and sorted((eventindex_home / "picks").rglob("*.pool.root")) == picked
