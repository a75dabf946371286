"""Event-level selections (the TAG services' workload): the embedded catalogue against PostgreSQL 15, side by side.

    python -m bench.selection --events N [--no-postgres] [--out FILE.json]

Generates N AOD index records as bench.catalog does (one dataset per run, trigger masks drawn from the simulated
trigger, menu saved in the catalogue's metadata so trigger names resolve), loads them into our catalogue and into a
PostgreSQL 15 started on 127.0.0.1 in its best schema for this job: the HLT passed mask as 16 bigint columns
``hlt0..hlt15`` (little-endian 64-bit words of the mask, bit b = word b // 64, bit b % 64: the catalogue's numbering),
so a trigger test is ``(hlt1 & x) <> 0``; run, event, lumi block, bcid as plain columns; the AOD reference as uuid +
bigint; a BRIN index on lumi_block (the rows of a dataset arrive in lumi-block order) and a B-tree on (run, event);
binary COPY, then VACUUM ANALYZE. Queries (each run once untimed, then the best of 3, wall clock):

- count of events passing two HLT chains in a lumi-block range;
- the 10x10 overlap matrix of 10 HLT chains (PostgreSQL: one scan, ``count(*) FILTER (WHERE ...)`` per pair);
- a 50-bin histogram of bcid with a trigger cut (PostgreSQL: ``width_bucket`` + GROUP BY);
- a skim of 100k events passing a trigger (run, event, lumi block, bcid, AOD GUID + entry) to a file: ours a ROOT
  file through ``eventindex.tag.skim.skim``, PostgreSQL ``COPY (SELECT ... LIMIT 100000) TO STDOUT`` into a CSV.

Both answers of every query are printed and compared (exit status 1 if any differ); a markdown table is printed and
saved next to the JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.catalog import EVENTS_PER_DATASET, PG_HEADER, PG_TRAILER, du, make_dataset, timed, trigger_pool
from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.trigger import masks_from_arrow

TWO = ("HLT_e26_lhtight_ivarloose_L1EM22VHI", "HLT_xe35_tcpufit_L1XE50")
LUMI = (10, 60)
TEN = ("HLT_e26_lhtight_ivarloose_L1EM22VHI", "HLT_mu24_ivarmedium_L1MU14FCH", "HLT_xe35_tcpufit_L1XE50",
       "HLT_g25_loose_L1EM20VH", "HLT_2mu14_L12MU8F", "HLT_2e17_lhvloose_L12EM15VH", "HLT_3j45_L13J50",
       "HLT_j150_L1J40", "HLT_4j45_L13J50", "HLT_tau35_medium1_tracktwo_tau25_medium1_tracktwo_L1TAU20IM_2TAU12IM")
CUT = TWO[0]  # the histogram's and the skim's trigger cut
HIST_COLUMN, HIST_BINS, HIST_RANGE = "bcid", 50, (0, 3564)
SKIM_EVENTS = 100_000
SKIM_ATTRIBUTES = ["run_number", "event_number", "lumi_block", "bcid"]
HLT_WORDS = 16

PG_DDL = """
CREATE TABLE datasets (dataset_id integer PRIMARY KEY, name text UNIQUE NOT NULL, run_number bigint,
                       stream text NOT NULL, version text NOT NULL);
CREATE TABLE events (dataset_id integer NOT NULL, run_number bigint NOT NULL, event_number bigint NOT NULL,
  lumi_block integer NOT NULL, bcid smallint NOT NULL, {hlt}, aod_guid uuid NOT NULL, aod_oid bigint NOT NULL);
""".format(hlt=", ".join(f"hlt{w} bigint NOT NULL" for w in range(HLT_WORDS)))
PG_INDEXES = ["CREATE INDEX events_lumi_brin ON events USING brin (lumi_block) WITH (pages_per_range = 16)",
              "CREATE INDEX events_run_event ON events (run_number, event_number)"]


def pg_rows(dataset_id: int, t: pa.Table) -> bytes:
    """The rows of ``t`` in PostgreSQL's binary COPY format for the schema above (one numpy record array)."""
    fields = [("nf", ">i2"), ("l0", ">i4"), ("ds", ">i4"), ("l1", ">i4"), ("run", ">i8"), ("l2", ">i4"),
              ("event", ">i8"), ("l3", ">i4"), ("lb", ">i4"), ("l4", ">i4"), ("bcid", ">i2")]
    for w in range(HLT_WORDS):
        fields += [(f"lh{w}", ">i4"), (f"hlt{w}", ">i8")]
    fields += [("lg", ">i4"), ("guid", "V16"), ("lo", ">i4"), ("oid", ">i8")]
    rec = np.zeros(t.num_rows, dtype=np.dtype(fields))
    rec["nf"] = 7 + HLT_WORDS
    for k, v in {"l0": 4, "l1": 8, "l2": 8, "l3": 4, "l4": 2, "lg": 16, "lo": 8}.items():
        rec[k] = v
    col = lambda name: t.column(name).to_numpy()  # noqa: E731
    rec["ds"], rec["run"], rec["event"] = dataset_id, col("run_number"), col("event_number").astype(np.int64)
    rec["lb"], rec["bcid"] = col("lumi_block"), col("bcid").astype(np.int16)
    words = np.ascontiguousarray(masks_from_arrow(t.column("hlt_passed"))).view("<i8")  # (n, 16) little-endian
    for w in range(HLT_WORDS):
        rec[f"lh{w}"] = 8
        rec[f"hlt{w}"] = words[:, w]
    rec["guid"] = masks_from_arrow(t.column("AOD_guid")).view("V16")[:, 0]
    rec["oid"] = col("AOD_oid").astype(np.int64)
    return rec.tobytes()


