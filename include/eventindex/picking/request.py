"""A picking request: "give me these events in this format", with every parameter checked before any work.

:data:`PARAMETERS` spells the request's parameters once. The DAG builds its form from it, the CLI and the demo send
:meth:`PickRequest.to_params`, and every task rebuilds the request with :meth:`PickRequest.from_params`, so a new
parameter is added in one place.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import BadRequest, EventIndexError
from ..naming import DATATYPE_RE, PROJECT_RE, STREAM_RE, TAG_RE, parse

PAIR_RE = re.compile(r"^\s*(\d{1,10})[\s,;:]+(\d{1,20})\s*$")
BACKENDS = ("local", "panda")
MAX_RUN, MAX_EVENT = 2**32 - 1, 2**64 - 1


@dataclass(frozen=True)
class Parameter:
    """One parameter of a picking request, as a form, the CLI and the DAG's params describe it."""

    name: str
    default: object
    help: str
    kind: str = "string"  # JSON-schema type: string, integer, number
    optional: bool = False  # may be null
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None


PARAMETERS = (
    Parameter("events", "", "'run event' pairs, one per line ('#' comments allowed)"),
    Parameter("datatype", "AOD", "data type of the events to extract", choices=("RAW", "ESD", "AOD", "DAOD_PHYS",
                                                                                 "DAOD_PHYSLITE")),
    Parameter("project", None, "project tag, e.g. data18_13TeV", optional=True),
    Parameter("stream", None, "trigger stream, e.g. physics_Main", optional=True),
    Parameter("version", None, "AMI tag of the data type (default: the newest loaded)", optional=True),
    Parameter("output", None, "output dataset, e.g. user.jdoe.picked.AOD (default: one named after the request)",
              optional=True),
    Parameter("max_events", None, "refuse a request of more events", kind="integer", optional=True, minimum=1),
    Parameter("backend", "local", "where extraction jobs run: this machine's workers, or PanDA", choices=BACKENDS),
    Parameter("files_per_job", 10, "input files per extraction job", kind="integer", minimum=1, maximum=1000),
    Parameter("job_timeout_minutes", 360, "PanDA: a job not finished by then (e.g. staging from tape) is killed "
                                          "and retried", kind="number", minimum=0.01),
)
DEFAULTS = {p.name: p.default for p in PARAMETERS}


@dataclass(frozen=True)
class PickRequest:
    events: np.ndarray = field(repr=False)  # (N, 2) uint64 run, event: sorted, unique
    datatype: str = "AOD"
    project: str | None = None
    stream: str | None = None
    version: str | None = None  # None: the newest loaded
    output: str | None = None
    max_events: int | None = None
    backend: str = "local"
    files_per_job: int = 10
    job_timeout_minutes: float = 360
    duplicates_in_request: int = 0

    @classmethod
    def from_params(cls, params: dict) -> "PickRequest":
        """The request from its parameters (the DAG run's conf, a form, the CLI), every one of them checked; unknown
        names are refused. Raises BadRequest naming the parameter or the line that is wrong."""
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise BadRequest(f"unknown parameter(s) {', '.join(unknown)}; a request takes {', '.join(DEFAULTS)}")
        request = cls.of(params)
        events = params.get("events")
        pairs, dups = parse_events(events if isinstance(events, str) else "")
        if request.max_events is not None and len(pairs) > request.max_events:
            raise BadRequest(f"the request holds {len(pairs)} events, more than its maximum {request.max_events}")
        return replace(request, events=pairs, duplicates_in_request=dups)

    @classmethod
    def of(cls, options: dict) -> "PickRequest":
        """A request without its events, every other parameter checked: what the steps after the plan work with
        (the plan passes them :meth:`options`, the events travel in chunks)."""
        p = {**DEFAULTS, **{k: v for k, v in options.items() if k != "events" and v is not None}}
        p = {k: (None if v == "" else v) for k, v in p.items()}
        check_options(p)
        return cls(np.empty((0, 2), np.uint64), p["datatype"], p["project"], p["stream"], p["version"] or None,
                   p["output"], p["max_events"], p["backend"], int(p["files_per_job"]),
                   float(p["job_timeout_minutes"]))

    def to_params(self) -> dict:
        """The parameters of a DAG run (JSON), the events as 'run event' lines."""
        return {**self.options(), "events": "\n".join(f"{r} {e}" for r, e in self.events.tolist())}

    def options(self) -> dict:
        """Every parameter but the events (small: fit for XCom, logs and the requests table)."""
        return {p.name: getattr(self, p.name) for p in PARAMETERS if p.name != "events"}

    def with_events(self, events: np.ndarray) -> "PickRequest":
        return replace(self, events=events)

    def output_name(self, request_id: str) -> str:
        """The output dataset: as asked, or one named after the request in the service's user scope."""
        return self.output or f"user.eventindex.{re.sub(r'[^A-Za-z0-9_]', '_', request_id)}.{self.datatype}"

    def digest(self) -> str:
        """What identifies the request's result: its events and the format, project, stream and version asked for."""
        h = hashlib.sha256(np.ascontiguousarray(self.events, dtype=np.uint64).tobytes())
        h.update(repr((self.datatype, self.project, self.stream, self.version)).encode())
        return h.hexdigest()


