"""A STAND-IN for the PanDA server, used only by the tests and benchmarks: no PanDA server can run here (it needs
Apache with mod_ssl and gridsite, an unpublished database schema, JEDI and pilots).

It answers the HTTP API that panda-client 2.2 calls for event picking, in its wire format (JSON envelopes
``{"success", "message", "data"}``; jobs submitted as positional JobSpec value lists whose last element is the list of
positional FileSpec value lists; descriptions returned as dicts by field name with ``"Files"``):
``GET /api/v1/system/is_alive``, ``POST /api/v1/job/submit``, ``/job/get_description``, ``/job/kill``.

A pilot thread per job plays the grid: defined -> activated -> starting -> running, runs the job's transformation
(``<this environment's bin>/<transformation> <jobParameters>``) in a fresh working folder, and reports the output
file's GUID and size from ``jobReport.json`` -> finished, or failed with the exit code and the last line of stderr.

With a ``token``, every call must carry ``Authorization: Bearer <token>`` and ``Origin: <vo>`` (panda-client's OIDC
mode); others get 403.

Fault injection, each applied to the first attempt of a job whose name contains the key:
``fail``: the pilot reports a failure; ``stall``: the job stays activated (as when staging from tape) until killed.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pandaclient.FileSpec import FileSpec
from pandaclient.JobSpec import JobSpec

JOB_FIELDS = JobSpec._attributes
FILE_FIELDS = FileSpec._attributes


class PandaStandIn:
    def __init__(self, workdir: Path, faults: dict[str, str] | None = None, step_seconds: float = 0.05,
                 token: str | None = None, vo: str = "atlas"):
        self.workdir = Path(workdir)
        self.token, self.vo = token, vo
        self.faults = dict(faults or {})
        self.step = step_seconds
        self.jobs: dict[int, dict] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every call, in order
        self._lock = threading.Lock()
        self._next_id = 4_100_000_000
        self._killed: dict[int, threading.Event] = {}
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ---

    def start(self) -> str:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/server/panda"

    def stop(self) -> None:
        for ev in self._killed.values():
            ev.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # --- the API ---

    def submit(self, payload: dict) -> list:
        states = json.loads(payload["jobs"])
        out = []
        for state in states:
            if len(state) != len(JOB_FIELDS) + 1:
                raise ValueError(f"a job spec has {len(state)} values, expected {len(JOB_FIELDS) + 1}")
            job = dict(zip(JOB_FIELDS, state[:-1]))
            job["Files"] = [dict(zip(FILE_FIELDS, f)) for f in state[-1]]
            for f in job["Files"]:
                if len(f) != len(FILE_FIELDS):
                    raise ValueError("a file spec has the wrong number of values")
            with self._lock:
                self._next_id += 1
                pid = self._next_id
                job.update(PandaID=pid, jobDefinitionID=pid - 4_100_000_000, jobStatus="defined",
                           creationTime=datetime.now(timezone.utc).replace(tzinfo=None))
                for f in job["Files"]:
                    f["PandaID"] = pid
                self.jobs[pid] = job
                self._killed[pid] = threading.Event()
            fault = None
            for key in list(self.faults):
                if key in (job["jobName"] or ""):
                    fault = self.faults.pop(key)
                    break
            threading.Thread(target=self._pilot, args=(pid, fault), daemon=True).start()
            out.append([pid, job["jobDefinitionID"], job["jobName"]])
        return out

    def describe(self, ids: list[int]) -> list:
        with self._lock:
            return [json.loads(json.dumps(self.jobs[int(i)], default=_encode)) if int(i) in self.jobs else None
                    for i in ids]

    def kill(self, ids: list[int]) -> list:
        done = []
        for i in ids:
            job = self.jobs.get(int(i))
            if job is None or job["jobStatus"] in ("finished", "failed", "cancelled", "closed"):
                done.append(False)
                continue
            self._set(int(i), jobStatus="cancelled", taskBufferErrorCode=100, taskBufferErrorDiag="killed by user")
            self._killed[int(i)].set()
            done.append(True)
        return done

    # --- the grid ---

    def _set(self, pid: int, **values) -> None:
        with self._lock:
            self.jobs[pid].update(values, modificationTime=datetime.now(timezone.utc).replace(tzinfo=None))

    def _pilot(self, pid: int, fault: str | None) -> None:
        killed = self._killed[pid]
        for state in ("activated", "starting", "running"):
            if killed.wait(self.step):
                return
            if fault == "stall" and state == "starting":
                killed.wait()  # staging from tape, forever
                return
            self._set(pid, jobStatus=state)
        job = self.jobs[pid]
        if fault == "fail":
            self._set(pid, jobStatus="failed", pilotErrorCode=1305, pilotErrorDiag="stand-in: injected pilot failure")
            return
        cwd = self.workdir / f"job-{pid}"
        cwd.mkdir(parents=True)
        exe = Path(sys.executable).parent / job["transformation"]
        proc = subprocess.run([str(exe), *shlex.split(job["jobParameters"])], cwd=cwd, capture_output=True, text=True)
        (cwd / "payload.stdout").write_text(proc.stdout + proc.stderr)
        if killed.is_set():
            return
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            self._set(pid, jobStatus="failed", transExitCode=proc.returncode, exeErrorCode=proc.returncode,
                      exeErrorDiag=last[:500])
            return
        report = json.loads((cwd / "jobReport.json").read_text())
        produced = {o["lfn"]: o for o in report["files"]["output"]}
        with self._lock:
            for f in job["Files"]:
                if f["type"] == "output":
                    if f["lfn"] not in produced:
                        job.update(jobStatus="failed", pilotErrorCode=1165,
                                   pilotErrorDiag=f"expected output {f['lfn']} is missing")
                        return
                    f.update(GUID=produced[f["lfn"]]["guid"], fsize=produced[f["lfn"]]["fsize"], status="ready")
            job.update(jobStatus="finished", transExitCode=0, nEvents=sum(o["nentries"] for o in produced.values()))


def _encode(value):
    if isinstance(value, datetime):
        return {"__datetime__": value.isoformat()}
    raise TypeError(type(value))


class _Handler(BaseHTTPRequestHandler):
    standin: PandaStandIn

    def log_message(self, *args):
        pass

    def _reply(self, success: bool, data=None, message: str = "", code: int = 200) -> None:
        body = json.dumps({"success": success, "message": message, "data": data}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        s = self.standin
        if s.token is None or (self.headers.get("Authorization") == f"Bearer {s.token}"
                               and self.headers.get("Origin") == s.vo):
            return True
        self._reply(False, message="authentication failed: no valid OIDC token", code=403)
        return False

    def do_GET(self):
        self.standin.requests.append(("GET", self.path))
        if not self._authorized():
            return
        if self.path.split("?")[0] == "/api/v1/system/is_alive":
            return self._reply(True, "alive", "OK")
        self._reply(False, message=f"no such endpoint {self.path}", code=404)

    def do_POST(self):
        self.standin.requests.append(("POST", self.path))
        if not self._authorized():
            return
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        routes = {"/api/v1/job/submit": lambda: self.standin.submit(payload),
                  "/api/v1/job/get_description": lambda: self.standin.describe(payload["job_ids"]),
                  "/api/v1/job/kill": lambda: self.standin.kill(payload["job_ids"])}
        route = routes.get(self.path.split("?")[0])
        if route is None:
            return self._reply(False, message=f"no such endpoint {self.path}", code=404)
        try:
            self._reply(True, route())
        except (KeyError, ValueError, TypeError) as exc:
            self._reply(False, message=f"bad request: {exc}")