def pg_test(menu, name: str) -> str:
    """``(hltW & x) <> 0`` for the chain's HLT bit, numbered as the catalogue does (x as a signed 64-bit value)."""
    level, bit = menu.locate(name)
    assert level == "HLT", name
    x = int(np.array([1 << (bit % 64)], dtype=np.uint64).view(np.int64)[0])
    return f"(hlt{bit // 64} & ({x})::bigint) <> 0"


def pg_queries(menu) -> dict[str, str]:
    a, b = (pg_test(menu, t) for t in TWO)
    tests = [pg_test(menu, t) for t in TEN]
    pairs = [f"count(*) FILTER (WHERE {tests[i]} AND {tests[j]})" for i in range(10) for j in range(i, 10)]
    lo, hi = HIST_RANGE
    cut = pg_test(menu, CUT)
    return {
        "count": f"SELECT count(*) FROM events WHERE {a} AND {b} AND lumi_block BETWEEN {LUMI[0]} AND {LUMI[1]}",
        "overlaps": f"SELECT {', '.join(pairs)} FROM events",
        "histogram": f"SELECT width_bucket({HIST_COLUMN}, {lo}, {hi}, {HIST_BINS}) AS b, count(*) FROM events "
                     f"WHERE {cut} GROUP BY b ORDER BY b",
        "skim": f"COPY (SELECT run_number, event_number, lumi_block, bcid, upper(aod_guid::text) AS aod_guid, "
                f"aod_oid AS aod_entry FROM events WHERE {cut} LIMIT {SKIM_EVENTS}) TO STDOUT WITH (FORMAT csv, HEADER)",
    }


def symmetric(values) -> list[list[int]]:
    it = iter(values)
    m = np.zeros((10, 10), dtype=np.int64)
    for i in range(10):
        for j in range(i, 10):
            m[i, j] = m[j, i] = next(it)
    return m.tolist()


def pg_histogram(rows) -> dict:
    counts = dict(rows)
    return {"counts": [int(counts.get(b, 0)) for b in range(1, HIST_BINS + 1)],
            "underflow": int(counts.get(0, 0)), "overflow": int(counts.get(HIST_BINS + 1, 0))}


def skim_rows_ours(path: Path) -> list[tuple]:
    import uproot

    with uproot.open(path) as f:
        arr = f["events"].arrays([*SKIM_ATTRIBUTES, "AOD_guid", "AOD_entry"], library="np")
    return list(zip(*(arr[c].tolist() for c in [*SKIM_ATTRIBUTES, "AOD_guid", "AOD_entry"])))


def skim_rows_pg(path: Path) -> list[tuple]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [(int(r[0]), int(r[1]), int(r[2]), int(r[3]), r[4], int(r[5])) for r in rows]


