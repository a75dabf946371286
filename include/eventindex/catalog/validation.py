"""The one check of a staged dataset before it is loaded, shared by ``eventindex load`` (``loader.load_staged``) and
the ingestion DAG's validate step (``ingest.validate``): a hand-over is checked the same way whichever path takes it.

Two levels, both bad input when they fail (never retried):

- the producer's ``summary.json`` must be the object the producer writes (``check_summary``): a malformed one names
  its path in one line instead of a JSONDecodeError or a KeyError deep in a load;
- each job's part (one Parquet file) must hold what its summary says: events, unique events, and per file GUID the
  events, unique events, first and last events; the parts together must not index one file twice nor (unless
  allowed) one event twice; and, where a data catalogue (Rucio) is given, the dataset must be closed there with
  the same files and event counts. Without one those last checks are skipped, and the result says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..ddm import files_by_guid, guid_key, split_did
from ..errors import BadLoad, DIDNotFound, Problem, ValidationFailed
from ..guid import format_guid
from ..naming import DatasetName, parse
from .records import carried_menus, check_records

_HEX8 = re.compile(r"^[0-9a-f]{8}$")
_REQUIRED = {"dataset": str, "parquet": str, "bytes": int, "adler32": str, "nevents": int}
_OPTIONAL_INTS = ("task_id", "job_id", "attempt", "unique_events", "njobs")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _malformed(path: str, what: str) -> BadLoad:
    return BadLoad(f"{path}: malformed producer summary: {what}")


def parse_summary(data: bytes, path: str) -> dict:
    """The producer summary at ``path`` (its bytes ``data``), checked by ``check_summary``."""
    try:
        summary = json.loads(data)
    except json.JSONDecodeError as exc:
        raise _malformed(path, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError:
        raise _malformed(path, "not JSON (not UTF-8 text)") from None
    except RecursionError:
        raise _malformed(path, "not JSON (nested too deeply)") from None
    return check_summary(summary, path)


def check_summary(summary, path: str) -> dict:
    """``summary`` if it has every key the loaders read, with the producer's types; else BadLoad naming ``path``
    and the first key that is wrong. The Parquet name must be a plain file name beside the summary (never a path
    that would lead a loader elsewhere)."""
    if not isinstance(summary, dict):
        raise _malformed(path, f"a JSON {type(summary).__name__}, not an object")
    for key, kind in _REQUIRED.items():
        if key not in summary:
            raise _malformed(path, f"no {key!r}")
        value = summary[key]
        if not (_is_int(value) if kind is int else isinstance(value, kind)):
            wanted = "an integer" if kind is int else "text"
            raise _malformed(path, f"{key!r} is {json.dumps(value)[:40]}, not {wanted}")
    if summary["bytes"] < 0 or summary["nevents"] < 0:
        raise _malformed(path, "'bytes' and 'nevents' must not be negative")
    if not _HEX8.match(summary["adler32"]):
        raise _malformed(path, f"'adler32' is {summary['adler32'][:20]!r}, not 8 lower-case hex digits")
    name = summary["parquet"]
    if "/" in name or "\\" in name or name in ("", ".", "..") or not name.endswith(".parquet"):
        raise _malformed(path, f"'parquet' is {name[:60]!r}, not the name of a .parquet file beside the summary")
    for key in _OPTIONAL_INTS:
        if summary.get(key) is not None and not (_is_int(summary[key]) and summary[key] >= 0):
            raise _malformed(path, f"{key!r} is {json.dumps(summary[key])[:40]}, not a non-negative integer")
    guids = summary.get("guids", [])
    if not isinstance(guids, list):
        raise _malformed(path, "'guids' is not a list")
    for i, g in enumerate(guids):
        if not isinstance(g, dict) or not isinstance(g.get("guid"), str) or not _is_int(g.get("nevents")):
            raise _malformed(path, f"guids[{i}] is not an object with a 'guid' (text) and 'nevents' (an integer)")
        try:
            guid_key(g["guid"])
        except (ValueError, TypeError):
            raise _malformed(path, f"guids[{i}]: {g['guid'][:40]!r} is not a GUID") from None
        if g.get("lfn") is not None and not isinstance(g["lfn"], str):
            raise _malformed(path, f"guids[{i}]: 'lfn' is not text")
        if g.get("unique") is not None and not _is_int(g["unique"]):
            raise _malformed(path, f"guids[{i}]: 'unique' is not an integer")
        for key in ("first_event", "last_event"):
            if g.get(key) is not None and not (isinstance(g[key], list) and len(g[key]) == 2
                                               and all(_is_int(v) for v in g[key])):
                raise _malformed(path, f"guids[{i}]: {key!r} is not [run, event]")
    return summary


def part_of(summary: dict) -> tuple[int, int, int]:
    """A producer job's part of a dataset: (task id, job id, attempt)."""
    return int(summary.get("task_id") or 0), int(summary.get("job_id") or 0), int(summary.get("attempt") or 0)