def check_options(p: dict) -> None:
    """Every parameter but the events, checked against :data:`PARAMETERS` and the nomenclature."""
    for spec in PARAMETERS:
        value = p.get(spec.name)
        if value is None:
            if not spec.optional and spec.name != "events":
                raise BadRequest(f"{spec.name}: a value is required ({spec.help})")
            continue
        if spec.kind in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (spec.kind == "integer" and not float(value).is_integer()):
                raise BadRequest(f"{spec.name}: {value!r} is not a{'n integer' if spec.kind == 'integer' else ' number'}")
            if spec.minimum is not None and value < spec.minimum or spec.maximum is not None and value > spec.maximum:
                raise BadRequest(f"{spec.name}: {value} is outside {spec.minimum:g}..{spec.maximum or 'no limit'}")
        elif not isinstance(value, str):
            raise BadRequest(f"{spec.name}: {value!r} is not text")
        if spec.name == "backend" and value not in BACKENDS:
            raise BadRequest(f"backend: {value!r} is not one of {', '.join(BACKENDS)}")
    if not DATATYPE_RE.match(p["datatype"] or ""):
        raise BadRequest(f"datatype: {p['datatype']!r} is not a known format (RAW, AOD, DAOD_<NAME>, ...)")
    if p.get("project") is not None and not PROJECT_RE.match(p["project"]):
        raise BadRequest(f"project: {p['project']!r} is not a project tag like data18_13TeV")
    if p.get("stream") is not None and not STREAM_RE.match(p["stream"]):
        raise BadRequest(f"stream: {p['stream']!r} is not a stream name like physics_Main")
    version = p.get("version")
    if version not in (None, "", "latest") and not all(TAG_RE.match(t) for t in version.split("_")):
        raise BadRequest(f"version: {version!r} is not an AMI tag chain like f961_m1831")
    if p.get("output") is not None:
        check_output(p["output"])


def check_output(output: str) -> None:
    try:
        official = parse(output) if output.count(".") >= 4 else None
    except EventIndexError:
        official = None
    if official is None and not re.fullmatch(r"user\.[a-z0-9_-]+\.[A-Za-z0-9_.-]{1,200}", output):
        raise BadRequest(f"output: {output!r} must be a user dataset like user.jdoe.picked.AOD")


def parse_events(text: str) -> tuple[np.ndarray, int]:
    """'run event' pairs, one per line ('#' comments and blank lines allowed) -> sorted unique pairs, duplicates.

    A line that does not parse is named by its number only: the text may come from a file the requester should not
    see echoed back (logs and the requests table are read by every analyst)."""
    text = text.lstrip("\ufeff")
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0]
        if not line.strip():
            continue
        m = PAIR_RE.match(line)
        if not m:
            raise BadRequest(f"events, line {number}: not a 'run event' pair of two numbers")
        run, event = int(m.group(1)), int(m.group(2))
        if run > MAX_RUN:
            raise BadRequest(f"events, line {number}: run {run} is out of range (0..{MAX_RUN})")
        if event > MAX_EVENT:
            raise BadRequest(f"events, line {number}: event {event} is out of range (0..{MAX_EVENT})")
        pairs.append((run, event))
    if not pairs:
        raise BadRequest("events: the request holds no events")
    arr = np.array(pairs, dtype=np.uint64)
    uniq = np.unique(arr, axis=0)
    return uniq, len(arr) - len(uniq)

