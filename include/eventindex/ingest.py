"""Ingestion of one produced dataset: fetch -> validate -> load -> publish. The Airflow tasks are thin wrappers.

Every step is idempotent: fetching again overwrites the work copy, validation only reads, loading replaces the
dataset as a whole, publishing sets states that are already set. Validation failures are data problems (they
must not be retried); each is recorded in the metadata DB with the dataset, the file and what is wrong.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from . import announcements, progress
from . import metadata as md
from .catalog.loader import find_staged, verify_staged
from .catalog.validation import StagedPart, validate_parts
from .ddm import guid_key
from .errors import NotFound, Problem, ValidationFailed  # noqa: F401 (ValidationFailed, Problem: re-exported)
from .naming import parse
from .progress import Completeness, part_of
from .staging import uri_of
from .workarea import WorkArea, read_parquet


@dataclass
class Fetched:
    dataset: str
    folder: str
    parquet: list[str]
    summaries: list[dict] = field(default_factory=list)

    @property
    def parts(self) -> list[tuple[int, int, int]]:
        """The producer jobs' parts this copy is made of: the dataset's version."""
        return sorted(part_of(s) for s in self.summaries)

    def to_dict(self) -> dict:
        return asdict(self)


def _source(name: str, staging: str) -> str:
    return staging if posixpath.basename(staging.split("?")[0].rstrip("/")) == name else uri_of(staging, name)


def staged_parts(dataset: str, staging: str) -> list[dict]:
    """The summaries of the producer jobs' parts staged so far for ``dataset`` (none: an empty list)."""
    name = parse(dataset).name
    try:
        _, found = find_staged(_source(name, staging))
    except NotFound:
        return []
    return found[0].summaries if found else []


def wait_complete(engine, ddm, dataset: str, staging: str, stuck_after: timedelta | None = None,
                  unknown_after: timedelta | None = None, now=None) -> Completeness:
    """One look at whether the dataset's staged parts make it whole (see ``progress.check``); records what it found.
    Raises BadLoad for a malformed summary in the staging area and NotFound for a dataset that is nowhere or still
    unknown to Rucio after ``unknown_after``: neither gets better by waiting."""
    name = parse(dataset).name
    return progress.check(engine, ddm, name, staged_parts(name, staging), announcements.for_dataset(engine, name),
                          stuck_after, unknown_after, now)


def fetch(dataset: str, staging: str, work: WorkArea) -> Fetched:
    """Copy the dataset's producer outputs from the staging area to the run's work area, checking each checksum."""
    name = parse(dataset).name
    source = _source(name, staging)
    fs, found = find_staged(source)
    if not found:
        raise NotFound(f"no producer output for {name} in {source}")
    staged = found[0]
    verify_staged(fs, staged)
    work.clear(name)
    copies = [work.copy_in(fs, path, f"{name}/{posixpath.basename(path)}") for path in staged.parquet_paths]
    return Fetched(name, work.uri_of(name), copies, staged.summaries)


def validate(fetched: Fetched, ddm, announced: list[dict] | dict | None = None,
             allow_duplicates: bool = False, menus: dict | None = None) -> dict:
    """All checks of a fetched dataset; raises ValidationFailed listing every problem found.

    The same checks as ``eventindex load`` makes (``catalog.validation.validate_parts``): each job's part against
    its own summary (events, unique events, per-GUID events, first and last events) and its own announcement
    (``announced``: the latest announcement of each job, as accumulated by ``announcements``); the parts together
    against Rucio.
    """
    if isinstance(announced, dict):
        announced = [announced]
    parts = [StagedPart(posixpath.basename(uri.split("?")[0]), summary, lambda uri=uri: read_parquet(uri))
             for uri, summary in zip(fetched.parquet, fetched.summaries)]
    summary, _ = validate_parts(fetched.dataset, parts, ddm, announced, allow_duplicates, menus=menus)
    return summary


def known_menus(engine) -> dict:
    """The trigger menus the metadata DB holds, by SMK (what the menus carried by real files must agree with)."""
    with engine.connect() as conn:
        return md.load_menus(conn)


def record_problems(metadata_url_or_engine, problems: list[Problem]) -> int:
    engine = metadata_url_or_engine if isinstance(metadata_url_or_engine, sa.Engine) else \
        md.make_engine(metadata_url_or_engine)
    with engine.begin() as conn:
        conn.execute(md.validation_reports.insert(), [{"dataset": p.dataset, "file": p.file, "problem": p.what,
                                                       "created": md.now()} for p in problems])
    return len(problems)


RUN_SOURCES = {"stomp": "grid", "tier0": "tier0", "prodsys": "campaign", "manual": "manual"}


def source_of(dag_id: str, run_id: str | None = None, run_source: str | None = None) -> str:
    """The ingestion source recorded with a dataset: the run's own ``source`` parameter when it has one (what
    triggered it: a STOMP message -> grid, a Tier-0 READY flag -> tier0, the production system -> campaign, a
    person -> manual); else from the ingesting DAG and run: ``eventindex_ingest_tier0`` -> tier0,
    ``eventindex_ingest_campaign`` -> campaign, ``eventindex_ingest`` -> grid, or manual when a person triggered the
    run (``manual__...``) or the DAG is none of these."""
    if run_source in RUN_SOURCES:
        return RUN_SOURCES[run_source]
    if dag_id == "eventindex_ingest_tier0":
        return "tier0"
    if dag_id == "eventindex_ingest_campaign":
        return "campaign"
    if dag_id == "eventindex_ingest" and not (run_id or "").startswith("manual__"):
        return "grid"
    return "manual"


def load(catalog, fetched: Fetched, reindex: bool = False, source: str | None = None):
    """Load the fetched version; ``None`` when exactly this version (the same job parts) is loaded already, unless
    ``reindex`` asks to load it again (a reprocessing campaign re-ingested on purpose). ``source``: see
    ``source_of``."""
    if not reindex and progress.loaded_parts(catalog.engine, fetched.dataset) == fetched.parts:
        try:
            row = catalog.show(fetched.dataset)
            progress.record_loaded(catalog.engine, fetched.dataset, fetched.parts, row["nevents"])
            return None
        except NotFound:
            pass  # the progress table says loaded, the catalogue does not have it: load
    lfns = {guid_key(g["guid"]): {"lfn": g.get("lfn")} for s in fetched.summaries for g in s.get("guids", [])}
    result = catalog.load(fetched.dataset, [read_parquet(uri) for uri in fetched.parquet], files_meta=lfns,
                          source=source)
    progress.record_loaded(catalog.engine, fetched.dataset, fetched.parts, result.nevents)
    return result


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
