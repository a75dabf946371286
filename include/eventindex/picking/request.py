"""A picking request: "give me these events in this format", with every parameter checked before any work.

:data:`PARAMETERS` spells the request's parameters once. The DAG builds its form from it, the CLI and the demo send
:meth:`PickRequest.to_params`, and every task rebuilds the request with :meth:`PickRequest.from_params`, so a new
parameter is added in one place.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import BadRequest
from ..naming import DATATYPE_RE, PROJECT_RE, STREAM_RE, TAG_RE

PAIR_RE = re.compile(r"^\s*(\d{1,10})[\s,;:]+(\d{1,20})\s*$")
BACKENDS = ("local", "panda")
MAX_RUN, MAX_EVENT = 2**32 - 1, 2**64 - 1
MAX_INLINE_BYTES = 1 << 20  # the events a run's params carry; bigger requests are uploaded and passed by events_uri
MAX_REQUEST_BYTES = 64 << 20  # a request file a submitter (CLI, web app) takes; over the inline cap it is uploaded
SERVICE_ACCOUNT = "eventindex"  # who a run nobody triggered (scheduled, dag.test, the library) acts as
SCOPE_LENGTH, NAME_LENGTH = 25, 250  # Rucio's limits of a scope and a DID name
ACCOUNT_RE = re.compile(r"^[a-z0-9_-]{1,19}$")  # a Rucio account whose user.<account> scope fits SCOPE_LENGTH
OUTPUT_RE = re.compile(r"^(user|group)\.[a-z0-9_-]{1,19}\.[A-Za-z0-9][A-Za-z0-9_.-]*$")
UPLOAD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")
PLAIN_PAIR_RE = re.compile(r"^[^\S\n]*\d{1,10}(?:[^\S\n]|[,;:])+\d{1,20}[^\S\n]*$", re.M | re.A)  # a line, no '#'
NONBLANK_RE = re.compile(r"^[^\S\n]*\S", re.M)
SEPARATORS = str.maketrans(",;:", "   ")
REFUSED_URI = "events_uri: not a request uploaded to the requests area (eventindex pick uploads big requests there)"


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
    # optional, so that Airflow's form takes a request given by events_uri alone (its form requires a field that
    # may not be null); a request with neither is refused by the plan
    Parameter("events", "", f"'run event' pairs, one per line ('#' comments allowed); at most "
                            f"{MAX_INLINE_BYTES >> 20} MiB inline: bigger requests go by events_uri", optional=True),
    Parameter("events_uri", None, "instead of events: a bigger request, uploaded to the requests area "
                                  "(eventindex pick does this itself)", optional=True),
    Parameter("datatype", "AOD", "data type of the events to extract", choices=("RAW", "ESD", "AOD", "DAOD_PHYS",
                                                                                 "DAOD_PHYSLITE")),
    Parameter("project", None, "project tag, e.g. data18_13TeV", optional=True),
    Parameter("stream", None, "trigger stream, e.g. physics_Main", optional=True),
    Parameter("version", None, "AMI tag of the data type (default: the newest loaded)", optional=True),
    Parameter("output", None, "output dataset in your user scope or a group scope you belong to, e.g. "
                              "user.jdoe.picked.AOD (default: user.<you>.<request>.<type>)", optional=True),
    Parameter("max_events", None, "refuse a request of more events", kind="integer", optional=True, minimum=1),
    Parameter("backend", "local", "where extraction jobs run: this machine's workers, or PanDA", choices=BACKENDS),
    Parameter("files_per_job", 10, "input files per extraction job", kind="integer", minimum=1, maximum=1000),
    Parameter("job_timeout_minutes", 360, "PanDA: a job not finished by then (e.g. staging from tape) is killed "
                                          "and retried", kind="number", minimum=0.01),
)
DEFAULTS = {p.name: p.default for p in PARAMETERS}
INPUTS = ("events", "events_uri")  # where the events come from: not options of the steps after the plan


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
    def from_params(cls, params: dict, requests_area: str | None = None, *,
                    inline_cap: int = MAX_INLINE_BYTES) -> "PickRequest":
        """The request from its parameters (the DAG run's conf, a form, the CLI), every one of them checked; unknown
        names are refused. The events come inline (at most ``inline_cap`` bytes) or, with ``events_uri``, from an
        upload under ``requests_area`` (nothing else is read). Raises BadRequest naming the parameter or the line
        that is wrong.

        A run's params carry at most :data:`MAX_INLINE_BYTES`; a submitter (CLI, web app) reading a file checks it
        with ``inline_cap=MAX_REQUEST_BYTES`` before anything is sent, and :func:`submission_params` then uploads
        what is too big to go inline."""
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise BadRequest(f"unknown parameter(s) {', '.join(unknown)}; a request takes {', '.join(DEFAULTS)}")
        request = cls.of(params)
        events, uri = params.get("events") or "", params.get("events_uri") or None
        if not isinstance(events, str):
            raise BadRequest("events: not text of 'run event' lines")
        if events.strip() and uri is not None:
            raise BadRequest("events, events_uri: give one of them, not both")
        if uri is not None:
            events = read_uploaded(uri, requests_area)
        elif len(events.encode()) > inline_cap:
            size = len(events.encode())
            if inline_cap > MAX_INLINE_BYTES:  # a submitter's file: nothing bigger is uploaded either
                raise BadRequest(f"events: {size:,} bytes, more than the {inline_cap >> 20} MiB a request may "
                                 "hold; split it into several requests")
            raise BadRequest(f"events: {size:,} bytes inline, more than the cap of "
                             f"{inline_cap >> 20} MiB ({inline_cap:,} bytes); upload a bigger request "
                             "to the requests area and pass events_uri (eventindex pick does)")
        elif not events.strip():
            raise BadRequest("events: the request holds no events (give 'run event' lines, or events_uri for a "
                             "request uploaded to the requests area)")
        pairs, dups = parse_events(events)
        if request.max_events is not None and len(pairs) > request.max_events:
            raise BadRequest(f"the request holds {len(pairs)} events, more than its maximum {request.max_events}")
        return replace(request, events=pairs, duplicates_in_request=dups)

    @classmethod
    def of(cls, options: dict) -> "PickRequest":
        """A request without its events, every other parameter checked: what the steps after the plan work with
        (the plan passes them :meth:`options`, the events travel in chunks)."""
        p = {**DEFAULTS, **{k: v for k, v in options.items() if k not in INPUTS and v is not None}}
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
        return {p.name: getattr(self, p.name) for p in PARAMETERS if p.name not in INPUTS}

    def with_events(self, events: np.ndarray) -> "PickRequest":
        return replace(self, events=events)

    def output_name(self, request_id: str, caller: str = SERVICE_ACCOUNT) -> str:
        """The output dataset: as asked, or one named after the request in the caller's user scope."""
        return self.output or f"user.{caller}.{re.sub(r'[^A-Za-z0-9_]', '_', request_id)}.{self.datatype}"

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
        if spec.name in INPUTS:
            continue
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
    """The output's name, before anything is written: a dataset in a user or group scope (never an official one),
    Rucio-legal characters and lengths, nothing path-like ('/', an absolute path, '..')."""
    if len(output) > NAME_LENGTH or ".." in output or not OUTPUT_RE.match(output) or \
            len(output_scope(output)) > SCOPE_LENGTH:
        raise BadRequest(f"output: {output[:NAME_LENGTH]!r} is not a dataset in a user or group scope like "
                         f"user.jdoe.picked.AOD (a-z, 0-9, '_', '-' in the scope; then A-Z, a-z, 0-9, '.', '_', "
                         f"'-', no '..'; at most {NAME_LENGTH} characters)")


def output_scope(output: str) -> str:
    return ".".join(output.split(".")[:2])


def check_scope(output: str, caller: str, groups=()) -> None:
    """Outputs go only to ``user.<caller>`` or to ``group.<name>`` of a group the caller belongs to."""
    check_output(output)
    allowed = [f"user.{caller}"] + [f"group.{g}" for g in groups]
    if output_scope(output) not in allowed:
        raise BadRequest(f"output: {output!r} is in the scope {output_scope(output)}; {caller} may write only to "
                         f"{', '.join(allowed)}")


def authorize(request: PickRequest, caller: str, groups=(), request_id: str | None = None) -> PickRequest:
    """The request as ``caller`` (a member of ``groups``) may make it: its output checked against the scope rule,
    and, given the request's id, the default output named in the caller's user scope. Raises BadRequest."""
    if not ACCOUNT_RE.match(caller or ""):
        raise BadRequest(f"output: the user {caller!r} has no Rucio user scope (1-19 of a-z, 0-9, '_', '-')")
    if request.output is None and request_id is None:
        return request
    output = request.output_name(request_id, caller) if request.output is None else request.output
    check_scope(output, caller, groups)
    return replace(request, output=output)


def read_uploaded(uri, requests_area: str | None) -> str:
    """The text of an uploaded request: only an object directly under the requests area is read. Anything else,
    or an object that cannot be read, gets one message, which neither shows content nor tells whether it exists."""
    from ..staging import uri_of
    from ..workarea import read_bytes

    if not isinstance(uri, str) or not requests_area:
        raise BadRequest(REFUSED_URI)
    if "://" in requests_area:
        head, _, query = uri.partition("?")
        base, _, area_query = requests_area.partition("?")
        name = head[len(base.rstrip("/")) + 1:] if head.startswith(base.rstrip("/") + "/") else ""
    else:
        from pathlib import Path

        path = Path(uri).resolve() if "://" not in uri and uri.startswith("/") else None
        name = path.name if path is not None and path.parent == Path(requests_area).expanduser().resolve() else ""
    if not UPLOAD_RE.match(name) or ".." in name or uri_of(requests_area, name) != uri:
        raise BadRequest(REFUSED_URI)
    try:
        return read_bytes(uri).decode("utf-8")
    except (OSError, ValueError):  # missing, a folder, unreadable, not UTF-8: all the same to the requester
        raise BadRequest(REFUSED_URI) from None


def upload_events(text: str, requests_area: str) -> str:
    """A request's events as a fresh object under the requests area; its URI (for ``events_uri``)."""
    from ..staging import atomic_output, open_staging, uri_of

    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex}.txt"
    fs, base = open_staging(requests_area)
    with atomic_output(fs, f"{base}/{name}") as stream:
        stream.write(text.encode())
    return uri_of(requests_area, name)


