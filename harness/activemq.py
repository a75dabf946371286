"""An ActiveMQ 5.17 broker on loopback (STOMP 127.0.0.1:61613) for the tests and benchmarks, started from
``scripts/start-activemq.sh`` with all its state in a fresh temporary folder, and a consumer to check what arrived.

The ``activemq`` and ``queue_name`` fixtures are imported by tests/conftest.py, so that one broker serves the whole
test session (tests/integration and tests/dags); bench/ingest.py starts an ``ActiveMQ`` itself.

The broker is ours alone: if something already listens on its ports the session fails rather than reuse it.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import stomp

from .ports import port_open

REPO = Path(__file__).resolve().parents[1]  # harness/activemq.py -> the repository
START_SCRIPT = REPO / "scripts" / "start-activemq.sh"
ACTIVEMQ_HOME = Path("/usr/share/activemq")
HOST, STOMP_PORT, OPENWIRE_PORT = "127.0.0.1", 61613, 61616
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0



@dataclass
class Received:
    """One MESSAGE frame as a consumer saw it."""

    headers: dict
    body: str


class _Collector(stomp.ConnectionListener):
    def __init__(self):
        self.frames: list[Received] = []
        self.errors: list[str] = []
        self.cond = threading.Condition()

    def on_message(self, frame):
        with self.cond:
            self.frames.append(Received(dict(frame.headers), frame.body))
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame.headers.get("message") or str(frame.body))
            self.cond.notify_all()


@dataclass
class ActiveMQ:
    """A broker process we started; ``restart`` replaces the process, keeping its folder (and so its KahaDB)."""

    base_dir: Path
    host: str = HOST
    port: int = STOMP_PORT
    proc: subprocess.Popen | None = None
    starts: int = 0
    _log: object = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.base_dir / "activemq.log"

    def url(self, queue: str) -> str:
        """``stomp://127.0.0.1:61613/queue/<queue>``, what the producer takes."""
        return f"stomp://{self.host}:{self.port}/queue/{queue}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no broker log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- process control ---------------------------------------------------------------------------------------
    def start(self) -> None:
        busy = [p for p in (STOMP_PORT, OPENWIRE_PORT) if port_open(HOST, p)]
        if busy:
            pytest.fail(f"something already listens on {', '.join(f'{HOST}:{p}' for p in busy)}; the integration "
                        f"tests start their own ActiveMQ there and will not reuse another one - stop it first "
                        f"(another test session or a system activemq service?)", pytrace=False)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n==== start #{self.starts + 1} at {time.strftime('%H:%M:%S')} ====\n".encode())
        self._log.flush()
        try:
            self.proc = subprocess.Popen(["sh", str(START_SCRIPT), str(self.base_dir)], stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT, process_group=0)
        except OSError as exc:
            pytest.fail(f"cannot start ActiveMQ ({START_SCRIPT}): {exc}", pytrace=False)
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(self.host, self.port):
            if self.proc.poll() is not None:
                pytest.fail(f"ActiveMQ exited with status {self.proc.returncode} before {self.host}:{self.port} "
                            f"answered; log {self.log_path}:\n{self.log_tail()}", pytrace=False)
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"ActiveMQ did not answer on {self.host}:{self.port} within {START_TIMEOUT:.0f} s; "
                            f"log {self.log_path}:\n{self.log_tail()}", pytrace=False)
            time.sleep(0.2)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group we created for it (process_group=0): java and nothing else
        except ProcessLookupError:
            pass

    def kill(self) -> int:
        """kill -9 the broker, as a crash would; returns its exit status once it is gone."""
        self._signal(signal.SIGKILL)
        status = self.proc.wait(STOP_TIMEOUT)
        self._wait_ports_free()
        return status

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after STOP_TIMEOUT seconds."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        if self._log is not None and not self._log.closed:
            self._log.close()

    def restart(self, *, hard: bool = True) -> None:
        """Stop (kill -9 when ``hard``) and start again on the same folder, waiting until STOMP answers."""
        if hard:
            self.kill()
        else:
            self.stop()
        if self._log is not None and not self._log.closed:
            self._log.close()
        self.start()

    def _wait_ports_free(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while any(port_open(HOST, p) for p in (STOMP_PORT, OPENWIRE_PORT)):
            if time.monotonic() > deadline:
                pytest.fail(f"the broker's ports are still open {timeout:.0f} s after it exited", pytrace=False)
            time.sleep(0.1)

    # -- a consumer --------------------------------------------------------------------------------------------
    def consume(self, queue: str, *, count: int | None = None, wait: float = 10.0, settle: float = 1.0
                ) -> list[Received]:
        """Take messages off ``/queue/<queue>`` (acking each, so they are gone afterwards).

        Collects for ``wait`` seconds at most; once ``count`` messages are in, only ``settle`` seconds more to see
        whether any extra one arrives. With ``count=None`` it listens the full ``wait``.
        """
        conn = stomp.Connection12([(self.host, self.port)])
        listener = _Collector()
        conn.set_listener("collector", listener)
        conn.connect(wait=True)
        try:
            conn.subscribe(f"/queue/{queue}", id="t", ack="client-individual")
            deadline = time.monotonic() + wait
            with listener.cond:
                while True:
                    now = time.monotonic()
                    if listener.errors or now >= deadline:
                        break
                    if count is not None and len(listener.frames) >= count:
                        deadline = min(deadline, now + settle)
                        count = None  # from now on just wait out the settle time
                        continue
                    listener.cond.wait(deadline - now)
                frames = list(listener.frames)
            for frame in frames:
                conn.ack(frame.headers["ack"])
            conn.unsubscribe("t")
        finally:
            conn.disconnect()  # with a receipt: the broker has processed the acks when this returns
        if listener.errors:
            pytest.fail(f"the broker sent ERROR frames to the test consumer: {listener.errors}")
        return frames


@pytest.fixture(scope="session")
def activemq(tmp_path_factory):
    """A real ActiveMQ on 127.0.0.1 (STOMP 61613), private to this session, stopped at its end."""
    if not ACTIVEMQ_HOME.is_dir():
        pytest.fail(f"ActiveMQ is not installed ({ACTIVEMQ_HOME} is missing): run `make test`, which installs it "
                    f"(scripts/setup.sh --test)", pytrace=False)
    broker = ActiveMQ(tmp_path_factory.mktemp("activemq"))
    atexit.register(broker.stop)  # a backstop should the session die without running the teardown
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        atexit.unregister(broker.stop)


@pytest.fixture
def queue_name(request) -> str:
    """A queue name no other test uses, e.g. ``eventindex.test.test_x.1a2b3c4d``."""
    return f"eventindex.test.{re.sub(r'[^A-Za-z0-9_]+', '_', request.node.name)}.{uuid.uuid4().hex[:8]}"
