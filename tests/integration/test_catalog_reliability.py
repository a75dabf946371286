"""Loads that race each other and loads that are killed: readers only ever see whole datasets."""

import multiprocessing as mp
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from tests.conftest import dataset

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.sqlite'}"
    return request.getfixturevalue("postgres").create_database(f"r{uuid.uuid4().hex[:12]}")


def _reloader(root, url, name, path, rounds, errors):
    try:
        cat = EmbeddedCatalog(root, url)
        table = pq.read_table(path)
        for i in range(rounds):
            cat.load(name, table if i % 2 == 0 else table.slice(0, 100))
        cat.load(name, table)
    except Exception as exc:  # reported to the parent
        errors.put(f"loader {name}: {exc!r}")


def _reader(root, url, expect, probe, stop, errors, seen):
    try:
        cat = EmbeddedCatalog(root, url)
        n = 0
        while not stop.is_set():
            for name, allowed in expect.items():
                c = cat.count(make_selection(dataset=name))
                if c not in allowed:
                    errors.put(f"reader saw {c} events in {name}, expected one of {allowed}")
                run, event = probe[name]
                hits = [m for m in cat.lookup(run, event) if m["dataset"] == name]
                if len(hits) != 1:
                    errors.put(f"reader found {len(hits)} records of {run} {event} in {name}")
            n += 1
        seen.put(n)
    except Exception as exc:
        errors.put(f"reader: {exc!r}")


def test_two_loaders_and_a_reader_in_separate_processes(staged_world, tmp_path, metadata_url):
    world, _, staging = staged_world
    names = [dataset(world, "AOD", tag="f961_m1831")["name"], dataset(world, "RAW")["name"]]
    root = tmp_path / "catalog"
    cat = EmbeddedCatalog(root, metadata_url)
    paths, expect, probe = {}, {}, {}
    for name in names:
        paths[name] = str(next((staging / name).glob("*.parquet")))
        table = pq.read_table(paths[name])
        cat.load(name, table)
        expect[name] = {table.num_rows, 100}
        first = table.sort_by([("run_number", "ascending"), ("event_number", "ascending")]).slice(0, 1).to_pylist()[0]
        probe[name] = (first["run_number"], first["event_number"])
    ctx = mp.get_context("spawn")
    errors, seen, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    reader = ctx.Process(target=_reader, args=(str(root), metadata_url, expect, probe, stop, errors, seen))
    loaders = [ctx.Process(target=_reloader, args=(str(root), metadata_url, n, paths[n], 6, errors)) for n in names]
    reader.start()
    for p in loaders:
        p.start()
    for p in loaders:
        p.join(180)
        assert p.exitcode == 0
    stop.set()
    reader.join(60)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == []
    assert seen.get(timeout=5) > 0
    final = EmbeddedCatalog(root, metadata_url)
    for name in names:
        assert final.count(make_selection(dataset=name)) == max(expect[name])
        assert [h["action"] for h in final.show(name)["history"]] == ["load"] + ["reload"] * 7


CRASH_LOADER = """
import sys, pyarrow.parquet as pq
from eventindex.catalog.embedded import EmbeddedCatalog
root, url, name, path = sys.argv[1:5]
cat = EmbeddedCatalog(root, url)
table = pq.read_table(path)
print("ready", flush=True)
cat.load(name, table)
print("done", flush=True)
"""


def test_a_load_killed_midway_leaves_the_previous_version_whole(staged_world, tmp_path, metadata_url):
    world, _, staging = staged_world
    d = dataset(world, "AOD", tag="f961_m1831")
    small = pq.read_table(next((staging / d["name"]).glob("*.parquet")))
    # a bigger version of the same dataset, so that the load takes long enough to be killed inside
    big = pa.concat_tables([small.set_column(1, "event_number", pa.compute.add(small.column("event_number"),
                                                                               pa.scalar(k * 10**9, pa.uint64())))
                            for k in range(40)])
    big_path = tmp_path / "big.parquet"
    pq.write_table(big, big_path)
    root = tmp_path / "catalog"
    cat = EmbeddedCatalog(root, metadata_url)
    cat.load(d["name"], small)
    outcomes = set()
    rng = np.random.default_rng(0)
    for attempt in range(4):
        proc = subprocess.Popen([sys.executable, "-c", CRASH_LOADER, str(root), metadata_url, d["name"],
                                 str(big_path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.8)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = EmbeddedCatalog(root, metadata_url)
        n = after.count(make_selection(dataset=d["name"]))
        assert n in (small.num_rows, big.num_rows), n
        outcomes.add(n)
        row = after.show(d["name"])
        assert (root / row["storage"]).exists()
        first = small.slice(0, 1).to_pylist()[0]
        assert len(after.lookup(first["run_number"], first["event_number"], datatype="AOD",
                                version="f961_m1831")) == 1
        if n == big.num_rows:  # the kill came after the commit: go back to the small version
            after.load(d["name"], small)
    after.gc(min_age_s=0)
    live = {r["load_id"] for r in after.datasets()}
    leftovers = [p.name for p in (root / "data").glob("dataset=*/*") if p.name.split(".")[0] not in live]
    assert leftovers == []
    assert small.num_rows in outcomes
