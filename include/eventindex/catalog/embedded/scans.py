"""Scanning the Parquet files of the embedded store with DuckDB: the SQL for a selection (values only ever as
bound parameters), trigger bits, GUIDs as text, and a connection per query so that concurrent readers never share
one.
"""

from __future__ import annotations

import os
from typing import Iterator

import duckdb
import pyarrow as pa

from ..selection import row_filters
from ..records import TRIGGER_COLUMNS, is_ref_column
from ..selection import Selection


def parquet_source(paths: list[str]) -> str:
    """The FROM clause reading the given dataset files as one table (stages a file lacks read as NULL)."""
    listing = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return f"read_parquet([{listing}], hive_partitioning = true, union_by_name = true)"


def where_sql(sel: Selection, rows: list[dict], bits) -> tuple[str, list]:
    """The WHERE clause of ``sel`` over the files of ``rows`` and its parameters."""
    clauses, params = row_filters(sel, rows, bits, lambda name: f'"{name}"', trigger_expr)
    return " AND ".join(["TRUE", *clauses]), params


def trigger_expr(where: dict[int, tuple[str, int]]) -> tuple[str, list]:
    """SQL for 'this trigger passed' over events of several menus (bit positions differ per SMK)."""
    parts, params = [], []
    for smk, (level, bit) in sorted(where.items()):
        # DuckDB's BIT type numbers bits from the most significant bit of the first byte
        parts.append(f"(smk = ? AND get_bit(CAST({TRIGGER_COLUMNS[level]} AS BIT), ?) = 1)")
        params += [smk, (bit // 8) * 8 + 7 - bit % 8]
    return " OR ".join(parts), params


def quote_column(name: str, stages: set[str]) -> str:
    """A selected column in SQL: NULL for a stage none of the files has, GUIDs as the text POOL writes."""
    if is_ref_column(name) and name.rpartition("_")[0] not in stages:
        return f'NULL AS "{name}"'
    if name.endswith("_guid"):  # 16 bytes -> the upper-case UUID text POOL writes
        h = f'hex("{name}")'
        parts = "|| '-' ||".join(f"substr({h}, {a}, {n})" for a, n in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)))
        return f'({parts}) AS "{name}"'
    return f'"{name}"'


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh connection, at most two threads (the store shares the machine with the services that call it)."""
    con = duckdb.connect()
    con.execute(f"SET threads TO {min(2, os.cpu_count() or 1)}")
    return con


def run(sql: str, params: list):
    """Execute one query on a fresh connection; the result holds the connection until it is read."""
    return connect().execute(sql, params)


def batches(reader, con) -> Iterator[pa.RecordBatch]:
    """The batches of ``reader``, closing its connection when the caller stops reading."""
    try:
        yield from reader
    finally:
        con.close()
