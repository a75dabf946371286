"""Where each dataset is on its way into the catalogue (table ``dataset_progress``).

A grid dataset is written by the many jobs of a production task; each job's producer stages and announces only its
own part. The dataset is ingested once it is complete: closed in Rucio (or its Hermes CLOSE message received) with
every file Rucio lists staged by some job, and as many jobs staged as the task has when the announcements say so.
Until then it waits, visibly: the state says "waiting for N of M files". Past a configurable time it is stuck.

A dataset's *version* is the set of job parts ``(task, job, attempt)`` it was loaded from. One ingestion run is
started per generation (``stomp__<dataset>__g<N>__<claimed>``); a part that arrives after a load (a re-run of a job) starts
the next generation, which reloads the dataset atomically; a load of the version already in the catalogue is
skipped, so each complete version is loaded once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from . import metadata as md
from .ami import derived
from .ddm import files_by_guid, guid_key, split_did
from .errors import DIDNotFound, NotFound

WAITING, QUEUED, COMPLETE, LOADED, STUCK, FAILED = "waiting", "queued", "complete", "loaded", "stuck", "failed"
CLOSED = "closed"  # Rucio closed it; nothing of it announced (yet): most of what Hermes reports is not ours
IN_FLIGHT = (QUEUED, WAITING, COMPLETE)


def part_of(summary: dict) -> tuple[int, int, int]:
    """A producer job's part of a dataset: (task id, job id, attempt)."""
    return int(summary.get("task_id", 0)), int(summary.get("job_id", 0)), int(summary.get("attempt", 0))


def _row(conn, dataset: str):
    return conn.execute(sa.select(md.dataset_progress).where(md.dataset_progress.c.dataset == dataset)).first()


def _upsert(conn, dataset: str, **values) -> None:
    p = md.dataset_progress
    values["updated"] = md.now()
    if conn.execute(p.update().where(p.c.dataset == dataset).values(**values)).rowcount == 0:
        values.setdefault("first_seen", values["updated"])
        values.setdefault("state", WAITING)
        values.setdefault("generation", 0)
        conn.execute(p.insert().values(dataset=dataset, **values))


def get(engine: sa.Engine, dataset: str) -> dict | None:
    with engine.connect() as conn:
        row = _row(conn, dataset)
    return dict(row._mapping) if row else None


def listing(engine: sa.Engine, states: tuple[str, ...] | None = None) -> list[dict]:
    """The datasets on their way in (all, or those in ``states``), most recently changed first."""
    p = md.dataset_progress
    q = sa.select(p).order_by(p.c.updated.desc())
    if states:
        q = q.where(p.c.state.in_(states))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def mark(engine: sa.Engine, dataset: str, state: str, detail: str | None = None) -> None:
    with engine.begin() as conn:
        _upsert(conn, dataset, state=state, detail=detail)


def record_closed(engine: sa.Engine, dataset: str, files: int | None = None, events: int | None = None) -> None:
    """Rucio closed the dataset (Hermes CLOSE): a completeness signal, kept with what Rucio counted (and AMI's
    quantities of the dataset recomputed with it)."""
    with engine.begin() as conn:
        row = _row(conn, dataset)
        if row is None:
            _upsert(conn, dataset, state=CLOSED, detail="closed in Rucio; nothing announced yet",
                    closed_at=md.now(), closed_files=files, closed_events=events)
        else:
            _upsert(conn, dataset, closed_at=md.now(), closed_files=files, closed_events=events)
    derived.refresh(engine, [dataset], "rucio")


def loaded_parts(engine: sa.Engine, dataset: str) -> list[tuple[int, int, int]] | None:
    """The job parts of the version in the catalogue (whatever run is under way now)."""
    row = get(engine, dataset)
    if row is None or not row["loaded_parts"]:
        return None
    return sorted(tuple(p) for p in json.loads(row["loaded_parts"]))


