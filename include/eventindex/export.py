"""Write the events passing a selection to a file a user can open elsewhere (CSV, Parquet or JSON).

The file appears whole or not at all: it is written under ``NAME.part`` and renamed at the end, so a reader never
sees half a selection, and a failure (an unknown column, a full disk) leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from .errors import BadInput

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
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt = output_format(path)
    path = Path(path)
    total = catalog.count(selection) if progress else 0
    tmp = path.with_name(path.name + ".part")
    written, writer, json_first = 0, None, True
    fh = open(tmp, "w") if fmt == "json" else None
    try:
        for batch in catalog.select(selection, columns):
            batch = _printable(batch) if fmt != "parquet" else batch
            if fmt == "parquet":
                writer = writer or pq.ParquetWriter(str(tmp), batch.schema, compression="zstd")
                writer.write_batch(batch)
            elif fmt == "csv":
                writer = writer or pacsv.CSVWriter(str(tmp), batch.schema)
                writer.write_batch(batch)
            else:
                for row in batch.to_pylist():
                    fh.write(("[" if json_first else ",\n") + json.dumps(row))
                    json_first = False
            written += batch.num_rows
            if progress:
                progress(written, total)
        if fmt == "json":
            fh.write("[]" if json_first else "]\n")
        if writer is None and fmt != "json":  # nothing selected: still a valid, empty file
            empty = pa.table({c: pa.array([], pa.string()) for c in (columns or ["dataset"])})
            pq.write_table(empty, str(tmp)) if fmt == "parquet" else pacsv.write_csv(empty, str(tmp))
    except BaseException:
        _close(writer, fh)
        tmp.unlink(missing_ok=True)
        raise
    _close(writer, fh)
    os.replace(tmp, path)
    return written


def _close(writer, fh) -> None:
    if writer is not None:
        writer.close()
    if fh is not None and not fh.closed:
        fh.close()


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
