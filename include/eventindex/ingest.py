"""Ingestion of one produced dataset: fetch -> validate -> load -> publish. The Airflow tasks are thin wrappers.

Every step is idempotent: fetching again overwrites the work copy, validation only reads, loading replaces the
dataset as a whole, publishing sets states that are already set. Validation failures are data problems (they
must not be retried); each is recorded in the metadata DB with the dataset, the file and what is wrong.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow.compute as pc
import sqlalchemy as sa

from . import metadata as md
from .catalog.base import check_records
from .catalog.loader import find_staged, verify_staged
from .ddm import files_by_guid, guid_key, split_did
from .errors import BadLoad, DIDNotFound, NotFound, Problem, ValidationFailed
from .guid import format_guid
from .naming import parse
from .staging import uri_of
from .workarea import WorkArea, read_parquet


@dataclass
class Fetched:
    dataset: str
    folder: str
    parquet: list[str]
    summaries: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def fetch(dataset: str, staging: str, work: WorkArea) -> Fetched:
    """Copy the dataset's producer outputs from the staging area to the run's work area, checking each checksum."""
    name = parse(dataset).name
    source = staging if posixpath.basename(staging.split("?")[0].rstrip("/")) == name else uri_of(staging, name)
    fs, found = find_staged(source)
    if not found:
        raise NotFound(f"no producer output for {name} in {source}")
    staged = found[0]
    verify_staged(fs, staged)
    work.clear(name)
    copies = [work.copy_in(fs, path, f"{name}/{posixpath.basename(path)}") for path in staged.parquet_paths]
    return Fetched(name, work.uri_of(name), copies, staged.summaries)


def validate(fetched: Fetched, ddm, announcement: dict | None = None, allow_duplicates: bool = False) -> dict:
    """All checks of a fetched dataset; raises ValidationFailed listing every problem found."""
    name = fetched.dataset
    ds = parse(name)
    problems: list[Problem] = []
    counts: dict[str, int] = {}
    runs, events = [], []
    for uri in fetched.parquet:
        base = posixpath.basename(uri.split("?")[0])
        try:
            table = read_parquet(uri)
            check_records(ds, table)
        except BadLoad as exc:
            problems.append(Problem(name, base, str(exc)))
            continue
        except Exception as exc:
            problems.append(Problem(name, base, f"unreadable index file ({exc})"))
            continue
        vc = pc.value_counts(table.column(f"{ds.datatype}_guid"))
        for g, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
            counts[format_guid(g)] = counts.get(format_guid(g), 0) + int(n)
        runs.append(table.column("run_number").to_numpy())
        events.append(table.column("event_number").to_numpy())
    announced = {}
    for s in fetched.summaries:
        for g in s.get("guids", []):
            announced[guid_key(g["guid"])] = announced.get(guid_key(g["guid"]), 0) + g["nevents"]
    for guid, n in announced.items():
        if counts.get(guid) != n and not problems:
            problems.append(Problem(name, guid, f"the producer summary says {n} events, the index holds "
                                                f"{counts.get(guid, 0)}"))
    if announcement is not None:
        told = {guid_key(g): int(n) for g, n in announcement.get("guids", {}).items()}
        for guid in sorted(set(told) | set(counts)):
            if told.get(guid) != counts.get(guid):
                problems.append(Problem(name, guid, f"announced with {told.get(guid, 0)} events, the index holds "
                                                    f"{counts.get(guid, 0)}"))
    nevents = sum(counts.values())
    duplicates = 0
    if runs:
        run, evt = np.concatenate(runs), np.concatenate(events)
        order = np.lexsort((evt, run))
        duplicates = int(((run[order][1:] == run[order][:-1]) & (evt[order][1:] == evt[order][:-1])).sum())
        if duplicates and not allow_duplicates:
            problems.append(Problem(name, None, f"{duplicates} events appear more than once in the dataset"))
    scope, dsname = split_did(name)
    try:
        meta = ddm.get_metadata(scope, dsname)
        rucio_files = files_by_guid(ddm.list_files(scope, dsname))
    except DIDNotFound as exc:
        problems.append(Problem(name, None, f"not a dataset in Rucio ({exc})"))
        raise ValidationFailed(problems) from None
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
    if problems:
        raise ValidationFailed(problems)
    return {"dataset": name, "nfiles": len(counts), "nevents": nevents, "duplicates": duplicates}


def record_problems(metadata_url_or_engine, problems: list[Problem]) -> int:
    engine = metadata_url_or_engine if isinstance(metadata_url_or_engine, sa.Engine) else \
        md.make_engine(metadata_url_or_engine)
    md.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(md.validation_reports.insert(), [{"dataset": p.dataset, "file": p.file, "problem": p.what,
                                                       "created": md.now()} for p in problems])
    return len(problems)


def load(catalog, fetched: Fetched):
    lfns = {guid_key(g["guid"]): {"lfn": g.get("lfn")} for s in fetched.summaries for g in s.get("guids", [])}
    return catalog.load(fetched.dataset, [read_parquet(uri) for uri in fetched.parquet], files_meta=lfns)


def publish(catalog, dataset: str, obsolete_older: bool = False) -> dict:
    """The dataset's state after loading; optionally retire older versions (other AMI tags) of the same sample."""
    row = catalog.show(dataset)
    retired = []
    if obsolete_older:
        for other in catalog.datasets():
            same_sample = all(other[k] == row[k] for k in ("project", "run_number", "dsid", "stream", "datatype"))
            if same_sample and other["name"] != row["name"] and other["loaded_at"] < row["loaded_at"]:
                catalog.mark_obsolete(other["name"])
                retired.append(other["name"])
    return {"dataset": row["name"], "project": row["project"], "status": row["status"], "nfiles": row["nfiles"],
            "nevents": row["nevents"], "unique_events": row["unique_events"], "duplicates": row["duplicates"],
            "obsoleted": retired}