def skim_check(cat, sel, rows: list[tuple]) -> dict:
    """How many rows a skim wrote, how many distinct events, and how many of them are events of the selection
    with exactly these attributes and AOD reference (the two skims may pick different 100k of the passing events:
    LIMIT without ORDER BY)."""
    truth = set()
    for batch in cat.select(sel, [*SKIM_ATTRIBUTES, "AOD_guid", "AOD_oid"]):
        cols = [batch.column(c) for c in [*SKIM_ATTRIBUTES, "AOD_guid", "AOD_oid"]]
        cols[4] = cols[4].cast(pa.string()) if pa.types.is_dictionary(cols[4].type) else cols[4]
        truth.update(zip(*(c.to_pylist() for c in cols)))
    return {"rows": len(rows), "distinct": len(set(rows)), "valid": sum(r in truth for r in set(rows))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--per-dataset", type=int, default=EVENTS_PER_DATASET)
    ap.add_argument("--out", default="bench/results/selection.json")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--work", help="work folder (default: a temporary folder, removed afterwards)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ei-bench-sel-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    load_before = os.getloadavg()
    rng = np.random.default_rng(7)
    menu, pool = trigger_pool()
    per_dataset = min(args.per_dataset, args.events)
    ndatasets = max(1, args.events // per_dataset)
    runs = 350000 + np.cumsum(rng.integers(5, 50, ndatasets))
    from eventindex.metadata import upgrade as db_upgrade

    db_upgrade(f"sqlite:///{work / 'metadata.sqlite'}")  # opening never migrates
    cat = EmbeddedCatalog(work / "catalog", f"sqlite:///{work / 'metadata.sqlite'}")
    cat.save_menus([menu])  # the selection decodes trigger names through the menus in the metadata
    pg = conn = None
    if not args.no_postgres:
        import psycopg2

        from eventindex_harness.postgres import PrivatePostgres

        pg = PrivatePostgres(base=work / "pg", settings={"shared_buffers": "2GB", "maintenance_work_mem": "1GB",
                                                         "max_wal_size": "8GB", "checkpoint_timeout": "30min",
                                                         "work_mem": "64MB"})
        pg.start()
        conn = psycopg2.connect(pg.dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(PG_DDL)
    n_total = 0
    try:
        for k, run in enumerate(int(r) for r in runs):
            name, table, info = make_dataset(rng, k, run, per_dataset, pool)
            cat.load(name, table)
            if conn is not None:
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO datasets VALUES (%s, %s, %s, %s, %s)",
                                (k, name, run, info["stream"], info["version"]))
                    cur.copy_expert("COPY events FROM STDIN WITH (FORMAT binary)",
                                    io.BytesIO(PG_HEADER + pg_rows(k, table) + PG_TRAILER))
            n_total += table.num_rows
            print(f"  loaded {k + 1}/{ndatasets} datasets ({n_total:,} events)", flush=True)
        del pool
        if conn is not None:
            with conn.cursor() as cur:
                for ddl in PG_INDEXES:
                    cur.execute(ddl)
                cur.execute("VACUUM ANALYZE events")
                cur.execute("VACUUM ANALYZE datasets")
        result = run_queries(args, work, cat, menu, conn, n_total, ndatasets)
    finally:
        if conn is not None:
            conn.close()
        if pg is not None:
            pg.stop()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                         "duckdb": __import__("duckdb").__version__, "loadavg_before": load_before,
                         "loadavg_after": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    Path(args.out).with_suffix(".md").write_text(table_md(result) + "\n")
    print(table_md(result))
    if conn is not None and not result["answers_equal"]:
        print("ANSWERS DIFFER", file=sys.stderr)
        return 1
    return 0


def run_queries(args, work: Path, cat, menu, conn, n_total: int, ndatasets: int) -> dict:
    sel_count = make_selection(datatype="AOD", triggers=list(TWO), lumi_blocks=[f"{LUMI[0]}-{LUMI[1]}"])
    sel_all = make_selection(datatype="AOD")
    sel_cut = make_selection(datatype="AOD", triggers=[CUT])
    from eventindex.tag.histogram import histogram
    from eventindex.tag.skim import skim

    root_out = work / "skim.root"

    def ours_hist():
        h = histogram(cat, sel_cut, HIST_COLUMN, HIST_BINS, ranges=[HIST_RANGE])
        j = h.to_json()
        return {"counts": j["counts"], "underflow": int(j["underflow"][0]), "overflow": int(j["overflow"][0])}

    def ours_skim():
        return skim(cat, sel_cut, attributes=SKIM_ATTRIBUTES, formats=["AOD"], output=str(root_out),
                    limit=SKIM_EVENTS, overwrite=True).events

    ours_fns = {"count": lambda: cat.count(sel_count),
                "overlaps": lambda: cat.overlaps(sel_all, triggers=list(TEN))[1].tolist(),
                "histogram": ours_hist, "skim": ours_skim}
    cat.warm()
    answers = {"ours": {}, "postgres": {}}
    ours = {"bytes_per_event": (du(work / "catalog") + (work / "metadata.sqlite").stat().st_size) / n_total}
    for key, fn in ours_fns.items():
        answers["ours"][key] = fn()  # warm
        ours[f"{KEY_NAMES[key]}"] = timed(fn, 3)
    answers["ours"]["skim"] = skim_check(cat, sel_cut, skim_rows_ours(root_out))
    result = {"events": n_total, "datasets": ndatasets, "ours": ours,
              "queries": {"two_triggers": list(TWO), "lumi_blocks": list(LUMI), "ten_triggers": list(TEN),
                          "cut": CUT, "histogram": {"column": HIST_COLUMN, "bins": HIST_BINS,
                                                     "range": list(HIST_RANGE)},
                          "skim": {"events": SKIM_EVENTS, "attributes": SKIM_ATTRIBUTES, "formats": ["AOD"]}}}
    if conn is not None:
        cur = conn.cursor()
        q = pg_queries(menu)
        csv_out = work / "skim.csv"

        def pg_skim():
            with open(csv_out, "w") as f:
                cur.copy_expert(q["skim"], f)

        def fetch(sql):
            cur.execute(sql)
            return cur.fetchall()

        pg_fns = {"count": lambda: fetch(q["count"])[0][0], "overlaps": lambda: symmetric(fetch(q["overlaps"])[0]),
                  "histogram": lambda: pg_histogram(fetch(q["histogram"])), "skim": pg_skim}
        cur.execute("SELECT pg_total_relation_size('events') + pg_total_relation_size('datasets')")
        postgres = {"bytes_per_event": cur.fetchone()[0] / n_total}
        for key, fn in pg_fns.items():
            answers["postgres"][key] = fn()
            postgres[KEY_NAMES[key]] = timed(fn, 3)
        answers["postgres"]["skim"] = skim_check(cat, sel_cut, skim_rows_pg(csv_out))
        plans = {}
        for key in ("count", "overlaps", "histogram"):
            cur.execute("EXPLAIN " + q[key])
            plans[key] = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT version()")
        result["postgres_version"] = cur.fetchone()[0]
        cur.close()
        result["postgres"] = postgres
        result["postgres_plans"] = plans
        result["postgres_schema"] = {"ddl": PG_DDL.strip(), "indexes": PG_INDEXES}
    result["answers"] = answers
    if conn is not None:
        a, b = answers["ours"], answers["postgres"]
        same = {k: a[k] == b[k] for k in ("count", "overlaps", "histogram")}
        same["skim"] = a["skim"]["rows"] == b["skim"]["rows"] and all(
            s["rows"] == s["distinct"] == s["valid"] for s in (a["skim"], b["skim"]))
        result["answers_same"] = same
        result["answers_equal"] = all(same.values())
    for side in answers:
        for key, value in answers[side].items():
            print(f"  {side:8s} {key:9s} {json.dumps(value) if key != 'overlaps' else value}")
    return result


KEY_NAMES = {"count": "count_two_triggers_lumi_s", "overlaps": "overlaps_10_triggers_s",
             "histogram": "histogram_1d_trigger_s", "skim": "skim_100k_events_s"}
ROWS = [("count_two_triggers_lumi_s", "count, 2 HLT chains + lumi blocks 10-60, s", "{:.4f}"),
        ("overlaps_10_triggers_s", "overlaps of 10 HLT chains (10x10), s", "{:.4f}"),
        ("histogram_1d_trigger_s", "histogram of bcid, 50 bins, 1 HLT cut, s", "{:.4f}"),
        ("skim_100k_events_s", "skim 100k events to a file, s", "{:.4f}"),
        ("bytes_per_event", "bytes/event on disk", "{:.1f}")]


def table_md(result: dict) -> str:
    pg = result.get("postgres")
    setup = ("PostgreSQL 15: HLT mask as 16 bigint columns, BRIN(lumi_block), B-tree(run, event), VACUUM ANALYZE"
             if pg else "PostgreSQL not run (--no-postgres)")
    lines = [f"{result['events']:,} events in {result['datasets']} datasets; {setup}; warm, best of 3", "",
             "| query | eventindex | PostgreSQL 15 | ratio |", "|---|---:|---:|---:|"]
    for key, label, fmt in ROWS:
        ours = result["ours"][key]
        theirs = pg[key] if pg else None
        if theirs is None:
            ratio = ""
        elif key == "bytes_per_event":
            ratio = f"1/{theirs / ours:.1f}" if theirs >= ours else f"{ours / theirs:.1f}x bigger"
        elif theirs >= ours:
            ratio = f"{theirs / ours:.1f}x faster"
        else:
            ratio = f"{ours / theirs:.1f}x slower"
        lines.append(f"| {label} | {fmt.format(ours)} | {fmt.format(theirs) if pg else 'not run'} | {ratio} |")
    n = result["events"]
    athenaeum = 3 + n / 100_000 + n / 25_000
    lines += ["", f"Athenaeum's published cost for one histogram at n = {n:,} (3 s + n/100k s + n/25k s): "
              f"{athenaeum:,.0f} s; ours {result['ours']['histogram_1d_trigger_s']:.3f} s "
              f"({athenaeum / result['ours']['histogram_1d_trigger_s']:,.0f}x below)"]
    if "answers_equal" in result:
        lines += ["", f"answers equal: {result['answers_equal']} ({result['answers_same']}); "
                  f"count {result['answers']['ours']['count']:,}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
