"""What a query selects, checked before any backend sees it.

A selection combines dataset-level criteria (project, runs, stream, datatype, version, dataset) that the
manifest answers, and event-level criteria (lumi blocks, time range, GUID, trigger names) that need the events.
Every value is typed and range-checked here; backends pass values to SQL only as bound parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import BadSelection, EventIndexError, MenuMissing, NoTriggerInformation
from ..guid import guid_bytes, normalize_guid
from ..naming import DATATYPE_RE, PROJECT_RE, STREAM_RE, TAG_RE
from ..trigger import close_matches
from . import expression

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
TRIGGER_RE = expression.NAME_RE
BCID_MAX = 3563  # bunch crossings of one LHC orbit, numbered 0..3563
PERIOD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}$")  # COMA's names: B, C, Z1, AllYear


Range = tuple[int, int]


def _range(text_or_pair, what: str, top: int = UINT32_MAX) -> Range:
    """A checked inclusive range ``(lo, hi)`` of ``0..top`` from ``"N"``, ``"A-B"`` or a pair. A bound above ``top``
    is refused naming the value as typed (never clipped: a clipped cut would answer another question)."""
    if isinstance(text_or_pair, (tuple, list)):
        lo, hi = text_or_pair
    else:
        text = str(text_or_pair).strip()
        m = re.fullmatch(r"(\d+)(?:\s*[-:]\s*(\d+))?", text[:200])
        if not m:
            raise BadSelection(f"{what} {text[:40]!r} is not a number or a range like 100-200")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    if not (isinstance(lo, int) and isinstance(hi, int)) or isinstance(lo, bool) or isinstance(hi, bool):
        raise BadSelection(f"{what} bounds must be integers, got {lo!r}-{hi!r}")
    if lo < 0 or hi < 0:
        raise BadSelection(f"{what} {lo}-{hi} is negative")
    for bound in (lo, hi):
        if bound > top:
            shown = str(bound) if bound < 10**30 else f"of {len(str(bound))} digits"
            raise BadSelection(f"{what} {shown} is out of range (0..{top})")
    if lo > hi:
        raise BadSelection(f"{what} {lo}-{hi} is empty (start after end)")
    return lo, hi


@dataclass(frozen=True)
class Selection:
    project: str | None = None
    runs: tuple[Range, ...] = ()
    lumi_blocks: tuple[Range, ...] = ()
    stream: str | None = None
    datatype: str | None = None
    version: str | None = None  # AMI tag chain, "" for RAW, or "latest"
    dataset: str | None = None
    guid: str | None = None
    triggers: tuple[str, ...] = ()  # expressions (a name, or names with and/or/not), all must hold
    time_range: Range | None = None  # seconds since the epoch, inclusive
    include_obsolete: bool = False
    periods: tuple[str, ...] = ()  # run periods (run_periods of the metadata DB), resolved by the catalogue
    bcids: tuple[Range, ...] = ()  # bunch crossing identifiers
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def event_level(self) -> bool:
        """Whether the events themselves must be read (beyond per-dataset counts and trigger counts)."""
        return bool(self.lumi_blocks or self.guid or self.time_range or self.bcids)

    @property
    def trigger_trees(self) -> list:
        """The parsed trigger expressions (see ``expression``)."""
        return [expression.parse(t) for t in self.triggers]

    @property
    def trigger_names(self) -> tuple[str, ...]:
        """Every trigger name the expressions use, once each."""
        return tuple(dict.fromkeys(n for tree in self.trigger_trees for n in expression.names(tree)))

    def with_(self, **changes) -> "Selection":
        return replace(self, **changes)


def _trigger_expressions(triggers) -> tuple[str, ...]:
    """Trigger expressions from user input, each checked and kept as canonical text. A string without operators
    or parentheses is a list of names (comma or space separated), all of which must pass."""
    given = [triggers] if isinstance(triggers, str) else list(triggers or ())
    if any(isinstance(t, str) and not t.strip() for t in given):  # "no cut" is no option, not an empty one
        raise BadSelection("trigger is empty: give an L1_ item, an HLT_ chain or an expression of them, or no "
                           "trigger option for no trigger cut")
    if isinstance(triggers, str):
        if re.search(r"[()&|!]|\b(and|or|not)\b", triggers, re.IGNORECASE):
            triggers = [triggers]
        else:
            triggers = [t for t in re.split(r"[,\s]+", triggers) if t]
    out = []
    for t in triggers:
        if not isinstance(t, str):
            raise BadSelection(f"trigger {t!r} is not an L1_ item or HLT_ chain name")
        if TRIGGER_RE.match(t.strip()):
            out.append(t.strip())
            continue
        if not re.search(r"[()&|!\s]", t.strip()):
            raise BadSelection(f"trigger {t!r} is not an L1_ item or HLT_ chain name")
        out.append(expression.canonical(expression.parse(t)))
    return tuple(dict.fromkeys(out))


def make_selection(*, project=None, runs=(), lumi_blocks=(), stream=None, datatype=None, version=None, dataset=None,
                   guid=None, triggers=(), time_range=None, include_obsolete=False, period=(), bcid=()) -> Selection:
    """Build a checked Selection from user input (strings from a CLI or REST call, or Python values)."""
    if project is not None and not PROJECT_RE.match(project):
        raise BadSelection(f"project {project!r} is not a project tag like data18_13TeV")
    if stream is not None and not STREAM_RE.match(stream):
        raise BadSelection(f"stream {stream!r} is not a stream name like physics_Main")
    if datatype is not None and not DATATYPE_RE.match(datatype):
        raise BadSelection(f"data type {datatype!r} is not a known format (RAW, AOD, DAOD_<NAME>, ...)")
    if version is not None and version not in ("", "latest"):
        if not all(TAG_RE.match(t) for t in version.split("_")):
            raise BadSelection(f"version {version!r} is not an AMI tag chain like f961_m1831, or 'latest'")
    if dataset is not None:
        from ..naming import parse

        try:
            dataset = parse(dataset).name
        except EventIndexError as exc:
            raise BadSelection(str(exc)) from None
    if guid is not None:
        try:
            guid = normalize_guid(guid)
        except (ValueError, TypeError):
            raise BadSelection(f"GUID {guid!r} is not a UUID") from None
    triggers = _trigger_expressions(triggers)
    periods = [p for p in re.split(r"[,\s]+", period) if p] if isinstance(period, str) else list(period or ())
    for p in periods:
        if not isinstance(p, str) or not PERIOD_RE.match(p):
            raise BadSelection(f"period {p!r} is not a run period name like B or Z1")
    if isinstance(runs, (str, int)):
        runs = [runs]
    if isinstance(lumi_blocks, (str, int)):
        lumi_blocks = [lumi_blocks]
    run_ranges = tuple(_range(r, "run") for r in runs)
    lb_ranges = tuple(_range(r, "lumi block") for r in lumi_blocks)
    if isinstance(bcid, (str, int)):
        bcid = [bcid]
    bcids = tuple(_range(r, "BCID", BCID_MAX) for r in bcid)
    if time_range is not None:
        time_range = _range(time_range, "time range")
    return Selection(project=project, runs=run_ranges, lumi_blocks=lb_ranges, stream=stream, datatype=datatype,
                     version=version, dataset=dataset, guid=guid, triggers=triggers, time_range=time_range,
                     include_obsolete=include_obsolete, periods=tuple(dict.fromkeys(periods)), bcids=bcids)


def overlaps_ranges(lo: int, hi: int, ranges: tuple[Range, ...]) -> bool:
    return not ranges or any(a <= hi and lo <= b for a, b in ranges)


def contained(lo: int, hi: int, ranges: tuple[Range, ...]) -> bool:
    return not ranges or any(a <= lo and hi <= b for a, b in ranges)


_NAMED = (("project", "project"), ("stream", "stream"), ("datatype", "data type"), ("version", "version"))


def event_id(run, event) -> tuple[int, int]:
    """``(run, event)`` as integers that fit the record schema (run: 32 bits, event: 64 bits), else BadSelection
    naming the number that does not and the range it must be in."""
    try:
        run, event = int(run), int(event)
    except (TypeError, ValueError):
        raise BadSelection(f"run and event must be integers, got {run!r} {event!r}") from None
    if not 0 <= run <= UINT32_MAX:
        raise BadSelection(f"run {run} is out of range (0..{UINT32_MAX})")
    if not 0 <= event <= UINT64_MAX:
        raise BadSelection(f"event {event} is out of range (0..{UINT64_MAX})")
    return run, event


def check_known(sel: Selection, manifest: list[dict]) -> None:
    """Refuse a selection naming a project, stream, data type or version that no dataset has.

    Such a selection can only ever answer 0, and a typo (physics_Mian) would pass for "no such events". Obsolete
    datasets count only when the selection includes them. Called by the backends when no dataset matches, so a
    good selection pays nothing for the check.
    """
    rows = [r for r in manifest if sel.include_obsolete or r["status"] == "loaded"]
    for key, what in _NAMED:
        value = getattr(sel, key)
        if value is None or (key == "version" and value == "latest"):
            continue
        known = list(dict.fromkeys(r[key] for r in rows if r[key] is not None))
        if value in known:
            continue
        if not manifest:
            raise BadSelection(f"unknown {what} {value!r}: the catalogue holds no datasets; load some first "
                               "(`eventindex load` or `make demo`)")
        if any(r[key] == value for r in manifest):
            raise BadSelection(f"{what} {value!r} is only in obsolete datasets (include obsolete datasets to "
                               "select them: --include-obsolete)")
        if not known:
            raise BadSelection(f"unknown {what} {value!r}: every dataset in the catalogue is obsolete")
        shown = [v or "'' (RAW, no AMI tag)" for v in known[:20]]
        more = f" and {len(known) - 20} more" if len(known) > 20 else ""
        close = close_matches(value, [v for v in known if v], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise BadSelection(f"unknown {what} {value!r}: the catalogue holds {', '.join(shown)}{more}{hint}")


def check_pairs(pairs) -> np.ndarray:
    """(run, event) pairs as an ``(N, 2)`` uint64 array, refused when a run does not fit in 32 bits."""
    try:
        pairs = np.asarray(pairs, dtype=np.uint64).reshape(-1, 2)
    except (OverflowError, ValueError, TypeError):
        raise BadSelection("run and event numbers must be integers from 0 (run: 32 bits, event: 64 bits)") from None
    if len(pairs) and int(pairs[:, 0].max()) > UINT32_MAX:
        raise BadSelection(f"run {int(pairs[:, 0].max())} is out of range (0..{UINT32_MAX})")
    return pairs


def has_trigger_information(row: dict) -> bool:
    """Whether a dataset's events carry trigger decisions: records without them (real xAOD files) have SMK 0."""
    return bool(row["smks"]) and 0 not in row["smks"]


