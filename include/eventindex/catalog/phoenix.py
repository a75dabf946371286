"""The production event store: HBase through Apache Phoenix (``phoenixdb``), behind the same API as the embedded one.

Row key ``(RUN_NUMBER, EVENT_NUMBER, LOAD_KEY)``: a lookup by (run, event) is a short range scan that needs no
dataset name; salting spreads the runs being written over the region servers. Each load writes its rows under a
new ``LOAD_KEY`` (a Phoenix sequence) and then switches the manifest in the metadata DB, so a dataset version
becomes visible whole or not at all; the replaced version's rows are deleted afterwards. Queries only ever read
rows whose LOAD_KEY the manifest names. References to each processing stage are columns ``<STAGE>_GUID``
(BINARY(16)) and ``<STAGE>_OID``, added when a stage first appears.

No Phoenix server can run on the development machine: the contract tests run against this backend when
``EVENTINDEX_PHOENIX_URL`` names a query server and are reported as not run otherwise.
"""

from __future__ import annotations

import time
from typing import Iterator

import numpy as np
import pyarrow as pa

from ..guid import format_guid
from ..schema import L1_MASKS, HLT_MASKS, stage_key
from ..trigger import masks_from_arrow
from .base import CatalogBase
from .selection import row_filters
from .records import TRIGGER_COLUMNS, LoadResult, duplicate_table, is_ref_column
from .selection import BadSelection, Selection, check_pairs, event_id, make_selection

UPSERT_BATCH = 2000
LOOKUP_CHUNK = 500

EVENT_COLUMNS = [
    ("RUN_NUMBER", "UNSIGNED_INT NOT NULL"), ("EVENT_NUMBER", "BIGINT NOT NULL"), ("LOAD_KEY", "BIGINT NOT NULL"),
    ("LUMI_BLOCK", "UNSIGNED_INT"), ("BCID", "UNSIGNED_SMALLINT"), ("TS", "UNSIGNED_INT"),
    ("TS_NS", "UNSIGNED_INT"), ("STREAM", "VARCHAR"), ("SMK", "UNSIGNED_INT"), ("L1PSK", "UNSIGNED_INT"),
    ("HLTPSK", "UNSIGNED_INT"),
    *[(m.upper(), "BINARY(64)") for m in L1_MASKS],
    *[(m.upper(), "VARBINARY") for m in HLT_MASKS],  # the HLT width is per dataset (schema.hlt_width)
    ("MC_CHANNEL_NUMBER", "UNSIGNED_INT"), ("MC_EVENT_WEIGHT", "FLOAT"),
]
SOURCE_OF = {"TS": "timestamp", "TS_NS": "timestamp_ns"}


def ddl(table: str = "EI_EVENTS", salt_buckets: int = 16) -> str:
    cols = ",\n  ".join(f"{n} {t}" for n, t in EVENT_COLUMNS)
    return (f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols},\n"
            f"  CONSTRAINT PK PRIMARY KEY (RUN_NUMBER, EVENT_NUMBER, LOAD_KEY)\n)"
            f" SALT_BUCKETS = {salt_buckets}, COMPRESSION = 'SNAPPY', DATA_BLOCK_ENCODING = 'FAST_DIFF';\n"
            f"CREATE INDEX IF NOT EXISTS {table}_BY_LOAD ON {table} (LOAD_KEY);\n"
            f"CREATE SEQUENCE IF NOT EXISTS {table}_LOAD_SEQ;\n")


