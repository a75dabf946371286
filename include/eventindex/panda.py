"""The PanDA backend of event picking: extraction jobs submitted with panda-client and followed until they end.

One PanDA job per group of input files. Its transformation is this package's ``eventindex`` command, installed where
the jobs run; its parameters (``eventindex extract-job ...``) name the input files (replica URL, GUID, entries), the
output file and where it goes: ``--output-uri``, the request's folder in the output RSE's storage (an object store in
production; the job takes its credentials from its environment, never from its parameters). The job writes the
output to its own scratch space, copies it there whole, and writes ``jobReport.json`` in its working folder; the
pilot reports the output file's GUID and size back to PanDA, where ``getJobStatus`` returns them. Job states: defined,
activated, starting, running, transferring -> finished | failed | cancelled | closed.

The client reads its server URLs at import; :func:`client` points an already imported client at the configured server
too, so one process can talk to several servers (tests) or be configured after start-up (Airflow workers).
"""

from __future__ import annotations

import json
import shlex
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from .errors import ConfigurationError, NotFound, PandaError
from .settings import scoped_environ

TERMINAL = ("finished", "failed", "cancelled", "closed")
REPORT = "jobReport.json"


@dataclass(frozen=True)
class PandaConfig:
    url: str  # the server's base URL, as PANDA_URL: https://pandaserver.cern.ch:25443/server/panda
    site: str = "ANALY_LOCAL"  # computingSite of the jobs
    auth: str | None = None  # None: a grid proxy (X509_USER_PROXY); "oidc": an ID token (a file or the token itself)
    vo: str | None = None  # the VO for OIDC (PANDA_AUTH_VO)
    poll_seconds: float = 30.0
    token_file: str | None = None  # OIDC: a file holding the ID token (OIDC_AUTH_TOKEN_FILE)
    id_token: str | None = field(default=None, repr=False)  # OIDC: the token itself (PANDA_AUTH_ID_TOKEN)

    @classmethod
    def from_settings(cls, settings) -> PandaConfig | None:
        """The server the settings name (``$EVENTINDEX_PANDA_URL`` or ``$PANDA_URL``), or None."""
        if not settings.panda_url:
            return None
        return cls(settings.panda_url, settings.panda_site, settings.panda_auth, settings.panda_vo,
                   settings.panda_poll_seconds, settings.panda_token_file, settings.panda_id_token)

    def environment(self) -> dict[str, str]:
        """What panda-client reads from the environment while it makes a call (it has no other way to be told)."""
        env = {"PANDA_BEHIND_REAL_LB": "1"}  # else the import resolves the cache host through DNS
        for key, value in (("PANDA_AUTH", self.auth), ("PANDA_AUTH_VO", self.vo),
                           ("OIDC_AUTH_TOKEN_FILE", self.token_file), ("PANDA_AUTH_ID_TOKEN", self.id_token)):
            if value:
                env[key] = value
        return env


@contextmanager
def scoped_environment(cfg: PandaConfig):
    """panda-client's settings in the environment for the length of one call, then the environment as it was."""
    if cfg.auth == "oidc" and not (cfg.token_file or cfg.id_token):
        # without one, panda-client starts an interactive device-authorization flow and exits the process on failure
        raise ConfigurationError("PanDA OIDC authentication needs an ID token: set OIDC_AUTH_TOKEN_FILE (connection "
                                 "eventindex_panda extra.token_file) or PANDA_AUTH_ID_TOKEN")
    with scoped_environ({"PANDA_AUTH": None, "PANDA_AUTH_VO": None, "OIDC_AUTH_TOKEN_FILE": None,
                         "PANDA_AUTH_ID_TOKEN": None, **cfg.environment()}):
        yield


def client(cfg: PandaConfig):
    """``pandaclient.Client`` pointed at ``cfg.url`` (whatever it was imported with); call it inside
    :func:`scoped_environment`."""
    with scoped_environment(cfg):
        from pandaclient import Client

    return _point(Client, cfg.url)


