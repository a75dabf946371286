"""What the end-to-end tests share: Airflow standalone started by `scripts/airflow.sh up` (as `make up` does) on a
private AIRFLOW_HOME, port and EVENTINDEX_HOME, stopped by `scripts/airflow.sh down`; the small world registered in
that home's local Rucio."""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from eventindex.airflow_api import AirflowAPI
from eventindex.ddm import LocalRucio, register_world
from eventindex.settings import Settings
from eventindex_harness.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


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
        env["AIRFLOW_URL"] = f"http://127.0.0.1:{env['AIRFLOW_PORT']}"
        yield env
    finally:
        subprocess.run([str(ROOT / "scripts/airflow.sh"), "down"], env=env, capture_output=True, timeout=120)


def admin_api(env: dict[str, str]) -> AirflowAPI:
    """A REST client logged in as the admin `make up` generated a password for."""
    generated = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    return AirflowAPI(env["AIRFLOW_URL"], "admin", json.loads(generated.read_text())["admin"])


@pytest.fixture
def world_home(eventindex_home, staged_world):
    """The small staged world registered in the local Rucio under EVENTINDEX_HOME: (world, world folder, staging)."""
    world, out, staging = staged_world
    eventindex_home.mkdir(parents=True, exist_ok=True)
    register_world(LocalRucio(Settings.from_env().local_rucio_url), world, out)
    return world, out, staging
