"""Consistency checks of the catalogue: against Rucio (missing or extra files, event-count mismatches), duplicated
events, RAW vs AOD completeness per run (events reconstructed vs recorded), and stale datasets (no longer in Rucio).
Findings are stored in the metadata DB; the caller fails when any is found, so operators see it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from . import metadata as md
from .ddm import files_by_guid, guid_key, split_did
from .errors import DIDNotFound


@dataclass
class Finding:
    check_name: str
    dataset: str | None
    detail: str
    count: int


def check(catalog, ddm) -> list[Finding]:
    findings: list[Finding] = []
    rows = catalog.datasets()
    for r in rows:
        scope, name = split_did(r["name"])
        try:
            rucio_files = files_by_guid(ddm.list_files(scope, name))
        except DIDNotFound:
            findings.append(Finding("stale", r["name"], "in the catalogue but no longer a dataset in Rucio", 1))
            continue
        ours = {guid_key(f["guid"]): f for f in catalog.show(r["name"])["files"]}
        missing = sorted(set(rucio_files) - set(ours))
        extra = sorted(set(ours) - set(rucio_files))
        if missing:
            findings.append(Finding("missing_files", r["name"], f"{len(missing)} Rucio files not indexed, e.g. "
                                                                 f"{rucio_files[missing[0]]['name']}", len(missing)))
        if extra:
            findings.append(Finding("extra_files", r["name"], f"{len(extra)} indexed files not in Rucio, e.g. {extra[0]}",
                                    len(extra)))
        bad = [g for g in set(ours) & set(rucio_files)
               if rucio_files[g].get("events") is not None and int(rucio_files[g]["events"]) != ours[g]["nevents"]]
        if bad:
            findings.append(Finding("event_counts", r["name"], f"{len(bad)} files whose event count differs from "
                                                                f"Rucio's, e.g. {rucio_files[bad[0]]['name']}", len(bad)))
        if r["duplicates"]:
            findings.append(Finding("duplicates", r["name"], f"{r['duplicates']} duplicated events", r["duplicates"]))
    raws = [r for r in rows if r["datatype"] == "RAW"]
    for raw in raws:
        for aod in rows:
            if aod["datatype"] == "AOD" and aod["run_number"] == raw["run_number"] and aod["stream"] == raw["stream"]:
                lost = catalog.missing(raw["name"], aod["name"]).num_rows
                if lost:
                    findings.append(Finding("raw_vs_aod", aod["name"], f"{lost} of {raw['unique_events']} recorded "
                                                                       f"events of run {raw['run_number']} not "
                                                                       "reconstructed", lost))
    return findings


def record(engine, findings: list[Finding]) -> None:
    at = md.now()
    with engine.begin() as conn:
        if findings:
            conn.execute(md.consistency_reports.insert(), [{"run_at": at, **asdict(f)} for f in findings])
        else:
            conn.execute(md.consistency_reports.insert().values(run_at=at, check_name="all", dataset=None,
                                                                detail="consistent", count=0))