def record_loaded(engine: sa.Engine, dataset: str, parts: list[tuple[int, int, int]], nevents: int) -> None:
    """The version made of ``parts`` is in the catalogue; the announcements of those parts are handed over."""
    a = md.announcements
    with engine.begin() as conn:
        _upsert(conn, dataset, state=LOADED, detail=f"{nevents} events from {len(parts)} job(s)",
                loaded_parts=json.dumps(sorted(list(p) for p in parts)))
        if parts:  # one statement, executed for every part
            conn.execute(a.update().where((a.c.dataset == dataset) & (a.c.task_id == sa.bindparam("t"))
                                          & (a.c.job_id == sa.bindparam("j")) & (a.c.attempt <= sa.bindparam("n"))
                                          & a.c.handed_over_at.is_(None)).values(handed_over_at=md.now()),
                         [{"t": t, "j": j, "n": n} for t, j, n in parts])


def claim_runs(engine: sa.Engine, limit: int = 500) -> list[dict]:
    """The ingestion runs the announcements call for: ``[{"dataset", "generation", "run_id"}]``.

    A dataset with announcements not yet handed over gets a run of a new generation unless one is in flight; a run
    in flight is named again (its run id exists already, so starting it again is a no-op), which also heals a
    trigger that failed after the claim was recorded.
    """
    a, p = md.announcements, md.dataset_progress
    with engine.begin() as conn:
        fresh = conn.execute(sa.select(a.c.dataset, sa.func.max(a.c.received_at).label("latest"))
                             .where(a.c.handed_over_at.is_(None)).group_by(a.c.dataset)
                             .order_by(sa.func.min(a.c.received_at)).limit(limit)).all()
        runs = []
        for dataset, latest in fresh:
            row = _row(conn, dataset)
            if row is not None and row.state == LOADED and not _hand_over_loaded(conn, dataset, row.loaded_parts):
                continue  # announcements of the version in the catalogue, arriving late: nothing new
            if row is not None and row.state in IN_FLIGHT and row.generation > 0:
                runs.append(_run(dataset, row.generation, row.first_seen))
                continue
            if row is not None and row.state in (FAILED, STUCK) and latest <= row.updated:
                continue  # nothing new since the last run gave up: an operator clears that run to retry
            generation = (row.generation if row is not None else 0) + 1
            claimed = md.now()
            _upsert(conn, dataset, state=QUEUED, generation=generation, detail="ingestion run started",
                    first_seen=claimed)
            runs.append(_run(dataset, generation, claimed))
    return runs


def _run(dataset: str, generation: int, claimed) -> dict:
    """A run's name holds its generation and when it was claimed: the same while the run is in flight, and never
    one an Airflow database already holds from before a metadata DB was started afresh."""
    return {"dataset": dataset, "generation": generation, "run_id": f"stomp__{dataset}__g{generation}__"
                                                                     f"{claimed:%Y%m%dT%H%M%S}"}


def _hand_over_loaded(conn, dataset: str, loaded: str | None) -> bool:
    """Marks handed over the announcements that the loaded version covers; True when others remain."""
    a = md.announcements
    have = {(t, j): att for t, j, att in json.loads(loaded or "[]")}
    rows = conn.execute(sa.select(a.c.task_id, a.c.job_id, a.c.attempt)
                        .where((a.c.dataset == dataset) & a.c.handed_over_at.is_(None))).all()
    covered = [r for r in rows if (r.task_id, r.job_id) in have and r.attempt <= have[(r.task_id, r.job_id)]]
    for r in covered:
        conn.execute(a.update().where((a.c.dataset == dataset) & (a.c.task_id == r.task_id)
                                      & (a.c.job_id == r.job_id)).values(handed_over_at=md.now()))
    return len(covered) < len(rows)


@dataclass
class Completeness:
    dataset: str
    complete: bool
    staged_files: int
    expected_files: int | None
    detail: str
    stuck: bool = False