def menus_missing(row: dict, menus: dict) -> list[int]:
    """The SMKs of a dataset whose trigger menu the catalogue does not hold (yet)."""
    return [s for s in row["smks"] if s and s not in menus]


def check_trigger_data(rows: list[dict], menus: dict) -> None:
    """Refuse a trigger selection over datasets it cannot answer for: events without trigger decisions, or taken
    with a menu not (yet) in the catalogue. Either would count 0 where the truth is unknown."""
    blind = [r["name"] for r in rows if not has_trigger_information(r)]
    if blind:
        raise NoTriggerInformation(
            f"no trigger information in {_listing(blind)}: {'its' if len(blind) == 1 else 'their'} events carry no "
            "trigger decisions (files without trigger masks, such as real xAOD files), so a trigger selection cannot "
            "be answered for them; select datasets that have some (by dataset, type or stream)")
    missing = {r["name"]: smks for r in rows if (smks := menus_missing(r, menus))}
    if missing:
        keys = sorted({s for smks in missing.values() for s in smks})
        named = _listing([f"{name} (SMK {', '.join(map(str, smks))})" for name, smks in missing.items()])
        raise MenuMissing(
            f"menu missing: no trigger menu for SMK {', '.join(map(str, keys))} in the catalogue, used by {named}; "
            "their events cannot be selected by trigger name until the conditions are synced (the "
            "eventindex_conditions DAG, or `eventindex load`, copies the menus from the conditions DB)")


