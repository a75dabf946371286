"""What the end-to-end tests share: Airflow standalone started by `scripts/airflow.sh up` (as `make up` does) on a
private AIRFLOW_HOME, port and EVENTINDEX_HOME, stopped by `scripts/airflow.sh down`; the small world registered in
that home's local Rucio."""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventindex.airflow_api import AirflowAPI
from eventindex.ddm import LocalRucio, register_world
from eventindex.settings import Settings
from eventindex_harness.ports import free_port
from tests.conftest import upgraded

ROOT = Path(__file__).resolve().parents[2]
UP_OUTPUT: dict[str, str] = {}  # AIRFLOW_HOME -> what `scripts/airflow.sh up` printed (the accounts it made)


@contextmanager
def standalone(airflow_home: Path, eventindex_home: Path, extra_env: dict[str, str] | None = None):
    """Airflow standalone up (scheduler, dag-processor, api-server, triggerer) with this project's DAGs; yields the
    environment a client needs (AIRFLOW_HOME, AIRFLOW_URL, EVENTINDEX_HOME). The caller's AIRFLOW__* settings are
    dropped (only ``extra_env`` ones pass), so every test sees the configuration `make up` gives."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update({"AIRFLOW_HOME": str(airflow_home), "AIRFLOW_PORT": str(free_port()),
                "EVENTINDEX_HOME": str(eventindex_home), **(extra_env or {})})
    up = subprocess.run([str(ROOT / "scripts/airflow.sh"), "up"], env=env, capture_output=True, text=True,
                        timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        UP_OUTPUT[str(airflow_home)] = up.stdout
        env["AIRFLOW_URL"] = f"http://127.0.0.1:{env['AIRFLOW_PORT']}"
        yield env
    finally:
        subprocess.run([str(ROOT / "scripts/airflow.sh"), "down"], env=env, capture_output=True, timeout=120)


def admin_api(env: dict[str, str]) -> AirflowAPI:
    """A REST client logged in as the admin `make up` generated a password for."""
    generated = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    return AirflowAPI(env["AIRFLOW_URL"], "admin", json.loads(generated.read_text())["admin"])


@pytest.fixture
def world_home(eventindex_home, metadata_home, staged_world):
    """The small staged world registered in the local Rucio under EVENTINDEX_HOME, its metadata DB upgraded (as
    `make up` does): (world, world folder, staging)."""
    world, out, staging = staged_world
    eventindex_home.mkdir(parents=True, exist_ok=True)
    register_world(LocalRucio(Settings.from_env().local_rucio_url), world, out)
    return world, out, staging


WEB_USERS = {"admin": "admin", "viewer": "viewer", "analyst": "user"}  # Airflow's simple auth manager roles


@dataclass
class WebSite:
    """Airflow standalone with the EventIndex plugin over the small world (loaded), three users of three roles."""

    env: dict[str, str]
    passwords: dict[str, str]
    world: dict
    world_dir: Path
    staging: Path

    @property
    def url(self) -> str:
        return self.env["AIRFLOW_URL"]

    def token(self, user: str) -> str:
        return AirflowAPI(self.url, user, self.passwords[user])._token()

    def call(self, method: str, path: str, user: str | None = "admin", token: str | None = None,
             body: bytes | None = None, headers: dict | None = None):
        """(status, parsed JSON or raw bytes, headers) of a call to the EventIndex app; never raises on a status."""
        import urllib.error
        import urllib.request

        headers = dict(headers or {})
        if token or user:
            headers["Authorization"] = f"Bearer {token or self.token(user)}"
        req = urllib.request.Request(f"{self.url}/eventindex{path}", method=method, data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status, data, got = resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as exc:
            status, data, got = exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()}
        try:
            return status, json.loads(data), got
        except ValueError:
            return status, data, got

    def submit_pick(self, user: str, fields: dict[str, str], events: bytes):
        """POST /picks as a browser's form would (multipart: the parameters and the events file)."""
        import uuid

        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in fields.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="events"; filename="events.txt"\r\n'
                     f"Content-Type: text/plain\r\n\r\n".encode() + events + b"\r\n")
        return self.call("POST", "/api/v1/picks", user=user, body=b"".join(parts) + f"--{boundary}--\r\n".encode(),
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def wait_pick(self, request_id: str, user: str, timeout_s: float = 600) -> dict:
        """The request's details once its run has ended."""
        import time

        deadline = time.time() + timeout_s
        while time.time() < deadline:
            status, body, _ = self.call("GET", f"/api/v1/picks/{request_id}", user=user)
            if status == 200 and body["run"] and body["run"]["state"] in ("success", "failed"):
                return body
            time.sleep(3)
        raise AssertionError(f"{request_id} did not finish within {timeout_s:.0f} s")

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(ROOT / ".venv/bin/eventindex"), *args], env=self.env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout


@pytest.fixture(scope="session")
def web(staged_world, tmp_path_factory):
    from eventindex.catalog import open_catalog
    from eventindex.catalog.loader import load_staged

    world, out, staging = staged_world
    base = tmp_path_factory.mktemp("web")
    settings = Settings.from_env({"EVENTINDEX_HOME": str(base / "eventindex-home")})
    settings.home.mkdir(parents=True)
    register_world(LocalRucio(settings.local_rucio_url), world, out)
    upgraded(settings.metadata_url)  # as `eventindex db upgrade` does (make up would, after this load)
    load_staged(open_catalog(settings), str(staging))
    users = ",".join(f"{u}:{r}" for u, r in WEB_USERS.items())
    with standalone(base / "airflow", settings.home, {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users}) as env:
        generated = base / "airflow" / "simple_auth_manager_passwords.json.generated"
        yield WebSite(env, json.loads(generated.read_text()), world, out, staging)