def _point(Client, url: str):
    parsed = urlparse(url)
    base = f"{parsed.scheme}://{parsed.netloc}/api/v1"
    Client.baseURL = Client.baseURLSSL = Client.baseURLCSRVSSL = url
    Client.server_base_path = Client.server_base_path_ssl = Client.cache_base_path_ssl = base
    return Client


def entries_text(entries) -> str:
    """Sorted entry numbers as compact ranges: [0, 1, 2, 7, 9, 10] -> '0-2,7,9-10'."""
    values = sorted({int(e) for e in entries})
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ",".join(parts)


def parse_entries(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def job_name(request_id: str, job: int, attempt: int) -> str:
    return f"eventindex_pick.{request_id}.{job:05d}.{attempt}"


def output_lfn(output_dataset: str, job: int, attempt: int) -> str:
    return f"{output_dataset}._{job:05d}.{attempt}.pool.root"


def job_spec(cfg: PandaConfig, request_id: str, job: int, attempt: int, files: dict[str, dict], guids: list[str],
             output_uri: str, output_dataset: str):
    """The JobSpec of one extraction job: input FileSpecs (GUID, LFN, dataset, scope), one output and one log file;
    the output goes to ``<output_uri>/<lfn>`` (``output_uri`` sent without credentials)."""
    from pandaclient.FileSpec import FileSpec
    from pandaclient.JobSpec import JobSpec

    from .picking.outputs import without_credentials

    lfn = output_lfn(output_dataset, job, attempt)
    args = ["extract-job", "--output-uri", without_credentials(str(output_uri)), "--job", str(job), "--lfn", lfn]
    spec = JobSpec()
    spec.jobName = job_name(request_id, job, attempt)
    spec.transformation = "eventindex"
    spec.prodSourceLabel = "user"
    spec.processingType = "eventpicking"
    spec.computingSite = cfg.site
    spec.destinationDBlock = output_dataset
    spec.currentPriority = spec.assignedPriority = 1000
    spec.attemptNr = attempt
    spec.nInputFiles = len(guids)
    for guid in guids:
        info = files[guid]
        f = FileSpec()
        f.GUID, f.lfn, f.type, f.scope = guid, info["lfn"], "input", info["scope"]
        f.dataset = f.prodDBlock = info["dataset"]
        f.status = "ready"
        spec.addFile(f)
        args += ["--input", info["pfn"], guid, entries_text(info["oids"])]
    for kind, name in (("output", lfn), ("log", f"{output_dataset}.log._{job:05d}.{attempt}.tgz")):
        f = FileSpec()
        f.lfn, f.type, f.dataset, f.destinationDBlock = name, kind, output_dataset, output_dataset
        spec.addFile(f)
    spec.jobParameters = shlex.join(args)
    return spec


class PandaJobs:
    """Submit, follow and kill extraction jobs through panda-client."""

    def __init__(self, cfg: PandaConfig):
        self.cfg = cfg
        self.client = client(cfg)

    def _call(self, name: str, *args):
        with scoped_environment(self.cfg):
            _point(self.client, self.cfg.url)
            return getattr(self.client, name)(*args)

    def submit(self, specs) -> list[int]:
        status, out = self._call("submitJobs", specs)
        if status != 0 or not out:
            raise PandaError(f"PanDA {self.cfg.url} refused the submission (status {status}): {out}")
        ids = []
        for item in out:
            if not item or item[0] in (None, "NULL"):
                raise PandaError(f"PanDA did not accept job {item}")
            ids.append(int(item[0]))
        return ids

    def status(self, ids: list[int]) -> dict[int, dict]:
        """PandaID -> {state, error, outputs: [{lfn, guid, fsize, checksum}]} (``None`` for ids PanDA does not know)."""
        status, jobs = self._call("getJobStatus", [int(i) for i in ids])
        if status != 0 or jobs is None:
            raise PandaError(f"PanDA {self.cfg.url}: getJobStatus failed (status {status})")
        out = {}
        for pid, spec in zip(ids, jobs):
            if spec is None:
                out[int(pid)] = None
                continue
            errors = [f"{kind} {getattr(spec, kind + 'ErrorCode')}: {getattr(spec, kind + 'ErrorDiag')}"
                      for kind in ("pilot", "exe", "sup", "ddm", "brokerage", "taskBuffer")
                      if getattr(spec, kind + "ErrorCode") not in (None, 0, "0", "NULL")]
            outputs = [{"lfn": f.lfn, "guid": f.GUID, "fsize": f.fsize, "checksum": f.checksum}
                       for f in spec.Files if f.type == "output"]
            out[int(pid)] = {"state": spec.jobStatus, "error": "; ".join(errors) or None, "outputs": outputs,
                             "name": spec.jobName}
        return out

    def kill(self, ids: list[int]) -> None:
        status, out = self._call("killJobs", [int(i) for i in ids])
        if status != 0:
            raise PandaError(f"PanDA {self.cfg.url}: killJobs failed (status {status}): {out}")

    def wait(self, ids: list[int], timeout_s: float) -> dict[int, dict]:
        """Poll until every job ended, or kill those still running after ``timeout_s`` (their state: ``timeout``).
        The in-process counterpart of the DAG's trigger, for runs without Airflow."""
        deadline, states = time.monotonic() + timeout_s, {}
        while True:
            pending = [i for i in ids if i not in states]
            for pid, state in self.status(pending).items():
                if state is not None and state["state"] in TERMINAL:
                    states[pid] = state
            pending = [i for i in ids if i not in states]
            if not pending:
                return states
            if time.monotonic() > deadline:
                self.kill(pending)
                return {**states, **{i: {"state": "timeout", "error": f"not finished after {timeout_s:.0f} s",
                                         "outputs": []} for i in pending}}
            time.sleep(self.cfg.poll_seconds)


def job_outputs(state: dict, output_uri: str) -> list[dict]:
    """The outputs of a finished job, found at ``<output_uri>/<lfn>``, in the shape the local backend returns
    (lfn, guid, uri, nevents, bytes)."""
    import uproot

    from .picking.outputs import local_copy, object_info, without_credentials
    from .rootfile import EVENTS_TREE
    from .staging import uri_of

    result = []
    for o in state["outputs"]:
        uri = uri_of(str(output_uri), o["lfn"])
        try:
            size = object_info(uri).size
            with local_copy(uri) as path, uproot.open(path) as h:
                n = h[EVENTS_TREE].num_entries
        except NotFound:
            raise NotFound(f"PanDA job {state.get('panda_id', '?')} says it produced {o['lfn']}, but there is no "
                           f"such file at {without_credentials(uri)}") from None
        result.append({"lfn": o["lfn"], "guid": o["guid"], "uri": uri, "nevents": int(n), "bytes": int(size)})
    return result


def run_job_command(argv: list[str]) -> dict:
    """The transformation (``eventindex extract-job``): read the entries, store the output at ``--output-uri``
    (a folder or an object-store URI), write jobReport.json."""
    import argparse

    from .picking.extraction import extract

    p = argparse.ArgumentParser(prog="eventindex extract-job")
    p.add_argument("--output-uri", required=True, help="the folder or object-store URI the output goes to")
    p.add_argument("--job", type=int, required=True)
    p.add_argument("--lfn", required=True)
    p.add_argument("--input", nargs=3, action="append", metavar=("PFN", "GUID", "ENTRIES"), required=True)
    args = p.parse_args(argv)
    files = {guid: {"pfn": pfn, "oids": parse_entries(entries)} for pfn, guid, entries in args.input}
    result = extract(files, list(files), args.output_uri, args.job, lfn=args.lfn)
    report = {"exitCode": 0, "files": {"output": [{"lfn": result["lfn"], "guid": result["guid"],
                                                   "nentries": result["nevents"], "fsize": result["bytes"]}]}}
    Path(REPORT).write_text(json.dumps(report))
    return result
