"""A small client of Airflow's REST API (v2, JWT login), for `eventindex pick`. HTTP only: no Airflow import."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import EventIndexError


@dataclass
class AirflowAPI:
    url: str
    user: str
    password: str
    token: str | None = None

    @classmethod
    def from_env(cls) -> "AirflowAPI":
        """AIRFLOW_URL (default http://127.0.0.1:8080), EVENTINDEX_AIRFLOW_USER/_PASSWORD (default: admin and the
        password `make up` generated in airflow_home/)."""
        password = os.environ.get("EVENTINDEX_AIRFLOW_PASSWORD")
        if password is None:
            generated = Path(os.environ.get("AIRFLOW_HOME", "airflow_home")) / \
                "simple_auth_manager_passwords.json.generated"
            if generated.exists():
                password = json.loads(generated.read_text()).get(os.environ.get("EVENTINDEX_AIRFLOW_USER", "admin"))
        if not password:
            raise EventIndexError("no Airflow password: set EVENTINDEX_AIRFLOW_PASSWORD (or start Airflow with make up)")
        return cls(os.environ.get("AIRFLOW_URL", "http://127.0.0.1:8080").rstrip("/"),
                   os.environ.get("EVENTINDEX_AIRFLOW_USER", "admin"), password)

    def _call(self, method: str, path: str, body: dict | None = None, auth: bool = True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._token()}"
        req = urllib.request.Request(self.url + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise EventIndexError(f"Airflow refused {method} {path} ({exc.code}): {detail}") from None
        except urllib.error.URLError as exc:
            raise EventIndexError(f"cannot reach Airflow at {self.url}: {exc.reason} (is it running? make up)") from None

    def _token(self) -> str:
        if self.token is None:
            self.token = self._call("POST", "/auth/token", {"username": self.user, "password": self.password},
                                    auth=False)["access_token"]
        return self.token

    def trigger(self, dag_id: str, conf: dict) -> str:
        run_id = f"pick__{time.strftime('%Y%m%dT%H%M%S')}__{uuid.uuid4().hex[:6]}"
        self._call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None,
                                                              "conf": conf})
        return run_id

    def wait(self, dag_id: str, run_id: str, progress=None, poll_s: float = 2.0, timeout_s: float = 86400) -> str:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            run = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            tis = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
            if progress:
                progress(sum(t["state"] == "success" for t in tis), len(tis))
            if run["state"] in ("success", "failed"):
                return run["state"]
            time.sleep(poll_s)
        raise EventIndexError(f"{run_id} did not finish within {timeout_s:.0f} s")

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> dict:
        entry = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/"
                                  f"{key}?deserialize=true")
        value = entry.get("value")
        return json.loads(value) if isinstance(value, str) else value