def _listing(items: list[str], shown: int = 5) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def row_filters(sel: Selection, rows: list[dict], bits, column, trigger_expr) -> tuple[list[str], list]:
    """The event-level WHERE clauses of a selection, with bound parameters, for any SQL backend.

    ``column(name)`` spells a record column in the backend's SQL; ``trigger_expr({smk: (level, bit)})`` returns
    ``(sql, params)`` for "this trigger passed" (bit positions differ per menu).
    """
    clauses, params = [], []
    for name, ranges in (("run_number", sel.runs), ("lumi_block", sel.lumi_blocks), ("bcid", sel.bcids),
                         ("timestamp", (sel.time_range,) if sel.time_range else ())):
        if ranges:
            clauses.append("(" + " OR ".join(f"{column(name)} BETWEEN ? AND ?" for _ in ranges) + ")")
            params += [v for r in ranges for v in r]
    if sel.guid:
        stages = sorted({r["datatype"] for r in rows})
        clauses.append("(" + " OR ".join(f"{column(s + '_guid')} = ?" for s in stages) + ")")
        params += [guid_bytes(sel.guid)] * len(stages)
    for tree in sel.trigger_trees:
        e, p = expression.sql(tree, lambda name: trigger_expr(bits[name]))
        clauses.append(e)
        params += p
    return clauses, params
