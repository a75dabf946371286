"""Catalogue benchmark: the embedded store against PostgreSQL 15 with a B-tree, measured side by side.

    python -m bench.catalog --events N [--out FILE.json] [--no-postgres]

Generates N AOD index records (one dataset per run, ~200k events each) whose trigger masks are drawn from
events of the simulated trigger (realistic: sparse and correlated) and whose references point at RAW and AOD
files, then loads them into our catalogue and into a PostgreSQL 15 started by the bench on 127.0.0.1
(best-practice schema: bigint keys, uuid GUIDs, bytea masks, binary COPY, then B-trees on (run, event) and on
the AOD GUID; fsync off, which favours PostgreSQL's load). Measures for both: bytes/event on disk, load
events/s, single lookup p50/p99, a 100k-pair batch lookup, count all, count by stream + version, count by
trigger name, select by GUID. Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.schema import record_schema
from eventindex.sim.events import collisions
from eventindex.sim.triggers import build_menu, prescale_sets
from eventindex.trigger import masks_to_arrow

EVENTS_PER_DATASET = 200_000
TRIGGER = "HLT_e26_lhtight_ivarloose_L1EM22VHI"
STREAMS = ("physics_Main", "physics_MinBias", "express_express")
VERSIONS = ("f961_m1831", "r11969_r11784_p4072")
MASKS = ("l1_tbp", "l1_tap", "l1_tav", "hlt_passed", "hlt_prescaled", "hlt_resurrected")


def trigger_pool(n: int = 60_000, seed: int = 1):
    menu, rules = build_menu(2757)
    early = prescale_sets(rules, 300, 400, 1.0)
    late = prescale_sets(rules, 301, 401, 0.5)
    lbw = np.ones(100) / 100
    cols, *_ = collisions(np.random.default_rng(seed), n, rules, [early[0], late[0]], [early[1], late[1]], lbw, 50)
    return menu, {m: np.ascontiguousarray(cols[m]).view(np.uint8) for m in MASKS}


def make_dataset(rng, k: int, run: int, n: int, pool) -> tuple[str, pa.Table, dict]:
    stream = STREAMS[0] if k % 10 < 7 else STREAMS[1 + k % 2]
    version = VERSIONS[0] if k % 2 == 0 else VERSIONS[1]
    name = f"data18_13TeV.{run:08d}.{stream}.merge.AOD.{version}"
    event = (rng.integers(1, 1000) + np.cumsum(rng.integers(1, 2000, n))).astype(np.uint64)
    lb = (np.arange(n) // 500 + 1).astype(np.uint32)
    ts = (1534000000 + run * 10 + lb * 60).astype(np.uint32)
    pick = rng.integers(0, len(pool["l1_tbp"]), n)
    raw_files = rng.integers(0, 256, (n // 2000 + 1, 16), dtype=np.uint8)
    aod_files = rng.integers(0, 256, (n // 10000 + 1, 16), dtype=np.uint8)
    idx = np.arange(n)
    cols = {
        "run_number": pa.array(np.full(n, run, np.uint32)), "event_number": pa.array(event),
        "lumi_block": pa.array(lb), "bcid": pa.array(rng.integers(1, 3564, n).astype(np.uint16)),
        "timestamp": pa.array(ts), "timestamp_ns": pa.array(rng.integers(0, 10**9, n).astype(np.uint32)),
        "stream": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), pa.array([stream])),
        "smk": pa.array(np.full(n, 2757, np.uint32)), "l1psk": pa.array(np.where(lb < 200, 300, 301).astype(np.uint32)),
        "hltpsk": pa.array(np.where(lb < 200, 400, 401).astype(np.uint32)),
        **{m: masks_to_arrow(pool[m][pick]) for m in MASKS},
        "mc_channel_number": pa.nulls(n, pa.uint32()), "mc_event_weight": pa.nulls(n, pa.float32()),
        "RAW_guid": masks_to_arrow(raw_files[idx // 2000]), "RAW_oid": pa.array((idx % 2000).astype(np.uint64)),
        "AOD_guid": masks_to_arrow(aod_files[idx // 10000]), "AOD_oid": pa.array((idx % 10000).astype(np.uint64)),
    }
    schema = record_schema(["RAW", "AOD"])
    table = pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)
    return name, table, {"stream": stream, "version": version, "run": run}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# --- PostgreSQL ---------------------------------------------------------------------------------------------

PG_DDL = """
CREATE TABLE datasets (dataset_id integer PRIMARY KEY, name text UNIQUE NOT NULL, run_number bigint,
                       stream text NOT NULL, version text NOT NULL);