def submission_params(request: PickRequest, requests_area: str) -> dict:
    """A run's params for ``request``: the events inline up to :data:`MAX_INLINE_BYTES`, else uploaded to the
    requests area and passed by ``events_uri`` (so that the run's params stay small)."""
    params = request.to_params()
    if len(params["events"].encode()) <= MAX_INLINE_BYTES:
        return params
    return {**params, "events": "", "events_uri": upload_events(params["events"], requests_area)}


def parse_events(text: str) -> tuple[np.ndarray, int]:
    """'run event' pairs, one per line ('#' comments and blank lines allowed) -> sorted unique pairs, duplicates.

    A line that does not parse is named by its number only: the text may come from a file the requester should not
    see echoed back (logs and the requests table are read by every analyst). Plain text (every line a pair, no
    comment) is read at C speed; anything else, line by line, which names the first bad line."""
    text = text.lstrip("\ufeff")
    arr = _plain_pairs(text)
    if arr is not None:
        uniq = _sorted_unique(arr)
        return uniq, len(arr) - len(uniq)
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
    uniq = _sorted_unique(arr)
    return uniq, len(arr) - len(uniq)


def _plain_pairs(text: str) -> np.ndarray | None:
    """The pairs of a text whose every non-blank line is one plain pair (ASCII digits, no comment, '\\n' line
    breaks only) and in range, or None: the line-by-line parser then says what is wrong. A request of millions of
    lines is read without a Python step per line."""
    if "#" in text or len(text.splitlines()) != text.count("\n") + (not text.endswith("\n")):
        return None  # comments, or line breaks other than \n (which str.splitlines, the slow path, honours)
    lines = len(NONBLANK_RE.findall(text))
    if not lines or sum(1 for _ in PLAIN_PAIR_RE.finditer(text)) != lines:
        return None
    try:
        arr = np.array(text.translate(SEPARATORS).split(), dtype=np.uint64).reshape(-1, 2)
    except (OverflowError, ValueError):  # an event past 2**64 - 1
        return None
    return None if len(arr) != lines or (arr[:, 0] > MAX_RUN).any() else arr


def _sorted_unique(arr: np.ndarray) -> np.ndarray:
    """The distinct (run, event) rows, sorted (as ``np.unique(axis=0)``, several times faster)."""
    if len(arr) == 0:
        return arr
    arr = arr[np.lexsort((arr[:, 1], arr[:, 0]))]
    keep = np.ones(len(arr), bool)
    keep[1:] = (arr[1:] != arr[:-1]).any(axis=1)
    return arr[keep]