class PhoenixCatalog(CatalogBase):
    backend = "phoenix"

    def __init__(self, url: str, metadata_url: str, table_prefix: str = "EI", *, auth: str | None = None,
                 user: str | None = None, password: str | None = None, ca: str | None = None):
        """``auth``: SPNEGO (Kerberos), BASIC or DIGEST; ``user``/``password`` for the last two; ``ca``: the CA
        bundle that signed the query server's certificate. ``open_catalog`` passes them from the settings."""
        import phoenixdb

        options = {}
        if auth:
            options["authentication"] = auth
        if user:
            options["avatica_user"] = user
            options["avatica_password"] = password or ""
        if ca:
            options["verify"] = ca
        self.conn = phoenixdb.connect(url, autocommit=True, **options)
        self.table = f"{table_prefix}_EVENTS"
        with self.conn.cursor() as cur:
            for statement in filter(None, (s.strip() for s in ddl(self.table).split(";"))):
                cur.execute(statement)
        self._stages: set[str] = set()
        super().__init__(metadata_url)

    # --- loading --------------------------------------------------------------------------------------------

    def _ensure_stage(self, stage: str) -> None:
        if stage in self._stages:
            return
        with self.conn.cursor() as cur:
            cur.execute(f"ALTER TABLE {self.table} ADD IF NOT EXISTS {stage}_GUID BINARY(16), {stage}_OID BIGINT")
        self._stages.add(stage)

    def load(self, dataset: str, records, *, files_meta: dict | None = None, source: str | None = None) -> LoadResult:
        started = time.perf_counter()
        p = self._prepare(dataset, records, files_meta, source=source)
        for stage in p.stages:
            self._ensure_stage(stage)
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT NEXT VALUE FOR {self.table}_LOAD_SEQ")
            load_key = int(cur.fetchone()[0])
            names = [n for n, _ in EVENT_COLUMNS] + [f"{s}_{k}" for s in p.stages for k in ("GUID", "OID")]
            sql = f"UPSERT INTO {self.table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            rows = upsert_rows(p.table, p.stages, load_key)
            for start in range(0, len(rows), UPSERT_BATCH):
                cur.executemany(sql, rows[start:start + UPSERT_BATCH])
        replaced = self._commit(p, str(load_key), f"phoenix:{self.table}/{load_key}")
        if replaced:
            with self.conn.cursor() as cur:
                cur.execute(f"DELETE FROM {self.table} WHERE LOAD_KEY = ?", [int(replaced)])
        n = p.table.num_rows
        return LoadResult(p.ds.name, str(load_key), n, p.row["unique_events"], n - p.row["unique_events"],
                          len(p.file_rows), replaced, time.perf_counter() - started)

    # --- queries --------------------------------------------------------------------------------------------

    def _live(self, rows: list[dict]) -> dict[int, dict]:
        return {int(r["load_id"]): r for r in rows}

    def lookup(self, run: int, event: int, *, project=None, datatype=None, version=None) -> list[dict]:
        run, event = event_id(run, event)
        rows = self._live(self._candidates(make_selection(project=project, datatype=datatype, version=version)))
        stages = sorted({s for r in rows.values() for s in r["stages"]}, key=stage_key)
        cols = ", ".join(["LOAD_KEY", "LUMI_BLOCK"] + [f"{s}_{k}" for s in stages for k in ("GUID", "OID")])
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT {cols} FROM {self.table} WHERE RUN_NUMBER = ? AND EVENT_NUMBER = ?", [run, event])
            found = cur.fetchall()
        out = []
        for rec in found:
            r = rows.get(int(rec[0]))
            if r is None:
                continue
            refs = {}
            for k, s in enumerate(stages):
                guid, oid = rec[2 + 2 * k], rec[3 + 2 * k]
                if guid is not None and s in r["stages"]:
                    refs[s] = {"guid": format_guid(bytes(guid)), "oid": int(oid)}
            out.append({"dataset": r["name"], "project": r["project"], "datatype": r["datatype"],
                        "version": r["version"], "stream": r["stream"], "run_number": run, "event_number": event,
                        "lumi_block": int(rec[1]), "refs": refs})
        return sorted(out, key=lambda m: m["dataset"])

    def lookup_many(self, pairs, *, project=None, datatype=None, version=None) -> pa.Table:
        pairs = check_pairs(pairs)
        rows = self._live(self._candidates(make_selection(project=project, datatype=datatype, version=version)))
        stages = sorted({s for r in rows.values() for s in r["stages"]}, key=stage_key)
        cols = ["RUN_NUMBER", "EVENT_NUMBER", "LOAD_KEY", "LUMI_BLOCK"] + \
            [f"{s}_{k}" for s in stages for k in ("GUID", "OID")]
        index = {}
        for i, (r, e) in enumerate(pairs.tolist()):
            index.setdefault((r, e), []).append(i)
        out = {k: [] for k in ["request", "dataset", "datatype", "version", "run_number", "event_number",
                               "lumi_block"] + [f"{s}_{k}" for s in stages for k in ("guid", "oid")]}
        keys = list(index)
        with self.conn.cursor() as cur:
            for start in range(0, len(keys), LOOKUP_CHUNK):
                chunk = keys[start:start + LOOKUP_CHUNK]
                cur.execute(f"SELECT {', '.join(cols)} FROM {self.table} WHERE (RUN_NUMBER, EVENT_NUMBER) IN "
                            f"({', '.join('(?, ?)' for _ in chunk)})", [v for pair in chunk for v in pair])
                for rec in cur.fetchall():
                    r = rows.get(int(rec[2]))
                    if r is None:
                        continue
                    for req in index[(int(rec[0]), int(rec[1]))]:
                        out["request"].append(req)
                        out["dataset"].append(r["name"])
                        out["datatype"].append(r["datatype"])
                        out["version"].append(r["version"])
                        out["run_number"].append(int(rec[0]))
                        out["event_number"].append(int(rec[1]))
                        out["lumi_block"].append(int(rec[3]))
                        for k, s in enumerate(stages):
                            g, o = rec[4 + 2 * k], rec[5 + 2 * k]
                            ok = g is not None and s in r["stages"]
                            out[f"{s}_guid"].append(format_guid(bytes(g)) if ok else None)
                            out[f"{s}_oid"].append(int(o) if ok else None)
        types = {"request": pa.int64(), "run_number": pa.uint32(), "event_number": pa.uint64(),
                 "lumi_block": pa.uint32()}
        return pa.table({k: pa.array(v, types.get(k, pa.uint64() if k.endswith("_oid") else pa.string()))
                         for k, v in out.items()})

    def _where(self, sel: Selection, rows: list[dict], bits) -> tuple[str, list]:
        keys = [int(r["load_id"]) for r in rows]
        columns = {"timestamp": "TS"}
        clauses, params = row_filters(sel, rows, bits, lambda name: columns.get(name, name.upper()), _trigger_expr)
        return " AND ".join([f"LOAD_KEY IN ({', '.join('?' for _ in keys)})", *clauses]), [*keys, *params]

    def _scan_count(self, sel: Selection, rows: list[dict], bits) -> int:
        sql, params = self._where(sel, rows, bits)
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {self.table} WHERE {sql}", params)
            return int(cur.fetchone()[0])

    def select(self, sel: Selection, columns: list[str] | None = None,
               batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        rows = self._candidates(sel)
        columns = list(columns or ["dataset", "run_number", "event_number", "lumi_block", "stream"])
        plain = {n.lower() for n, _ in EVENT_COLUMNS} | {"timestamp", "timestamp_ns", "dataset"}
        bad = [c for c in columns if c not in plain and not is_ref_column(c)]
        if bad:
            raise BadSelection(f"unknown column(s) {', '.join(map(repr, bad))}")
        if not rows:
            return iter(())
        bits = self._trigger_bits(sel.trigger_names, rows) if sel.triggers else {}
        sql, params = self._where(sel, rows, bits)
        stages = {s for r in rows for s in r["stages"]}
        names = {r["load_id"]: r["name"] for r in rows}
        wanted = ["LOAD_KEY"] + [
            {"timestamp": "TS", "timestamp_ns": "TS_NS"}.get(c, c.upper()) for c in columns if c != "dataset"
            and (not is_ref_column(c) or c.rpartition("_")[0] in stages)]
        return self._batches(f"SELECT {', '.join(wanted)} FROM {self.table} WHERE {sql}", params, columns,
                             wanted, names, batch_size)

    def _batches(self, sql, params, columns, wanted, names, batch_size):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            while True:
                chunk = cur.fetchmany(batch_size)
                if not chunk:
                    return
                by_name = dict(zip(wanted, zip(*chunk)))
                out = {}
                for c in columns:
                    key = {"timestamp": "TS", "timestamp_ns": "TS_NS"}.get(c, c.upper())
                    if c == "dataset":
                        out[c] = pa.array([names[str(k)] for k in by_name["LOAD_KEY"]], pa.string())
                    elif key not in by_name:
                        out[c] = pa.nulls(len(chunk))
                    elif c.endswith("_guid"):
                        out[c] = pa.array([format_guid(bytes(g)) if g is not None else None for g in by_name[key]],
                                          pa.string())
                    else:
                        out[c] = pa.array(list(by_name[key]))
                yield pa.RecordBatch.from_pydict(out)

    def _keys(self, row: dict) -> tuple[np.ndarray, np.ndarray]:
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT RUN_NUMBER, EVENT_NUMBER FROM {self.table} WHERE LOAD_KEY = ? "
                        "ORDER BY RUN_NUMBER, EVENT_NUMBER", [int(row["load_id"])])
            data = cur.fetchall()
        arr = np.array(data, dtype=np.uint64).reshape(-1, 2)
        return arr[:, 0].astype(np.uint32), arr[:, 1]

    def overlaps(self, sel: Selection, *, streams=None, triggers=None):
        if bool(streams) == bool(triggers):
            raise BadSelection("give either streams or triggers to compare")
        if streams:
            sets = []
            for s in streams:
                keys = [self._keys(r) for r in self._candidates(sel.with_(stream=s))]
                sets.append({(int(a), int(b)) for run, evt in keys for a, b in zip(run, evt)})
            m = np.array([[len(a & b) for b in sets] for a in sets], dtype=np.int64)
            return list(streams), m
        triggers = list(dict.fromkeys(triggers))
        make_selection(triggers=triggers)
        rows = self._candidates(sel)
        m = np.zeros((len(triggers), len(triggers)), dtype=np.int64)
        for i, a in enumerate(triggers):
            for j, b in enumerate(triggers[i:], start=i):
                m[i, j] = m[j, i] = self.count(sel.with_(triggers=tuple(dict.fromkeys((*sel.triggers, a, b))))) \
                    if rows else 0
        return triggers, m

    def duplicates(self, dataset: str) -> pa.Table:
        return duplicate_table(*self._keys(self._row(dataset)))

    def missing(self, dataset: str, reference: str) -> pa.Table:
        run_a, evt_a = self._keys(self._row(dataset))
        run_b, evt_b = self._keys(self._row(reference))
        have = set(zip(run_b.tolist(), evt_b.tolist()))
        lost = sorted({(r, e) for r, e in zip(run_a.tolist(), evt_a.tolist()) if (r, e) not in have})
        return pa.table({"run_number": pa.array([r for r, _ in lost], pa.uint32()),
                         "event_number": pa.array([e for _, e in lost], pa.uint64())})


