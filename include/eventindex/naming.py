"""ATLAS dataset nomenclature: parse and format dataset names and Rucio DIDs.

Real data:   ``project.run.stream.prodstep.datatype[.amitags]``   e.g.
             ``data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831`` (RAW has no AMI tag:
             ``data18_13TeV.00358031.physics_Main.daq.RAW``)
Simulation:  ``project.dsid.physics_short.prodstep.datatype.amitags`` e.g.
             ``mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYS.e6337_s3126_r10201_p4172``
A Rucio DID prefixes the scope: ``data18_13TeV:data18_13TeV.00358031...``. Production task outputs may end in
``_tid01234567_00``; Rucio's transfer helpers add ``_sub``/``_dis`` datasets, which we recognise so that
callers can skip them.

The AMI tag chain is the dataset's version.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from .errors import MalformedDatasetName

PROJECT_RE = re.compile(r"^(data|mc)(\d{2})_([0-9A-Za-z]+)$")
STREAM_RE = re.compile(r"^[a-z]+_[A-Za-z0-9]+$")
PHYSICS_SHORT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$")
SCOPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,29}$")
TAG_RE = re.compile(r"^[a-z]\d+$")
SUFFIX_RE = re.compile(r"(_tid\d+_\d+|_sub\d+|_dis\d+|_shadow)$")
DATATYPE_RE = re.compile(r"^(RAW|ESD|AOD|EVNT|HITS|RDO|HIST|TAG|AOD_EVT|(DAOD|DESD|DRAW|DAPD|NTUP|D2AOD)_[A-Z0-9]+)$")
PRODSTEPS = ("daq", "evgen", "simul", "digit", "recon", "merge", "deriv", "reco")
TAGLESS_DATATYPES = ("RAW",)


@dataclass(frozen=True)
class DatasetName:
    """The fields of an ATLAS dataset name. ``str(d)`` gives the name back in its canonical form."""

    project: str
    prodstep: str
    datatype: str
    run_number: int | None = None  # real data
    stream: str | None = None
    dsid: int | None = None  # simulation: the dataset (channel) number
    physics_short: str | None = None
    amitag: str | None = None
    suffix: str | None = None  # _tidNNN_NN, _subNNN, _disNNN, _shadow
    scope: str | None = None

    @property
    def is_mc(self) -> bool:
        return self.project.startswith("mc")

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self.amitag.split("_")) if self.amitag else ()

    @property
    def version(self) -> str | None:
        """The AMI tag chain, which identifies a processing version."""
        return self.amitag

    @property
    def name(self) -> str:
        head = f"{self.run_number:08d}.{self.stream}" if not self.is_mc else f"{self.dsid:06d}.{self.physics_short}"
        name = f"{self.project}.{head}.{self.prodstep}.{self.datatype}"
        if self.amitag:
            name += f".{self.amitag}"
        return name + (self.suffix or "")

    @property
    def did(self) -> str:
        """Rucio DID; official datasets live in the scope named after their project."""
        return f"{self.scope or self.project}:{self.name}"

    @property
    def is_transient(self) -> bool:
        """A ``_sub``/``_dis``/``_shadow`` helper dataset, which event picking must skip."""
        return bool(self.suffix) and not self.suffix.startswith("_tid")

    def with_tag(self, amitag: str | None, datatype: str | None = None, prodstep: str | None = None) -> "DatasetName":
        """The same sample at another processing stage or version."""
        from dataclasses import replace

        return replace(
            self, amitag=amitag, datatype=datatype or self.datatype, prodstep=prodstep or self.prodstep, suffix=None
        )

    def to_dict(self) -> dict:
        out = {"did": self.did, "name": self.name, **asdict(self)}
        out["scope"] = self.scope or self.project
        out["tags"] = list(self.tags)
        out["version"] = self.version
        out["is_mc"] = self.is_mc
        for key in ("run_number", "stream") if self.is_mc else ("dsid", "physics_short"):
            out.pop(key)
        return out

    def __str__(self) -> str:
        return self.name


def _fail(name: str, why: str) -> MalformedDatasetName:
    return MalformedDatasetName(f"malformed dataset name {name!r}: {why}")


def parse(text: str) -> DatasetName:
    """Parse a dataset name or a Rucio DID ``scope:name``; raise MalformedDatasetName saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise _fail(str(text), "the name is empty")
    original = text
    text = text.strip()
    scope = None
    if ":" in text:
        scope, text = text.split(":", 1)
        if not SCOPE_RE.match(scope):
            raise _fail(original, f"scope {scope!r} is not a valid Rucio scope")
    if not text.isascii() or any(c.isspace() for c in text):
        raise _fail(original, "names hold only ASCII letters, digits, '.', '_' and '-'")
    suffix = None
    m = SUFFIX_RE.search(text)
    if m:
        suffix, text = m.group(1), text[: m.start()]
    parts = text.split(".")
    if len(parts) < 5:
        raise _fail(
            original,
            f"expected at least 5 dot-separated fields (project.run.stream.prodstep.datatype[.amitag]), got {len(parts)}",
        )
    if len(parts) > 6:
        raise _fail(original, f"expected at most 6 dot-separated fields, got {len(parts)}")
    project, head, middle, prodstep, datatype = parts[:5]
    amitag = parts[5] if len(parts) == 6 else None

    pm = PROJECT_RE.match(project)
    if not pm:
        raise _fail(original, f"project {project!r} is not a project tag like data18_13TeV or mc16_13TeV")
    is_mc = pm.group(1) == "mc"
    if is_mc:
        if not head.isdigit() or not 6 <= len(head) <= 8:
            raise _fail(original, f"dataset number {head!r} must be 6 digits (e.g. 410470)")
        if not PHYSICS_SHORT_RE.match(middle):
            raise _fail(original, f"physics short name {middle!r} holds characters other than letters, digits and '_'")
    else:
        if not head.isdigit() or len(head) != 8:
            raise _fail(original, f"run number {head!r} must be 8 digits (e.g. 00358031)")
        if not STREAM_RE.match(middle):
            raise _fail(original, f"stream {middle!r} is not a stream name like physics_Main or express_express")
    if prodstep not in PRODSTEPS:
        raise _fail(original, f"production step {prodstep!r} is not one of {', '.join(PRODSTEPS)}")
    if not DATATYPE_RE.match(datatype):
        raise _fail(original, f"data type {datatype!r} is not a known format (RAW, ESD, AOD, DAOD_<NAME>, ...)")
    if amitag is None:
        if datatype not in TAGLESS_DATATYPES:
            raise _fail(original, f"a {datatype} dataset needs an AMI tag (e.g. f961_m1831); only RAW has none")
    else:
        for tag in amitag.split("_"):
            if not TAG_RE.match(tag):
                raise _fail(original, f"AMI tag {tag!r} in {amitag!r} is not a letter followed by digits (e.g. r10201)")
    if scope and scope.startswith(("data", "mc")) and scope != project:
        raise _fail(original, f"scope {scope!r} differs from the project {project!r} of an official dataset")
    return DatasetName(
        project=project,
        prodstep=prodstep,
        datatype=datatype,
        run_number=None if is_mc else int(head),
        stream=None if is_mc else middle,
        dsid=int(head) if is_mc else None,
        physics_short=middle if is_mc else None,
        amitag=amitag,
        suffix=suffix,
        scope=scope,
    )


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except MalformedDatasetName:
        return False
    return True
