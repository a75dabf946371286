"""A dataset's provenance (its parents and children among the datasets of the catalogue) and the history of its
file and event counts, as AMI shows them.

The production system's task table (``prodsys_tasks`` upstream) names each task's output datasets but not its
inputs, so the chain is read from the names, as ATLAS nomenclature makes it: a dataset's parent is a dataset of
the same sample (project, run or DSID, stream) in an earlier format (RAW < ESD < AOD < DAOD_*) whose AMI tag chain
is the longest proper prefix of its own; RAW, with no tags, prefixes every data chain. The tasks that made them
(EVNT, HITS for simulation) are outside the catalogue, so a simulation AOD has no parent here.
"""

from __future__ import annotations

RANK = {"RAW": 0, "ESD": 1, "AOD": 2}


def _rank(datatype: str) -> int:
    return RANK.get(datatype, 3)  # DAOD_<NAME> and other derived formats


def _sample(row: dict) -> tuple:
    return (row["project"], row.get("run_number"), row.get("dsid"), row.get("stream"))


def _tags(row: dict) -> list[str]:
    return row["version"].split("_") if row["version"] else []


def parents_of(row: dict, rows: list[dict]) -> list[str]:
    """The names of ``row``'s parents among ``rows`` (same sample, earlier format, longest tag-chain prefix)."""
    tags = _tags(row)
    found = []
    for r in rows:
        theirs = _tags(r)
        if (_sample(r) == _sample(row) and _rank(r["datatype"]) < _rank(row["datatype"])
                and len(theirs) < len(tags) and tags[:len(theirs)] == theirs):
            found.append((len(theirs), _rank(r["datatype"]), r["name"]))
    if not found:
        return []
    best = max(f[:2] for f in found)
    return sorted(name for *key, name in found if tuple(key) == best)


def provenance(catalog, row: dict) -> dict:
    """``{"parents": [names], "children": [names]}`` of a dataset, among the datasets loaded (or obsolete)."""
    same = [r for r in catalog.datasets(include_obsolete=True) if _sample(r) == _sample(row)
            and r["status"] in ("loaded", "obsolete")]
    others = [r for r in same if r["name"] != row["name"]]
    return {"parents": parents_of(row, others),
            "children": sorted(r["name"] for r in others if row["name"] in parents_of(r, same))}


def history_counts(history: list[dict]) -> list[dict]:
    """Each load and reload of a dataset (from its ``load_history``, oldest first) with its ``nfiles`` and
    ``nevents`` and their change from the version before (null for the first, or where a count was not recorded:
    loads before schema version 8 did not record ``nfiles``)."""
    out, before = [], None
    for h in history:
        if h["action"] not in ("load", "reload"):
            continue
        entry = {"at": h["at"], "action": h["action"], "load_id": h["load_id"], "nfiles": h.get("nfiles"),
                 "nevents": h["nevents"]}
        for key in ("nfiles", "nevents"):
            prev = before and before[key]
            entry[f"{key}_change"] = entry[key] - prev if prev is not None and entry[key] is not None else None
        out.append(entry)
        before = entry
    return out