def job_label(part: tuple) -> str:
    task, job, attempt = part
    return f"job {task}.{job}" + (f" (attempt {attempt})" if attempt else "")


@dataclass
class StagedPart:
    """One producer job's part: its Parquet file's name (for messages), its summary, and how to read it."""

    name: str
    summary: dict
    read: Callable[[], pa.Table]


def _per_guid(table: pa.Table, column: str) -> dict[str, dict]:
    """Per file GUID: events, unique events, first and last (run, event) in (run, event) order, as the producer's
    summary spells them. Vectorized: one sort by (GUID, run, event)."""
    enc = pc.dictionary_encode(table.column(column)).combine_chunks()
    codes = enc.indices.to_numpy(zero_copy_only=False)
    names = [format_guid(g) for g in enc.dictionary.to_pylist()]
    run, evt = table.column("run_number").to_numpy(), table.column("event_number").to_numpy()
    order = np.lexsort((evt, run, codes))
    c, r, e = codes[order], run[order], evt[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    ends = np.r_[starts[1:], len(c)]
    repeat = np.r_[False, (c[1:] == c[:-1]) & (r[1:] == r[:-1]) & (e[1:] == e[:-1])]
    unique = np.add.reduceat((~repeat).astype(np.int64), starts)
    return {names[c[s]]: {"nevents": int(t - s), "unique": int(u), "first_event": [int(r[s]), int(e[s])],
                          "last_event": [int(r[t - 1]), int(e[t - 1])]} for s, t, u in zip(starts, ends, unique)}


def _unique(run: np.ndarray, evt: np.ndarray) -> int:
    order = np.lexsort((evt, run))
    r, e = run[order], evt[order]
    return int(len(r) - ((r[1:] == r[:-1]) & (e[1:] == e[:-1])).sum())


def part_problems(ds: DatasetName, part: StagedPart,
                  table: pa.Table) -> tuple[list[Problem], dict[str, int], int | None]:
    """What is wrong with one part against its own summary; the part's events per GUID; its unique events."""
    name, summary, job = ds.name, part.summary, job_label(part_of(part.summary))
    problems: list[Problem] = []
    column = f"{ds.datatype}_guid"
    if table.column(column).null_count:
        return [Problem(name, part.name, f"{job}: {table.column(column).null_count} records without a file GUID")], \
            {}, None
    mine = _per_guid(table, column)
    if table.num_rows != summary["nevents"]:
        problems.append(Problem(name, part.name, f"{job}: the producer summary says {summary['nevents']} events, "
                                                 f"the index file holds {table.num_rows}"))
    told_unique = summary.get("unique_events")
    unique = _unique(table.column("run_number").to_numpy(), table.column("event_number").to_numpy())
    if told_unique is not None:
        if unique != told_unique:
            problems.append(Problem(name, part.name, f"{job}: the producer summary says {told_unique} unique "
                                                     f"events, the index file holds {unique}"))
    told = {guid_key(g["guid"]): g for g in summary.get("guids", [])}
    for guid in sorted(set(told) | set(mine)):
        t, m = told.get(guid, {}), mine.get(guid, {})
        if t.get("nevents") != m.get("nevents"):
            problems.append(Problem(name, guid, f"{job}: the producer summary says {t.get('nevents', 0)} events, "
                                                f"the index holds {m.get('nevents', 0)}"))
            continue
        for key, what in (("unique", "unique events"), ("first_event", "first event"), ("last_event", "last event")):
            if t.get(key) is not None and t[key] != m[key]:
                problems.append(Problem(name, guid, f"{job}: the producer summary says {what} {t[key]}, the index "
                                                    f"holds {m[key]}"))
    return problems, {g: v["nevents"] for g, v in mine.items()}, unique


def validate_parts(dataset: str, parts: list[StagedPart], ddm=None, announced: list[dict] | None = None,
                   allow_duplicates: bool = False, keep_tables: bool = False,
                   menus: dict | None = None) -> tuple[dict, list[pa.Table]]:
    """Every check of a staged dataset; raises ValidationFailed listing every problem found.

    ``ddm``: the data catalogue (Rucio) to check the dataset against, or None to skip those checks (the result's
    ``rucio`` says "skipped"). ``announced``: the latest announcement of each job (the DAG path), whose per-GUID
    counts must match too. Returns the summary ``{"dataset", "nfiles", "nevents", "duplicates", "rucio"}`` and,
    with ``keep_tables``, the parts' tables (to load without reading them twice). ``menus``: the trigger menus the
    catalogue holds (SMK -> TriggerMenu), which the menus a part carries (real files) must not contradict."""
    ds = parse(dataset)
    name = ds.name
    problems: list[Problem] = []
    counts: dict[str, int] = {}
    owner: dict[str, tuple] = {}
    runs, events, tables, uniques = [], [], [], []
    told_by_job = {(int(m.get("task_id") or 0), int(m.get("job_id") or 0)): m for m in announced or []}
    known = dict(menus or {})
    for part in parts:
        try:
            table = part.read()
            check_records(ds, table)
            _, new = carried_menus(ds, table, known)
            known.update({m.smk: m for m in new})
        except BadLoad as exc:
            problems.append(Problem(name, part.name, str(exc)))
            continue
        except Exception as exc:  # pyarrow raises many kinds for a damaged file
            why = " ".join(str(exc).split())  # Arrow's messages may span lines: the report is one
            problems.append(Problem(name, part.name, f"unreadable index file ({type(exc).__name__}: {why})"))
            continue
        found, mine, unique = part_problems(ds, part, table)
        problems += found
        job = part_of(part.summary)
        for guid, n in mine.items():
            if guid in owner:
                problems.append(Problem(name, guid, f"indexed by two jobs: {job_label(owner[guid])} and "
                                                    f"{job_label(job)}"))
            owner[guid] = job
            counts[guid] = counts.get(guid, 0) + n
        told = told_by_job.get(job[:2])
        if told is not None and int(told.get("attempt") or 0) == job[2]:
            told_counts = {guid_key(g): int(n) for g, n in (told.get("guids") or {}).items()}
            for guid in sorted(set(told_counts) | set(mine)):
                if told_counts.get(guid) != mine.get(guid):
                    problems.append(Problem(name, guid, f"{job_label(job)}: announced with {told_counts.get(guid, 0)} "
                                                        f"events, the index holds {mine.get(guid, 0)}"))
        runs.append(table.column("run_number").to_numpy())
        events.append(table.column("event_number").to_numpy())
        uniques.append(unique)
        if keep_tables:
            tables.append(table)
    duplicates = 0
    if runs:
        run, evt = np.concatenate(runs), np.concatenate(events)
        # one part: its own count says it (the sort is the costliest step of the checks)
        duplicates = len(run) - (uniques[0] if len(runs) == 1 and uniques[0] is not None else _unique(run, evt))
        if duplicates and not allow_duplicates:
            problems.append(Problem(name, None, f"{duplicates} events appear more than once in the dataset"))
    rucio = "skipped (no data catalogue configured)"
    if ddm is not None:
        problems += _rucio_problems(ddm, name, counts)
        rucio = "checked"
    if problems:
        raise ValidationFailed(problems)
    return {"dataset": name, "nfiles": len(counts), "nevents": sum(counts.values()), "duplicates": duplicates,
            "rucio": rucio}, tables


def _rucio_problems(ddm, name: str, counts: dict[str, int]) -> list[Problem]:
    """The dataset in the data catalogue: closed, with the files the index holds and their event counts."""
    scope, dsname = split_did(name)
    try:
        meta = ddm.get_metadata(scope, dsname)
        rucio_files = files_by_guid(ddm.list_files(scope, dsname))
    except DIDNotFound as exc:
        return [Problem(name, None, f"not a dataset in Rucio ({exc})")]
    problems = []
    if meta.get("is_open"):
        problems.append(Problem(name, None, "the dataset is still open in Rucio"))
    for guid, n in sorted(counts.items()):
        f = rucio_files.get(guid)
        if f is None:
            problems.append(Problem(name, guid, "not a file of the dataset in Rucio"))
        elif f.get("events") is not None and int(f["events"]) != n:
            problems.append(Problem(name, f["name"], f"Rucio says {f['events']} events, the index holds {n}"))
    for guid, f in sorted(rucio_files.items()):
        if guid not in counts:
            problems.append(Problem(name, f["name"], "file of the dataset in Rucio is missing from the index"))
    return problems