def check(engine: sa.Engine, ddm, dataset: str, summaries: list[dict], announced: list[dict],
          stuck_after: timedelta | None = None, unknown_after: timedelta | None = None,
          now: datetime | None = None) -> Completeness:
    """Whether the staged parts make the whole dataset; records the state. Raises ``NotFound`` for a dataset that is
    nowhere (nothing staged, nothing announced, unknown to Rucio): that will not change by waiting.

    ``unknown_after``: how long a dataset that is staged or announced may stay unknown to Rucio (its registration may
    lag the producer by a little) before it fails with ``NotFound`` "<dataset> is unknown to Rucio after N minutes",
    instead of waiting out ``stuck_after`` (hours) for something that will not come; until then it waits, saying
    so. ``None``: no grace; the dataset is judged by what is staged alone (and validation refuses it). ``now``: the
    time of this look (UTC, naive, as the metadata DB keeps times; default: the clock)."""
    now = now or md.now()
    staged = {guid_key(g["guid"]) for s in summaries for g in s.get("guids", [])}
    scope, name = split_did(dataset)
    row = get(engine, dataset)
    if row is None or row["state"] not in IN_FLIGHT:  # a new run after a load, a failure or a stuck wait
        row = dict(row or {}, first_seen=now, closed_at=(row or {}).get("closed_at"))
        with engine.begin() as conn:
            _upsert(conn, dataset, first_seen=now)
    first_seen = row["first_seen"]
    unknown = False
    try:
        meta = ddm.get_metadata(scope, name)
        rucio = files_by_guid(ddm.list_files(scope, name))
    except DIDNotFound:
        if not summaries and not announced:
            mark(engine, dataset, FAILED, "exists nowhere: not staged, not announced, unknown to Rucio")
            raise NotFound(f"{dataset} exists nowhere: nothing staged, nothing announced, and Rucio does not know "
                           "it (a typo in the name?)") from None
        if unknown_after is not None and now - first_seen >= unknown_after:
            why = f"{dataset} is unknown to Rucio after {_minutes(unknown_after)}"
            mark(engine, dataset, FAILED, why)
            raise NotFound(why) from None
        meta, rucio, unknown = None, {}, unknown_after is not None
    closed = meta is None or not meta.get("is_open") or bool(row["closed_at"])
    missing = sorted(set(rucio) - staged)
    jobs = {(s.get("task_id"), s.get("job_id")) for s in summaries}
    njobs = max((int(m["njobs"]) for m in announced if m.get("njobs")), default=None)
    waiting = []
    if unknown:
        waiting.append(f"unknown to Rucio (for {_since(first_seen, now)}; failing after {_minutes(unknown_after)})")
    if not summaries:
        waiting.append("nothing staged yet")
    if not closed:
        waiting.append("the dataset is still open in Rucio")
    if missing:
        waiting.append(f"waiting for {len(missing)} of {len(rucio)} files")
    if njobs and len(jobs) < njobs:
        waiting.append(f"{len(jobs)} of {njobs} jobs staged")
    expected = len(rucio) if meta is not None else None
    if not waiting:
        detail = f"complete: {len(staged)} files from {len(jobs)} job(s)"
        with engine.begin() as conn:
            _upsert(conn, dataset, state=COMPLETE, detail=detail, files_expected=expected, files_staged=len(staged))
        return Completeness(dataset, True, len(staged), expected, detail)
    detail = "; ".join(waiting)
    state = WAITING
    if stuck_after is not None and now - first_seen >= stuck_after:
        state, detail = STUCK, f"stuck for {_since(first_seen, now)}: {detail}"
    with engine.begin() as conn:
        _upsert(conn, dataset, state=state, detail=detail, files_expected=expected, files_staged=len(staged))
    return Completeness(dataset, False, len(staged), expected, detail, stuck=state == STUCK)


def _minutes(t: timedelta) -> str:
    minutes = t.total_seconds() / 60
    return f"{minutes:g} minute{'' if minutes == 1 else 's'}"


def _since(t, now=None) -> str:
    seconds = int(((now or md.now()) - t).total_seconds())
    return f"{seconds // 3600} h {seconds % 3600 // 60} min" if seconds >= 3600 else f"{seconds // 60} min {seconds % 60} s"
