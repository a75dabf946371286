"""A small client of Airflow's REST API (v2, JWT login), for `eventindex pick`. HTTP only: no Airflow import."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import AirflowAPIError, ConfigurationError
from .settings import Settings

DEFAULT_URL = "http://127.0.0.1:8080"


def api_url(settings: Settings) -> str:
    """AIRFLOW_URL, else the URL `make up` wrote (it may have started Airflow on another port), else the default."""
    if settings.airflow_url:
        return settings.airflow_url
    written = Path(settings.airflow_home) / "api_url"
    if written.is_file():
        url = written.read_text().strip().rstrip("/")
        if url:
            return url
    return DEFAULT_URL


@dataclass
class AirflowAPI:
    url: str
    user: str
    password: str
    token: str | None = None

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> "AirflowAPI":
        """The user and password default to admin and the password `make up` generated in $AIRFLOW_HOME."""
        settings = settings or Settings.from_env()
        password = settings.airflow_password
        if password is None:
            generated = Path(settings.airflow_home) / "simple_auth_manager_passwords.json.generated"
            if generated.is_file():
                try:
                    password = json.loads(generated.read_text()).get(settings.airflow_user)
                except ValueError:
                    password = None
        if not password:
            raise ConfigurationError("no Airflow password: set EVENTINDEX_AIRFLOW_PASSWORD (or start Airflow with "
                                     "make up)")
        return cls(api_url(settings), settings.airflow_user, password)

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
            raise AirflowAPIError(f"Airflow at {self.url} refused {method} {path} ({exc.code}): {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AirflowAPIError(f"cannot reach Airflow at {self.url}: {reason} (start it with `make up`, or set "
                                  "AIRFLOW_URL)") from None

    def _token(self) -> str:
        if self.token is None:
            self.token = self._call("POST", "/auth/token", {"username": self.user, "password": self.password},
                                    auth=False)["access_token"]
        return self.token

    def trigger(self, dag_id: str, conf: dict, prefix: str = "pick") -> str:
        run_id = f"{prefix}__{time.strftime('%Y%m%dT%H%M%S')}__{uuid.uuid4().hex[:6]}"
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
        raise AirflowAPIError(f"{run_id} did not finish within {timeout_s:.0f} s")

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> dict:
        entry = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/"
                                  f"{key}?deserialize=true&map_index={map_index}")
        value = entry.get("value")
        return json.loads(value) if isinstance(value, str) else value

    def run_xcom(self, dag_id: str, run_id: str, key: str):
        """The XCom ``key`` of whichever task of the run pushed it (the run says which; callers need not know the
        DAG's task ids), or None."""
        entries = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/~/xcomEntries"
                                    f"?xcom_key={key}")["xcom_entries"]
        if not entries:
            return None
        newest = max(entries, key=lambda e: e.get("timestamp") or "")
        return self.xcom(dag_id, run_id, newest["task_id"], key, newest.get("map_index", -1))

    def failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        tis = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return sorted({t["task_id"] for t in tis if t["state"] in ("failed", "upstream_failed")})