def _trigger_expr(where: dict[int, tuple[str, int]]) -> tuple[str, list]:
    parts, params = [], []
    for smk, (level, bit) in sorted(where.items()):
        parts.append(f"(SMK = ? AND GET_BIT({TRIGGER_COLUMNS[level].upper()}, ?) = 1)")
        params += [smk, bit]
    return " OR ".join(parts), params


def upsert_rows(table: pa.Table, stages: list[str], load_key: int) -> list[list]:
    """The UPSERT parameter rows (Phoenix takes Python values; masks and GUIDs as bytes)."""
    n = table.num_rows
    cols = []
    for name, _ in EVENT_COLUMNS:
        if name == "LOAD_KEY":
            cols.append([load_key] * n)
        elif name.lower() in (*L1_MASKS, *HLT_MASKS):
            m = masks_from_arrow(table.column(name.lower()))
            cols.append([row.tobytes() for row in m])
        elif name == "STREAM":
            cols.append(table.column("stream").cast(pa.string()).to_pylist())
        else:
            cols.append(table.column(SOURCE_OF.get(name, name.lower())).to_pylist())
    for s in stages:
        g = masks_from_arrow(table.column(f"{s}_guid"))
        cols.append([row.tobytes() for row in g])
        cols.append(table.column(f"{s}_oid").to_pylist())
    return [list(r) for r in zip(*cols)]
