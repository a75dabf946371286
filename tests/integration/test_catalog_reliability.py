"""Loads that race each other and loads that are killed: readers only ever see whole datasets."""

import json
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
from tests.conftest import dataset, upgraded

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request, tmp_path):
    """A metadata DB with its schema made (``eventindex db upgrade``), on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return upgraded(f"sqlite:///{tmp_path / 'meta.sqlite'}")
    return upgraded(request.getfixturevalue("postgres").create_database(f"r{uuid.uuid4().hex[:12]}"))


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



# --- loads killed at random points, and two loads of one dataset at once ---------------------------------------------

SUFFIXES = ("parquet", "keys.arrow", "triggers.arrow")
# Loaders are forked from a server that has imported the store already: a kill lands inside the load, not in the
# second of imports a fresh interpreter spends first.
FORK = mp.get_context("forkserver")
FORK.set_forkserver_preload(["eventindex.catalog.embedded", "pyarrow.parquet", __name__])


def _load(root, url, name, path, ready, go):
    """A load in a process of its own (killed with SIGKILL by the tests)."""
    cat = EmbeddedCatalog(root, url)
    table = pq.read_table(path)
    ready.set()
    if go is not None:
        go.wait(60)
    cat.load(name, table)


def _start_loader(root, url, name, path, go=None):
    ready = FORK.Event()
    proc = FORK.Process(target=_load, args=(str(root), url, name, str(path), ready, go))
    proc.start()
    assert ready.wait(60)
    return proc


def _truth(table: pa.Table) -> np.ndarray:
    """(run, event, timestamp) of every record, sorted: the ground truth of a version, from its records."""
    a = np.stack([table.column(c).to_numpy().astype(np.uint64) for c in ("run_number", "event_number", "timestamp")],
                 axis=1)
    return a[np.lexsort(a.T[::-1])]


def _content(cat, name) -> np.ndarray:
    """What the catalogue answers for the dataset: (run, event) from the key file, timestamps from the Parquet file."""
    batches = list(cat.select(make_selection(dataset=name), columns=["run_number", "event_number", "timestamp"]))
    return _truth(pa.Table.from_batches(batches))


def _shifted(table: pa.Table, k: int) -> pa.Table:
    i = table.schema.get_field_index("event_number")
    return table.set_column(i, "event_number", pa.compute.add(table.column(i), pa.scalar(k * 10**9, pa.uint64())))


def _store_files(root) -> list:
    return sorted(p for p in (root / "data").rglob("*") if p.is_file())


def _assert_only_live_files(root, cat):
    """Every file of the store belongs to a live version (a manifest row), and each live version is whole."""
    live = {r["load_id"] for r in cat.datasets(include_obsolete=True)}
    found = {}
    for p in _store_files(root):
        load_id, _, suffix = p.name.partition(".")
        assert load_id in live and suffix in SUFFIXES, f"orphan file {p.name}"
        found.setdefault(load_id, set()).add(suffix)
    assert found == {load_id: set(SUFFIXES) for load_id in live}


def test_loads_killed_at_random_points_keep_exact_counts_and_gc_leaves_no_orphan(
        staged_world, tmp_path, metadata_url, eventindex_home, monkeypatch):
    world, _, staging = staged_world
    d = dataset(world, "AOD", tag="f961_m1831")
    staged = next((staging / d["name"]).glob("*.parquet"))
    assert pq.ParquetFile(staged).metadata.num_rows == d["nevents"]  # the simulator and the staged file agree
    small = pq.read_table(staged)
    big = pa.concat_tables([_shifted(small, k) for k in range(20)])  # long enough a load to be killed inside it
    big_path = tmp_path / "big.parquet"
    pq.write_table(big, big_path)
    truth = {small.num_rows: _truth(small), big.num_rows: _truth(big)}
    root = eventindex_home / "catalog"
    cat = EmbeddedCatalog(root, metadata_url)
    cat.load(d["name"], small)
    # one whole load first, to spread the kills over the time a load takes on this machine
    proc = _start_loader(root, metadata_url, d["name"], big_path)
    started = time.perf_counter()
    proc.join(60)
    duration = time.perf_counter() - started
    assert proc.exitcode == 0
    cat.load(d["name"], small)
    rng = np.random.default_rng(20)
    outcomes = []
    for _ in range(12):
        proc = _start_loader(root, metadata_url, d["name"], big_path)
        time.sleep(float(rng.uniform(0, 1.1 * duration)))
        proc.kill()  # SIGKILL
        proc.join(60)
        assert proc.exitcode in (0, -signal.SIGKILL)
        after = EmbeddedCatalog(root, metadata_url)  # a fresh reader, as the next command would open it
        n = after.count(make_selection(dataset=d["name"]))
        assert n in truth, n
        assert np.array_equal(_content(after, d["name"]), truth[n])  # one whole version: no loss, no duplicate, no mix
        assert after.duplicates(d["name"]).num_rows == 0
        first = small.slice(0, 1).to_pylist()[0]
        assert len(after.lookup(first["run_number"], first["event_number"], datatype="AOD")) == 1
        outcomes.append(n)
        if n == big.num_rows:  # killed after its commit: back to the small version (the big one is now replaced)
            after.load(d["name"], small)
    assert small.num_rows in outcomes
    # the figure: a crash loop, then one gc (the command, as an operator runs it; no load runs now)
    live_bytes = sum(p.stat().st_size for p in _store_files(root) if p.name.partition(".")[0] == after._row(
        d["name"])["load_id"])
    before = sum(p.stat().st_size for p in _store_files(root))
    monkeypatch.setenv("EVENTINDEX_METADATA_URL", metadata_url)
    gc = subprocess.run([sys.executable, "-m", "eventindex.cli.main", "gc", "--min-age", "0", "--json"],
                        capture_output=True, text=True)
    assert gc.returncode == 0, gc.stderr
    report = json.loads(gc.stdout)
    store = sum(p.stat().st_size for p in _store_files(root))
    assert report["bytes_freed"] == before - store > 0
    assert {r["reason"] for r in report["removed"]} <= {"partial", "orphan", "replaced"}
    assert report["kept"] == []
    final = EmbeddedCatalog(root, metadata_url)
    _assert_only_live_files(root, final)
    assert np.array_equal(_content(final, d["name"]), truth[small.num_rows])
    print(f"\ncrash loop of {len(outcomes)} killed loads ({outcomes.count(small.num_rows)} before their commit): store {before / 1e6:.2f} MB before gc, {store / 1e6:.2f} MB "
          f"after, live catalogue {live_bytes / 1e6:.2f} MB: {store / live_bytes:.3f}x")
    assert store <= 1.10 * live_bytes


def test_two_loads_of_one_dataset_while_a_query_loop_runs(staged_world, tmp_path, metadata_url):
    world, _, staging = staged_world
    d = dataset(world, "AOD", tag="f961_m1831")
    small = pq.read_table(next((staging / d["name"]).glob("*.parquet")))
    versions = {"old": small, "a": pa.concat_tables([_shifted(small, k) for k in range(6)]), "b": small.slice(50)}
    truth = {k: _truth(t) for k, t in versions.items()}
    paths = {}
    for k in ("a", "b"):
        paths[k] = tmp_path / f"{k}.parquet"
        pq.write_table(versions[k], paths[k])
    root = tmp_path / "catalog"
    reader = EmbeddedCatalog(root, metadata_url)
    reader.load(d["name"], versions["old"])
    probe = small.slice(60, 1).to_pylist()[0]  # an event every version holds once
    go = FORK.Event()
    loaders = [_start_loader(root, metadata_url, d["name"], paths[k], go) for k in ("a", "b")]
    go.set()
    seen = []
    while any(p.is_alive() for p in loaders) or not seen:
        content = _content(reader, d["name"])
        match = [k for k, t in truth.items() if np.array_equal(content, t)]
        assert len(match) == 1, f"a query saw {len(content)} records, none of the versions"
        assert reader.count(make_selection(dataset=d["name"])) in {len(t) for t in truth.values()}
        hits = [h for h in reader.lookup(probe["run_number"], probe["event_number"]) if h["dataset"] == d["name"]]
        assert len(hits) == 1
        seen.append(match[0])
    for p in loaders:
        p.join(60)
    assert [p.exitcode for p in loaders] == [0, 0]
    print(f"\nqueries during two loads saw: {[k for i, k in enumerate(seen) if i == 0 or seen[i - 1] != k]}")
    final = EmbeddedCatalog(root, metadata_url)
    rows = [r for r in final.datasets(include_obsolete=True) if r["name"] == d["name"]]
    assert len(rows) == 1
    history = final.show(d["name"])["history"]
    assert [h["action"] for h in history] == ["load", "reload", "reload"]
    assert rows[0]["load_id"] == history[-1]["load_id"]  # the last commit is the live version
    winner = [k for k in ("a", "b") if np.array_equal(_content(final, d["name"]), truth[k])]
    assert len(winner) == 1 and history[-1]["nevents"] == versions[winner[0]].num_rows
    final.gc(min_age_s=0)
    _assert_only_live_files(root, final)
    assert {p.name.partition(".")[0] for p in _store_files(root)} == {rows[0]["load_id"]}