CREATE TABLE events (
  dataset_id integer NOT NULL, run_number bigint NOT NULL, event_number bigint NOT NULL, lumi_block integer NOT NULL,
  bcid smallint NOT NULL, "timestamp" bigint NOT NULL, timestamp_ns integer NOT NULL, smk integer NOT NULL,
  l1psk integer NOT NULL, hltpsk integer NOT NULL,
  l1_tbp bytea NOT NULL, l1_tap bytea NOT NULL, l1_tav bytea NOT NULL,
  hlt_passed bytea NOT NULL, hlt_prescaled bytea NOT NULL, hlt_resurrected bytea NOT NULL,
  mc_channel_number integer, mc_event_weight real,
  raw_guid uuid NOT NULL, raw_oid bigint NOT NULL, aod_guid uuid NOT NULL, aod_oid bigint NOT NULL);
"""
PG_INDEXES = ["CREATE INDEX events_run_event ON events (run_number, event_number)",
              "CREATE INDEX events_aod_guid ON events (aod_guid)"]


def pg_binary_copy(dataset_id: int, t: pa.Table) -> bytes:
    """The rows of ``t`` in PostgreSQL's binary COPY format, built as one numpy record array (no Python loop)."""
    n = t.num_rows
    fields = [("nf", ">i2"), ("l0", ">i4"), ("dataset_id", ">i4"), ("l1", ">i4"), ("run", ">i8"), ("l2", ">i4"),
              ("event", ">i8"), ("l3", ">i4"), ("lb", ">i4"), ("l4", ">i4"), ("bcid", ">i2"), ("l5", ">i4"),
              ("ts", ">i8"), ("l6", ">i4"), ("tsns", ">i4"), ("l7", ">i4"), ("smk", ">i4"), ("l8", ">i4"),
              ("l1psk", ">i4"), ("l9", ">i4"), ("hltpsk", ">i4")]
    for i, m in enumerate(MASKS):
        fields += [(f"lm{i}", ">i4"), (m, "V64" if m.startswith("l1") else "V128")]
    fields += [("lmc", ">i4"), ("lw", ">i4"), ("lrg", ">i4"), ("raw_guid", "V16"), ("lro", ">i4"), ("raw_oid", ">i8"),
               ("lag", ">i4"), ("aod_guid", "V16"), ("lao", ">i4"), ("aod_oid", ">i8")]
    rec = np.zeros(n, dtype=np.dtype(fields))
    rec["nf"] = 22
    sizes = {"l0": 4, "l1": 8, "l2": 8, "l3": 4, "l4": 2, "l5": 8, "l6": 4, "l7": 4, "l8": 4, "l9": 4,
             "lrg": 16, "lro": 8, "lag": 16, "lao": 8, "lmc": -1, "lw": -1}
    for k, v in sizes.items():
        rec[k] = v
    for i, m in enumerate(MASKS):
        rec[f"lm{i}"] = 64 if m.startswith("l1") else 128
    col = lambda name: t.column(name).to_numpy()  # noqa: E731
    rec["dataset_id"] = dataset_id
    rec["run"], rec["event"], rec["lb"] = col("run_number"), col("event_number").astype(np.int64), col("lumi_block")
    rec["bcid"], rec["ts"], rec["tsns"] = col("bcid").astype(np.int16), col("timestamp"), col("timestamp_ns")
    rec["smk"], rec["l1psk"], rec["hltpsk"] = col("smk"), col("l1psk"), col("hltpsk")
    from eventindex.trigger import masks_from_arrow

    for m in MASKS:
        rec[m] = masks_from_arrow(t.column(m)).view(rec.dtype[m])[:, 0]
    for g in ("RAW", "AOD"):
        rec[f"{g.lower()}_guid"] = masks_from_arrow(t.column(f"{g}_guid")).view("V16")[:, 0]
        rec[f"{g.lower()}_oid"] = col(f"{g}_oid").astype(np.int64)
    return rec.tobytes()


PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
PG_TRAILER = struct.pack(">h", -1)


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def percentiles(fn, pairs) -> tuple[float, float]:
    times = []
    for run, event in pairs:
        t = time.perf_counter()
        fn(run, event)
        times.append(time.perf_counter() - t)
    times = np.array(times) * 1000
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--per-dataset", type=int, default=EVENTS_PER_DATASET)
    ap.add_argument("--out", default="bench/results/catalog.json")
    ap.add_argument("--no-postgres", action="store_true", help="measure only the catalogue (e.g. at 100M events)")
    ap.add_argument("--work", help="work folder (default: a temporary folder, removed afterwards)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ei-bench-cat-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)  # the PostgreSQL server runs as its own user and keeps its cluster in here
    rng = np.random.default_rng(7)
    menu, pool = trigger_pool()
    trigger_bit = menu.locate(TRIGGER)[1]
    ndatasets = max(1, args.events // args.per_dataset)
    runs = 350000 + np.cumsum(rng.integers(5, 50, ndatasets))
    from eventindex.metadata import upgrade as db_upgrade

    db_upgrade(f"sqlite:///{work / 'metadata.sqlite'}")  # opening never migrates
    cat = EmbeddedCatalog(work / "catalog", f"sqlite:///{work / 'metadata.sqlite'}")
    cat.save_menus([menu])
    pg = conn = None
    if not args.no_postgres:
        import psycopg2

        from eventindex_harness.postgres import PrivatePostgres

        pg = PrivatePostgres(base=work / "pg", settings={"shared_buffers": "2GB", "maintenance_work_mem": "1GB",
                                                         "max_wal_size": "8GB", "checkpoint_timeout": "30min"})
        pg.start()
        conn = psycopg2.connect(pg.dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(PG_DDL)
    ours_load = pg_load = 0.0
    samples, guid_probe, meta = [], None, []
    n_total = 0
    for k, run in enumerate(int(r) for r in runs):
        name, table, info = make_dataset(rng, k, run, args.per_dataset, pool)
        meta.append((k, name, info))
        t = time.perf_counter()
        cat.load(name, table)
        ours_load += time.perf_counter() - t
        if conn is not None:
            payload = PG_HEADER + pg_binary_copy(k, table) + PG_TRAILER
            with conn.cursor() as cur:
                cur.execute("INSERT INTO datasets VALUES (%s, %s, %s, %s, %s)",
                            (k, name, run, info["stream"], info["version"]))
                t = time.perf_counter()
                cur.copy_expert("COPY events FROM STDIN WITH (FORMAT binary)", io.BytesIO(payload))
                pg_load += time.perf_counter() - t
        pick = rng.integers(0, table.num_rows, 1000 // ndatasets + 1)
        ev = table.column("event_number").to_numpy()
        samples += [(run, int(ev[i])) for i in pick]
        if guid_probe is None:
            guid_probe = table.column("AOD_guid")[table.num_rows // 2].as_py()
        n_total += table.num_rows
        print(f"  loaded {k + 1}/{ndatasets} datasets ({n_total:,} events)", flush=True)
    if conn is not None:
        with conn.cursor() as cur:
            t = time.perf_counter()
            for ddl in PG_INDEXES:
                cur.execute(ddl)
            cur.execute("VACUUM ANALYZE events")
            pg_load += time.perf_counter() - t
    del pool

    guid_text = str(__import__("uuid").UUID(bytes=guid_probe)).upper()
    rng.shuffle(samples)
    lookup_pairs = samples[:2000]
    batch = np.array([samples[i % len(samples)] for i in range(100_000)], dtype=np.uint64)
    batch[::10, 1] += np.uint64(1)  # some misses
    sel_sv = make_selection(stream="physics_Main", version=VERSIONS[0])
    ours = {"bytes_per_event": du(work / "catalog") / n_total + (work / "metadata.sqlite").stat().st_size / n_total,
            "load_events_per_s": n_total / ours_load}
    cat.warm()  # map and page in the key files, as a running service would have (PostgreSQL: its fresh B-tree)
    for r, e in lookup_pairs[:50]:
        cat.lookup(r, e)
    ours["lookup_p50_ms"], ours["lookup_p99_ms"] = percentiles(lambda r, e: cat.lookup(r, e), lookup_pairs)
    ours["batch_100k_s"] = timed(lambda: cat.lookup_many(batch))
    ours["count_all_s"] = timed(lambda: cat.count(make_selection()))
    ours["count_stream_version_s"] = timed(lambda: cat.count(sel_sv))
    ours["count_trigger_s"] = timed(lambda: cat.count(make_selection(triggers=[TRIGGER])))
    ours["select_guid_s"] = timed(lambda: pa.Table.from_batches(list(cat.select(
        make_selection(guid=guid_text), ["run_number", "event_number", "AOD_oid"]))))
    checks = {"count_all": cat.count(make_selection()), "count_stream_version": cat.count(sel_sv),
              "count_trigger": cat.count(make_selection(triggers=[TRIGGER])),
              "select_guid": sum(b.num_rows for b in cat.select(make_selection(guid=guid_text), ["event_number"])),
              "batch_matches": cat.lookup_many(batch).num_rows}
    result = {"events": n_total, "datasets": ndatasets, "ours": ours, "checks": {"ours": checks},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}}
    if conn is not None:
        cur = conn.cursor()
        cur.execute("SELECT pg_total_relation_size('events') + pg_total_relation_size('datasets')")
        pg_bytes = cur.fetchone()[0]
        q_lookup = ("SELECT d.name, e.lumi_block, e.raw_guid, e.raw_oid, e.aod_guid, e.aod_oid FROM events e "
                    "JOIN datasets d USING (dataset_id) WHERE e.run_number = %s AND e.event_number = %s")
        for r, e in lookup_pairs[:50]:
            cur.execute(q_lookup, (r, e))
            cur.fetchall()

        def pg_lookup(r, e):
            cur.execute(q_lookup, (r, e))
            return cur.fetchall()

        p50, p99 = percentiles(pg_lookup, lookup_pairs)
        runs_arr, evts_arr = batch[:, 0].astype(np.int64).tolist(), batch[:, 1].astype(np.int64).tolist()

        def pg_batch():
            cur.execute("SELECT q.i, d.name, e.lumi_block, e.raw_guid, e.raw_oid, e.aod_guid, e.aod_oid "
                        "FROM unnest(%s::bigint[], %s::bigint[]) WITH ORDINALITY AS q(r, ev, i) "
                        "JOIN events e ON e.run_number = q.r AND e.event_number = q.ev JOIN datasets d USING (dataset_id)",
                        (runs_arr, evts_arr))
            return cur.fetchall()

        def one(sql, params=()):
            cur.execute(sql, params)
            return cur.fetchall()

        count_sv = ("SELECT count(*) FROM events e JOIN datasets d USING (dataset_id) "
                    "WHERE d.stream = %s AND d.version = %s")
        count_trig = "SELECT count(*) FROM events WHERE get_bit(hlt_passed, %s) = 1"
        sel_guid = "SELECT run_number, event_number, aod_oid FROM events WHERE aod_guid = %s"
        result["postgres"] = {
            "bytes_per_event": pg_bytes / n_total, "load_events_per_s": n_total / pg_load,
            "lookup_p50_ms": p50, "lookup_p99_ms": p99, "batch_100k_s": timed(pg_batch, 2),
            "count_all_s": timed(lambda: one("SELECT count(*) FROM events"), 2),
            "count_stream_version_s": timed(lambda: one(count_sv, ("physics_Main", VERSIONS[0])), 2),
            "count_trigger_s": timed(lambda: one(count_trig, (trigger_bit,)), 2),
            "select_guid_s": timed(lambda: one(sel_guid, (guid_text,)), 2),
        }
        result["checks"]["postgres"] = {
            "count_all": one("SELECT count(*) FROM events")[0][0],
            "count_stream_version": one(count_sv, ("physics_Main", VERSIONS[0]))[0][0],
            "count_trigger": one(count_trig, (trigger_bit,))[0][0],
            "select_guid": len(one(sel_guid, (guid_text,))), "batch_matches": len(pg_batch()),
        }
        cur.close()
        conn.close()
        pg.stop()
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    Path(args.out).with_suffix(".md").write_text(table_md(result) + "\n")
    print(table_md(result))


KEYS = [("bytes_per_event", "bytes/event on disk", "{:.1f}"), ("load_events_per_s", "load, events/s", "{:,.0f}"),
        ("lookup_p50_ms", "single lookup p50, ms", "{:.3f}"), ("lookup_p99_ms", "single lookup p99, ms", "{:.3f}"),
        ("batch_100k_s", "100k-pair batch lookup, s", "{:.3f}"), ("count_all_s", "count all, s", "{:.4f}"),
        ("count_stream_version_s", "count stream + version, s", "{:.4f}"),
        ("count_trigger_s", f"count {TRIGGER}, s", "{:.4f}"), ("select_guid_s", "select by GUID, s", "{:.4f}")]


def table_md(result: dict) -> str:
    pg = result.get("postgres")
    lines = [f"{result['events']:,} events in {result['datasets']} datasets", "",
             "| measure | eventindex | PostgreSQL 15 | ratio |", "|---|---:|---:|---:|"]
    for key, label, fmt in KEYS:
        ours = result["ours"][key]
        theirs = pg[key] if pg else None
        if theirs is None:
            ratio = ""
        elif key in ("load_events_per_s",):
            ratio = f"{ours / theirs:.1f}x faster"
        elif key == "bytes_per_event":
            ratio = f"1/{theirs / ours:.1f}"
        else:
            ratio = f"{theirs / ours:.1f}x faster" if ours else "inf"
        lines.append(f"| {label} | {fmt.format(ours)} | {fmt.format(theirs) if pg else 'not run'} | {ratio} |")
    checks = result.get("checks", {})
    if "postgres" in checks:
        lines += ["", f"answers: ours {checks['ours']}, PostgreSQL {checks['postgres']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
