"""Skims: the events passing a selection, with the attributes asked for and their references in the formats asked
for, as a ROOT file an analysis reads with uproot or ROOT (Athenaeum's extraction of events by query).

The file holds one TTree ``events``: a branch per attribute (the record's own type; trigger masks as arrays of
64-bit words, as in the data files; ``stream`` and ``dataset`` as strings) and, for every format, the event's
reference there: ``<FORMAT>_guid`` (the file's GUID, upper-case text as POOL writes it) and ``<FORMAT>_entry`` (the
entry in that file). The records come from the catalogue as Arrow batches and go to the tree batch by batch, so a
big skim never sits in memory. The file appears whole or not at all: it is written under a temporary name and
renamed (or uploaded, for an object store) at the end; a failure leaves nothing.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import BadInput, BadRequest
from ..schema import BASE_FIELDS, HLT_BITS, HLT_MASKS, STAGE_RE, stage_key

TREE = "events"
DEFAULT_ATTRIBUTES = ("run_number", "event_number", "lumi_block")
# attribute -> the branch type; masks are fixed-size arrays of 64-bit words (as in the data files)
_STRINGS = ("dataset", "stream")
ATTRIBUTES: dict[str, object] = {
    **{f.name: ("<u8", (f.type.byte_width // 8,)) if pa.types.is_fixed_size_binary(f.type) else
       "string" if f.name in _STRINGS else np.dtype(f.type.to_pandas_dtype()).newbyteorder("<").str
       for f in BASE_FIELDS},
    "dataset": "string",
}
# the selection's options by their long name on the command line (`eventindex skim --type AOD ...`)
SELECTION_OPTIONS = ("project", "run", "lumi", "stream", "type", "version", "dataset", "guid", "trigger", "since",
                     "until", "include_obsolete", "bcid", "period")


@dataclass
class SkimResult:
    events: int
    output: str
    bytes: int
    selection: dict
    attributes: list[str]
    formats: list[str]
    seconds: float
    command: str

    def to_dict(self) -> dict:
        return asdict(self)


# --- the selection as options ---------------------------------------------------------------------------------


def _ranges(ranges) -> list[str]:
    return [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges]


def selection_options(sel) -> dict:
    """The selection as the options of `eventindex skim` that spell it (long names, only those that are set)."""
    opts = {"project": sel.project, "run": _ranges(sel.runs), "lumi": _ranges(sel.lumi_blocks),
            "stream": sel.stream, "type": sel.datatype, "version": sel.version, "dataset": sel.dataset,
            "guid": sel.guid, "trigger": list(sel.triggers), "since": sel.time_range[0] if sel.time_range else None,
            "until": sel.time_range[1] if sel.time_range else None, "include_obsolete": sel.include_obsolete,
            "bcid": _ranges(sel.bcids), "period": list(sel.periods)}
    return {k: v for k, v in opts.items() if v not in (None, [], False)}


def selection_of(options: dict):
    """The checked Selection of options named as on the command line (a DAG run's params, a summary's
    ``selection``); empty values count as not given."""
    from ..catalog import make_selection

    unknown = sorted(set(options) - set(SELECTION_OPTIONS))
    if unknown:
        raise BadRequest(f"unknown selection option(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(SELECTION_OPTIONS)}")
    o = {k: v for k, v in options.items() if v not in (None, "", [], ())}
    since, until = o.get("since"), o.get("until")
    time_range = None if since is None and until is None else (int(since or 0), int(until or 2**32 - 1))
    return make_selection(project=o.get("project"), runs=o.get("run", ()), lumi_blocks=o.get("lumi", ()),
                          stream=o.get("stream"), datatype=o.get("type"), version=o.get("version"),
                          dataset=o.get("dataset"), guid=o.get("guid"), triggers=o.get("trigger", ()),
                          time_range=time_range, include_obsolete=bool(o.get("include_obsolete")),
                          period=o.get("period", ()), bcid=o.get("bcid", ()))


def reproduce_command(sel, attributes: list[str], formats: list[str], output: str, limit: int | None = None,
                      overwrite: bool = False) -> str:
    """The `eventindex skim` command that makes the same skim again: every effective option spelled out."""
    words = ["eventindex", "skim"]
    for name, value in selection_options(sel).items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            words += [flag, ",".join(value)]
        else:
            words += [flag, str(value)]
    words += ["--attributes", ",".join(attributes), "--formats", ",".join(formats), "--output", output]
    if limit is not None:
        words += ["--limit", str(limit)]
    if overwrite:
        words.append("--overwrite")
    return shlex.join(words)


# --- checks ---------------------------------------------------------------------------------------------------


def check_attributes(attributes) -> list[str]:
    attributes = list(attributes or DEFAULT_ATTRIBUTES)
    bad = [a for a in attributes if a not in ATTRIBUTES]
    if bad:
        raise BadRequest(f"unknown attribute(s) {', '.join(map(repr, bad))}; choose from {', '.join(ATTRIBUTES)} "
                         f"(references: --formats)")
    twice = sorted({a for a in attributes if attributes.count(a) > 1})
    if twice:
        raise BadRequest(f"attribute(s) {', '.join(twice)} asked for twice")
    return attributes


def check_formats(catalog, sel, formats) -> list[str]:
    """The formats whose references the skim carries: those asked for (default: the format of the records the
    selection reads, which must be one). Each must be a reference every dataset read carries."""
    rows = catalog.matching(sel)
    types = sorted({r["datatype"] for r in rows})
    if sel.datatype is None and len(types) > 1:
        raise BadRequest(f"the selection reads records of several formats ({', '.join(types)}): give --type, "
                         f"so that each event is written once")
    formats = list(formats or [sel.datatype or (types[0] if types else None)])
    if formats == [None]:
        raise BadRequest("give --type (or --formats): the selection reads no dataset to take the format from")
    bad = [f for f in formats if not isinstance(f, str) or not STAGE_RE.match(f)]
    if bad:
        raise BadRequest(f"format(s) {', '.join(map(repr, bad))} are not formats like RAW, AOD or DAOD_PHYS")
    if rows:
        common = set.intersection(*(set(_stages(r)) for r in rows))
        missing = [f for f in formats if f not in common]
        if missing:
            raise BadRequest(f"the records read carry no reference to {', '.join(missing)}; choose from "
                             f"{', '.join(sorted(common, key=stage_key))}")
    return list(dict.fromkeys(formats))


def _stages(row) -> list[str]:
    stages = row["stages"]
    if isinstance(stages, str):
        import json

        stages = json.loads(stages)
    return stages


def check_output(output: str, overwrite: bool) -> None:
    """A ``.root`` name in an existing folder (or an object-store URI); an existing file only with ``overwrite``."""
    name = posixpath.basename(output.partition("?")[0]) if "://" in output else Path(output).name
    if not name.endswith(".root") or name == ".root":
        raise BadRequest(f"output {output!r}: the name must end in .root")
    if "://" in output:
        import pyarrow.fs as pafs

        from ..staging import open_staging

        fs, path = open_staging(output)
        exists = fs.get_file_info(path).type != pafs.FileType.NotFound
    else:
        path = Path(output)
        if path.is_dir():
            raise BadInput(f"output {path} is a folder: name a file in it, e.g. {path / 'skim.root'}")
        if not path.parent.is_dir():
            raise BadInput(f"output folder {path.parent} does not exist (create it first)")
        exists = path.exists()
    if exists and not overwrite:
        raise BadRequest(f"output {output} exists: give --overwrite to replace it")


# --- writing --------------------------------------------------------------------------------------------------


def skim(catalog, sel, attributes=None, formats=None, output: str = "skim.root", limit: int | None = None,
         overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> SkimResult:
    """Write the events passing ``sel`` to the ROOT file ``output`` (a path or an object-store URI): the
    ``attributes`` (default run, event, lumi block) and the references in ``formats`` (default: the selection's
    format); at most ``limit`` events. ``progress(written, total)`` is called after each batch. Everything is
    checked before the first event is read, and a failure leaves no file."""
    started = time.monotonic()
    attributes = check_attributes(attributes)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise BadRequest(f"limit {limit!r} is not a whole number >= 0")
    output = str(output)
    check_output(output, overwrite)
    formats = check_formats(catalog, sel, formats)
    columns = list(dict.fromkeys([*attributes, *(f"{f}_{k}" for f in formats for k in ("guid", "oid"))]))
    total = min(catalog.count(sel), limit if limit is not None else 2**63) if progress else 0
    branches = {a: ATTRIBUTES[a] for a in attributes}
    branches.update({a: ("<u8", (_hlt_nbytes(catalog, sel) // 8,)) for a in attributes if a in HLT_MASKS})
    batches = catalog.select(sel, columns)
    branches.update({n: t for f in formats for n, t in ((f"{f}_guid", "string"), (f"{f}_entry", "<i8"))})
    if "://" in output:
        events = _to_object_store(batches, branches, formats, output, limit, progress, total)
    else:
        events = _to_local(batches, branches, formats, Path(output), limit, progress, total)
    return SkimResult(events=events, output=_uri(output), bytes=_size(output), selection=selection_options(sel),
                      attributes=attributes, formats=formats, seconds=round(time.monotonic() - started, 3),
                      command=reproduce_command(sel, attributes, formats, _uri(output) if "://" in output else output,
                                              limit, overwrite))


def _hlt_nbytes(catalog, sel) -> int:
    """The HLT mask width a skim's branches get: the widest menu of the selected datasets (``schema.hlt_width``)."""
    menus = catalog.menus()
    smks = {s for row in catalog.matching(sel) for s in row["smks"]}
    return max([HLT_BITS // 8] + [menus[s].hlt_nbytes for s in smks if s in menus])


def _to_local(batches, branches, formats, path: Path, limit, progress, total) -> int:
    tmp = path.with_name(f".{path.name}.part")
    try:
        events = _write_tree(tmp, batches, branches, formats, limit, progress, total)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return events


def _to_object_store(batches, branches, formats, uri, limit, progress, total) -> int:
    """uproot writes a seekable local file; it goes to the object store whole when complete."""
    from ..staging import atomic_output, open_staging

    fs, path = open_staging(uri)
    with tempfile.TemporaryDirectory(prefix="eventindex-skim-") as scratch:
        local = Path(scratch) / "skim.root"
        events = _write_tree(local, batches, branches, formats, limit, progress, total)
        with open(local, "rb") as src, atomic_output(fs, path) as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
    return events


def _write_tree(path: Path, batches, branches: dict, formats, limit, progress, total) -> int:
    import uproot

    written = 0
    with uproot.recreate(path, compression=uproot.ZSTD(1)) as out:
        out.mktree(TREE, branches, title="EventIndex skim")
        tree = out[TREE]
        for batch in _cut(batches, limit):
            if batch.num_rows:
                tree.extend({name: _branch(batch, name, formats, branches) for name in branches})
                written += batch.num_rows
            if progress:
                progress(written, total)
    return written


def _cut(batches, limit) -> Iterator[pa.RecordBatch]:
    """The batches, cut at ``limit`` rows; the query is closed when done or stopped early."""
    seen = 0
    try:
        for batch in batches:
            if limit is not None and seen + batch.num_rows > limit:
                batch = batch.slice(0, limit - seen)
            seen += batch.num_rows
            yield batch
            if limit is not None and seen >= limit:
                break
    finally:
        close = getattr(batches, "close", None)
        if close:
            close()


def _branch(batch: pa.RecordBatch, name: str, formats, branches: dict) -> np.ndarray:
    """One branch's values for a batch, vectorized (no loop per event). A reference a record lacks: GUID "" and
    entry -1."""
    stage, _, suffix = name.rpartition("_")
    if stage in formats and suffix == "entry":
        return pc.fill_null(batch.column(f"{stage}_oid").cast(pa.int64()), -1).to_numpy(zero_copy_only=False)
    col = batch.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    branch_type = "string" if stage in formats and suffix == "guid" else branches[name]
    if branch_type == "string":  # as an awkward array over the Arrow buffers: no Python string per event
        import awkward as ak

        text = pc.fill_null(col.cast(pa.string()), "")
        text = pa.Array.from_buffers(pa.string(), len(text), [None, *text.buffers()[1:]], offset=text.offset)
        return ak.from_arrow(text, highlevel=True)  # without a validity bitmap: a plain list of strings
    if isinstance(branch_type, tuple):  # a trigger mask: bytes -> little-endian 64-bit words
        words = branch_type[1][0]
        if not pa.types.is_fixed_size_binary(col.type):
            col = col.cast(pa.binary(words * 8))
        have = col.type.byte_width  # an HLT mask's width is per dataset: padded (or cut) to the branch's
        data = np.frombuffer(col.buffers()[1], np.uint8)[col.offset * have:(col.offset + len(col)) * have]
        if have == words * 8:
            return data.view("<u8").reshape(len(col), words)
        data = data.reshape(len(col), have)
        if have > words * 8 and data[:, words * 8:].any():
            raise BadRequest(f"{name} sets a bit beyond the {words * 64} bits of the selected datasets' menus")
        fitted = np.zeros((len(col), words * 8), np.uint8)
        fitted[:, :min(have, words * 8)] = data[:, :words * 8]
        return fitted.view("<u8")
    dtype = np.dtype(branch_type)
    if col.null_count:
        col = pc.fill_null(col, float("nan") if dtype.kind == "f" else 0)
    return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _uri(output: str) -> str:
    if "://" in output:
        from ..picking.outputs import without_credentials

        return without_credentials(output)
    return str(Path(output).resolve())


def _size(output: str) -> int:
    if "://" not in output:
        return Path(output).stat().st_size
    from ..staging import open_staging

    fs, path = open_staging(output)
    return fs.get_file_info(path).size


# --- the DAG's skims area -------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """A skim's file name in the skims area: a plain ``NAME.root``, no folder (nothing outside the area)."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..") \
            or name.startswith(".") or "\x00" in name:
        raise BadRequest(f"output name {name!r}: a file name without folders, e.g. my_skim.root")
    if not name.endswith(".root"):
        raise BadRequest(f"output name {name!r}: the name must end in .root")
    return name


def skim_to_area(catalog, sel, area: str, name: str, run_id: str | None = None, **kwargs) -> SkimResult:
    """:func:`skim` to ``<area>/<name>`` (the skims area, a folder or an object-store URI; created if missing).

    With a ``run_id`` (a DAG run's), the summary is also stored next to the file, as ``<name>.json`` with the run's
    id: a rerun of the same run (a task cleared in the UI) replaces its own file; another run's is refused unless
    ``overwrite``."""
    from ..staging import open_staging, uri_of

    name = check_name(name)
    if "://" not in area:
        fs, base = open_staging(area)
        fs.create_dir(base, recursive=True)
    if run_id is not None and (read_summary(area, name) or {}).get("run_id") == run_id:
        kwargs["overwrite"] = True
    result = skim(catalog, sel, output=uri_of(area, name), **kwargs)
    if run_id is not None:
        _write_summary(area, name, {**result.to_dict(), "run_id": run_id})
    return result


DAG_OPTIONS = (*SELECTION_OPTIONS, "attributes", "formats", "limit", "output", "overwrite")  # eventindex_skim's params


def dag_conf(sel, attributes, formats, name: str, limit: int | None = None, overwrite: bool = False) -> dict:
    """The conf of an ``eventindex_skim`` run (every param, so that none keeps another run's value): the skim of
    ``sel`` to ``name`` in the skims area."""
    opts = selection_options(sel)
    empty = {"run": [], "lumi": [], "trigger": [], "bcid": [], "period": [], "include_obsolete": False}
    conf = {k: opts.get(k, empty.get(k)) for k in SELECTION_OPTIONS}
    conf.update(attributes=check_attributes(attributes), formats=list(formats or []), limit=limit,
                output=check_name(name), overwrite=bool(overwrite))
    return conf


def run_dag_skim(catalog, options: dict, area: str, run_id: str) -> SkimResult:
    """What the DAG's task does with its run's params (:data:`DAG_OPTIONS`): the skim to ``<area>/<output>``."""
    limit = options.get("limit")
    return skim_to_area(catalog, selection_of({k: options.get(k) for k in SELECTION_OPTIONS}), area,
                        options.get("output"), run_id=run_id, attributes=options.get("attributes") or None,
                        formats=options.get("formats") or None, limit=None if limit in (None, "") else int(limit),
                        overwrite=bool(options.get("overwrite")))


def read_summary(area: str, name: str) -> dict | None:
    """The summary stored next to a skim of the skims area (None: there is none)."""
    import json

    from ..staging import open_staging

    fs, base = open_staging(area)
    try:
        with fs.open_input_stream(f"{base}/{name}.json") as src:
            return json.loads(src.read())
    except (FileNotFoundError, ValueError):
        return None
    except OSError as exc:  # pyarrow's object stores say "not found" as an OSError
        if "not found" in str(exc).lower() or "no such" in str(exc).lower():
            return None
        raise


def _write_summary(area: str, name: str, summary: dict) -> None:
    import json

    from ..staging import atomic_output, open_staging

    fs, base = open_staging(area)
    with atomic_output(fs, f"{base}/{name}.json") as dst:
        dst.write(json.dumps(summary).encode())


def _failure_name(run_id: str) -> str:
    from urllib.parse import quote

    return f"{FAILURES}/{quote(run_id, safe='')}"


FAILURES = ".failed"  # the skims area's folder of the errors of failed runs (one JSON per run)


def record_failure(area: str, run_id: str, error: str) -> None:
    """Keep why a DAG run's skim failed (for the requester's mail), in the skims area's ``.failed/``."""
    _write_summary(area, _failure_name(run_id), {"run_id": run_id, "error": error})


def read_failure(area: str, run_id: str) -> dict | None:
    """What :func:`record_failure` kept about a run (None: nothing)."""
    return read_summary(area, _failure_name(run_id))
