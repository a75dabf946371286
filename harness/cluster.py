"""The production topology of docker-compose.yaml, run natively on loopback: `make up-cluster` / `make down-cluster`,
and the cluster the tests in tests/cluster/ and bench/cluster.py start and stop.

Processes, each in its own process group, bound to 127.0.0.1, with its log and PID file under the cluster folder:

- PostgreSQL ``pg-airflow`` (Airflow's DB and Celery's result backend) and ``pg-metadata`` (the EventIndex metadata
  DB; a separate server here so that it can be restarted on its own, as the fault tests do);
- Redis (Celery's broker; append-only file, so a restart keeps the queued tasks);
- ActiveMQ (STOMP; optional: the tests pass the session's broker instead);
- SeaweedFS with its S3 gateway: the object store of staging areas, work areas and picking outputs (bucket
  ``eventindex``);
- Airflow's api-server, scheduler, dag-processor, triggerer and N Celery workers, each worker with its own scratch
  folder (TMPDIR) and its own host name in the task instances it runs (``worker-1``, ``worker-2``, ...).

Everything a client needs (Airflow URL, password, S3 keys, the EVENTINDEX_* settings) is in ``cluster.env`` (0600).
``python -m eventindex_harness.cluster up|down|status [--base DIR] [--workers N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .polling import wait_for
from .ports import free_port, port_open
from .postgres import PrivatePostgres
from .seaweedfs import SeaweedFS

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
BUCKET = "eventindex"
AIRFLOW_PARTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def worker_hostname() -> str:
    """Airflow's ``hostname_callable`` on the cluster's workers: the worker's own name, so the task instances show
    which worker ran them although all workers share this machine."""
    return os.environ.get("EVENTINDEX_WORKER_NAME") or socket.getfqdn()


class Cluster:
    def __init__(self, base: str | Path, *, workers: int = 2, stomp_url: str | None = None,
                 api_port: int | None = None, concurrency: int = 2):
        self.base = Path(base).resolve()
        self.workers = workers
        self.concurrency = concurrency
        self.external_stomp = stomp_url
        self.state_file = self.base / "cluster.json"
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        self.ports = state.get("ports") or {"api": api_port or free_port(), "redis": free_port()}
        self.secrets = state.get("secrets") or {"password": secrets.token_urlsafe(16),
                                                "jwt": secrets.token_urlsafe(32), "api": secrets.token_urlsafe(32),
                                                "s3_key": "ei" + secrets.token_hex(8),
                                                "s3_secret": secrets.token_urlsafe(24)}
        self.pg_airflow = PrivatePostgres(self.base / "pg-airflow", port=state.get("pg_airflow"))
        self.pg_metadata = PrivatePostgres(self.base / "pg-metadata", port=state.get("pg_metadata"))
        self.s3 = SeaweedFS(self.base / "seaweedfs", s3_port=state.get("s3"), access_key=self.secrets["s3_key"],
                            secret_key=self.secrets["s3_secret"])
        self.activemq = None

    # --- configuration ------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def stomp_url(self) -> str:
        return self.external_stomp or "stomp://127.0.0.1:61613/queue/eventindex.producer"

    def eventindex_env(self) -> dict[str, str]:
        """What the CLI, the producer and every task need to see the cluster's stores."""
        return {**self.s3.env,
                "EVENTINDEX_HOME": str(self.base / "home"),
                "EVENTINDEX_METADATA_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{self.pg_metadata.port}/eventindex",
                "EVENTINDEX_STAGING": self.s3.uri(BUCKET, "staging"),
                "EVENTINDEX_WORK": self.s3.uri(BUCKET, "work"),
                "EVENTINDEX_PICKS": self.s3.uri(BUCKET, "picks"),
                "EVENTINDEX_PICKS_RSE": "EVENTINDEX_S3",
                "EVENTINDEX_REQUESTS": self.s3.uri(BUCKET, "requests"),
                "EVENTINDEX_STOMP_URL": self.stomp_url,
                "AIRFLOW_URL": self.url, "EVENTINDEX_AIRFLOW_USER": "admin",
                "EVENTINDEX_AIRFLOW_PASSWORD": self.secrets["password"]}

    def airflow_env(self) -> dict[str, str]:
        pg = f"postgres@127.0.0.1:{self.pg_airflow.port}/airflow"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        env.update(self.eventindex_env())
        env.update({
            "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.base / "airflow"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(max(4, self.workers * self.concurrency)),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.base / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(self.ports["api"]),
            "AIRFLOW__API__WORKERS": "2",
            "AIRFLOW__API__SECRET_KEY": self.secrets["api"],
            "AIRFLOW__API_AUTH__JWT_SECRET": self.secrets["jwt"],
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # a worker that died is noticed within a minute, a task whose Celery message was lost is queued again
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "45",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.base / "airflow" / "logs"),
        })
        return env

    # --- processes ----------------------------------------------------------------------------------------------
    def _pidfile(self, name: str) -> Path:
        return self.base / "run" / f"{name}.pid"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        (self.base / "run").mkdir(parents=True, exist_ok=True)
        (self.base / "logs").mkdir(parents=True, exist_ok=True)
        with open(self.base / "logs" / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=self.base)
        self._pidfile(name).write_text(str(proc.pid))
        return proc.pid

    def _alive(self, name: str) -> bool:
        try:
            os.kill(int(self._pidfile(name).read_text()), 0)
            return True
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return False

    def _signal(self, name: str, sig: int, wait: float = 30.0) -> None:
        try:
            pid = int(self._pidfile(name).read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            self._pidfile(name).unlink(missing_ok=True)
            return
        deadline = time.time() + wait
        while time.time() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_for(lambda: not _pid_alive(pid), 15, 0.1, f"{name} (pid {pid}) to exit")
        self._pidfile(name).unlink(missing_ok=True)

    def start_redis(self) -> None:
        data = self.base / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self._spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.ports["redis"]),
                              "--dir", str(data), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                              "--protected-mode", "yes"], dict(os.environ))
        wait_for(lambda: _answers(self.ports["redis"]), 30, 0.1, "Redis to answer")

    def stop_redis(self) -> None:
        self._signal("redis", signal.SIGTERM)

    def start_worker(self, i: int) -> None:
        scratch = self.base / f"worker-{i}" / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        env = {**self.airflow_env(), "TMPDIR": str(scratch), "EVENTINDEX_WORKER_NAME": f"worker-{i}",
               "AIRFLOW__CORE__HOSTNAME_CALLABLE": "eventindex_harness.cluster.worker_hostname"}
        self._spawn(f"worker-{i}", ["airflow", "celery", "worker", "--celery-hostname", f"worker-{i}@%h",
                                    "--skip-serve-logs", "--concurrency", str(self.concurrency)], env)

    def kill_worker(self, i: int) -> None:
        """SIGKILL a worker and every task process it forked, as a machine that dies would."""
        self._signal(f"worker-{i}", signal.SIGKILL, wait=15)

    def stop_worker(self, i: int) -> None:
        """A warm shutdown: the worker finishes what it runs, then exits."""
        self._signal(f"worker-{i}", signal.SIGTERM, wait=120)

    def stop_airflow(self) -> None:
        """Airflow's processes down (workers first), the stores left running."""
        for i in range(1, 64):
            if self._pidfile(f"worker-{i}").exists():
                self._signal(f"worker-{i}", signal.SIGTERM, wait=60)
        for part in reversed(AIRFLOW_PARTS):
            self._signal(part, signal.SIGTERM, wait=20)

    def worker_alive(self, i: int) -> bool:
        return self._alive(f"worker-{i}")

    def up(self) -> "Cluster":
        (self.base / "run").mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o711)  # others may pass through (PostgreSQL runs as its own user), not list
        if os.geteuid() == 0 and subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(self.base)],
                                                capture_output=True).returncode != 0:
            raise RuntimeError(f"PostgreSQL runs as user postgres, which cannot reach {self.base}: choose a folder "
                               "whose parents others may pass through (--base)")
        for pg in (self.pg_airflow, self.pg_metadata):
            if not _answers(pg.port):
                pg.start()
        self._save()
        _ensure_database(self.pg_airflow, "airflow")
        _ensure_database(self.pg_metadata, "eventindex")
        self._eventindex_db_upgrade()
        if not self._alive("redis"):
            self.start_redis()
        if not _answers(self.s3.s3_port):
            self.s3.start(detach=True)
            (self.base / "run" / "seaweedfs.pid").write_text(str(self.s3.proc.pid))
        self.s3.create_bucket(BUCKET)
        self._save()
        if self.external_stomp is None and not _answers(61613):
            from .activemq import ActiveMQ
            self.activemq = ActiveMQ(self.base / "activemq")
            self.activemq.start()
            (self.base / "run" / "activemq.pid").write_text(str(self.activemq.proc.pid))
        passwords = self.base / "passwords.json"
        passwords.write_text(json.dumps({"admin": self.secrets["password"]}))
        os.chmod(passwords, 0o600)
        env = self.airflow_env()
        self._airflow(env, "db", "migrate")
        for part in AIRFLOW_PARTS:
            if not self._alive(part):
                self._spawn(part, ["airflow", part], env)
        for i in range(1, self.workers + 1):
            if not self._alive(f"worker-{i}"):
                self.start_worker(i)
        wait_for(lambda: _healthy(self.url), 180, 1.0, f"Airflow's api-server at {self.url}")
        self._airflow(env, "pools", "import", str(REPO / "scripts" / "pools.json"))
        self._write_env()
        return self

    def _eventindex_db_upgrade(self) -> None:
        """The metadata DB's schema (Alembic), as the compose init service makes it: the only place the cluster
        migrates it (no task or page does)."""
        env = {**os.environ, **self.eventindex_env()}
        done = subprocess.run([sys.executable, "-m", "eventindex.cli", "db", "upgrade"], env=env, capture_output=True,
                              text=True, cwd=self.base)
        if done.returncode != 0:
            raise RuntimeError(f"`eventindex db upgrade` failed ({done.returncode}): "
                               f"{(done.stdout + done.stderr)[-3000:]}")

    def _airflow(self, env: dict[str, str], *args: str) -> None:
        done = subprocess.run(["airflow", *args], env=env, capture_output=True, text=True, cwd=self.base)
        if done.returncode != 0:
            raise RuntimeError(f"`airflow {' '.join(args)}` failed ({done.returncode}):\n"
                               f"{(done.stdout + done.stderr)[-3000:]}")

    def down(self) -> None:
        self.stop_airflow()
        self._signal("redis", signal.SIGTERM)
        if self.activemq is not None:
            self.activemq.stop()
        self._signal("activemq", signal.SIGTERM)
        if self.s3.proc is not None:  # (re)started by this process
            self.s3.stop()
        self._signal("seaweedfs", signal.SIGTERM, wait=2)  # weed's filer hangs on SIGTERM: SIGKILL follows
        self.s3._remove_sockets()
        for pg in (self.pg_metadata, self.pg_airflow):
            pg.stop()  # pg_ctl stop -m fast; the folder is ours (base given), so it stays

    def status(self) -> dict[str, bool]:
        names = [*AIRFLOW_PARTS, *(f"worker-{i}" for i in range(1, self.workers + 1)), "redis"]
        return {name: self._alive(name) for name in names} | {"api": _healthy(self.url)}

    def _save(self) -> None:
        self.state_file.write_text(json.dumps({"ports": self.ports, "secrets": self.secrets,
                                               "pg_airflow": self.pg_airflow.port, "pg_metadata": self.pg_metadata.port,
                                               "s3": self.s3.s3_port}))
        os.chmod(self.state_file, 0o600)

    def _write_env(self) -> None:
        target = self.base / "cluster.env"
        target.write_text("".join(f"export {k}={_quote(v)}\n" for k, v in sorted(self.eventindex_env().items())))
        os.chmod(target, 0o600)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _answers(port: int) -> bool:
    return port_open("127.0.0.1", port)


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def _ensure_database(pg: PrivatePostgres, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(pg.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eventindex_harness.cluster",
                                description="the docker-compose topology, natively on loopback")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--base", default=str(REPO / ".cluster"), help="the cluster's folder (default: .cluster/)")
    p.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    args = p.parse_args(argv)
    cluster = Cluster(args.base, workers=args.workers)
    if args.action == "up":
        t0 = time.time()
        try:
            cluster.up()
        except (RuntimeError, OSError, subprocess.CalledProcessError, TimeoutError) as exc:
            print(f"the cluster did not come up: {exc}\nlogs: {cluster.base / 'logs'}; `make down-cluster` stops "
                  "what started", file=sys.stderr)
            return 1
        print(f"cluster up in {time.time() - t0:.0f} s: Airflow {cluster.url} (user admin, password "
              f"{cluster.secrets['password']}), {args.workers} Celery workers, Redis 127.0.0.1:{cluster.ports['redis']}, "
              f"S3 http://{cluster.s3.endpoint}, metadata {cluster.eventindex_env()['EVENTINDEX_METADATA_URL']}")
        print(f"client settings: source {cluster.base / 'cluster.env'}    logs: {cluster.base / 'logs'}    "
              "stop: make down-cluster")
    elif args.action == "down":
        cluster.down()
        print("cluster stopped")
    else:
        for name, ok in cluster.status().items():
            print(f"{name:14s} {'up' if ok else 'DOWN'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
