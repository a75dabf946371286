"""Write the events passing a selection to a file a user can open elsewhere (CSV, Parquet or JSON).

The file appears whole or not at all: it is written under ``NAME.part`` and renamed at the end, so a reader never
sees half a selection, and a failure (an unknown column, a full disk) leaves nothing behind. The same encoding
streams a selection to a web client chunk by chunk (``stream_selection``).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Callable, Iterator

from .errors import BadInput, BadRequest

FORMATS = ("csv", "parquet", "json")


def output_format(path: str | Path) -> str:
    """The format named by the file's suffix; refused before any query runs, so a typo costs nothing."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise BadInput(f"output {str(path)!r}: the name must end in .csv, .parquet or .json")
    if path.is_dir():
        raise BadInput(f"output {path} is a folder: name a file in it, e.g. {path / ('events.' + fmt)}")
    parent = path.parent
    if not parent.is_dir():
        raise BadInput(f"output folder {parent} does not exist (create it first)")
    return fmt


def write_selection(catalog, selection, columns: list[str] | None, path: str | Path,
                    progress: Callable[[int, int], None] | None = None) -> int:
    """Write the selected events; returns how many. ``progress(written, total)`` is called after each batch."""
    fmt = output_format(path)
    path = Path(path)
    total = catalog.count(selection) if progress else 0
    tmp = path.with_name(path.name + ".part")
    counted = _Counted(catalog.select(selection, columns), None,
                       (lambda n: progress(n, total)) if progress else None)
    try:
        with open(tmp, "wb") as fh:
            for chunk in encode(counted, fmt, columns):
                fh.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return counted.rows


def stream_selection(catalog, selection, columns: list[str] | None, fmt: str,
                     limit: int | None = None) -> Iterator[bytes]:
    """The selected events as chunks of a CSV, JSON (one array) or Parquet file, for a response streamed to a
    client; at most ``limit`` rows (None: all). The format, the limit and the columns are checked at the call, before
    the first chunk is asked for."""
    fmt = fmt.lower() if isinstance(fmt, str) else fmt
    if fmt not in FORMATS:
        raise BadRequest(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise BadRequest(f"limit {limit!r} is not a whole number >= 0")
    return encode(_Counted(catalog.select(selection, columns), limit), fmt, columns)


class _Counted:
    """Batches passed on and counted, cut at ``limit`` rows; ``after(rows so far)`` once each batch is used."""

    def __init__(self, batches, limit: int | None = None, after: Callable[[int], None] | None = None):
        self.batches, self.limit, self.after, self.rows = batches, limit, after, 0

    def __iter__(self):
        try:
            for batch in self.batches:
                if self.limit is not None and self.rows + batch.num_rows > self.limit:
                    batch = batch.slice(0, self.limit - self.rows)
                if batch.num_rows or self.limit is None:
                    yield batch
                self.rows += batch.num_rows
                if self.after:
                    self.after(self.rows)
                if self.limit is not None and self.rows >= self.limit:
                    break
        finally:
            close = getattr(self.batches, "close", None)
            if close:  # a query stopped early releases its connection now
                close()


class _Sink(io.RawIOBase):
    """A write-only file that hands out what was written so far and forgets it, but keeps counting its position
    (Parquet records offsets in its footer)."""

    def __init__(self):
        self.parts, self.pos = [], 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def encode(batches, fmt: str, columns: list[str] | None) -> Iterator[bytes]:
    """Record batches as the bytes of one CSV, Parquet or JSON (array) file, a chunk per batch; nothing selected
    still makes a valid, empty file."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    sink, writer, first = _Sink(), None, True
    try:
        for batch in batches:
            if fmt == "parquet":
                writer = writer or pq.ParquetWriter(sink, batch.schema, compression="zstd")
                writer.write_batch(batch)
            elif fmt == "csv":
                batch = _printable(batch)
                writer = writer or pacsv.CSVWriter(sink, batch.schema)
                writer.write_batch(batch)
            else:
                rows = ",\n".join(json.dumps(row) for row in _printable(batch).to_pylist())
                if rows:
                    sink.write((("[" if first else ",\n") + rows).encode())
                    first = False
            chunk = sink.take()
            if chunk:
                yield chunk
        if fmt == "json":
            sink.write(b"[]" if first else b"]\n")
        elif writer is None:
            empty = pa.table({c: pa.array([], pa.string()) for c in (columns or ["dataset"])})
            pq.write_table(empty, sink) if fmt == "parquet" else pacsv.write_csv(empty, sink)
        else:
            writer.close()
            writer = None
        yield sink.take()
    finally:
        if writer is not None:
            writer.close()


def _printable(batch):
    """Masks as hex text for CSV and JSON, which have no bytes type."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for name, col in zip(batch.schema.names, batch.columns):
        if pa.types.is_binary(col.type) or pa.types.is_fixed_size_binary(col.type):
            col = pa.array([None if v is None else v.hex() for v in col.to_pylist()], pa.string())
        elif pa.types.is_dictionary(col.type):
            col = pc.cast(col, pa.string())
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)
