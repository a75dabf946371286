"""A real Rucio 41.5 server on 127.0.0.1 for the session (scripts/rucio/server.sh), shared by the tests that need it;
the fixtures are imported by tests/conftest.py. Its daemons run from the same venv and database: ``hermes`` (one
cycle of the real rucio-hermes: the messages Rucio wrote, CLOSE, ERASE, ..., delivered to ActiveMQ over STOMP) and
``undertaker`` (one cycle of rucio-undertaker: DIDs whose lifetime ran out are erased, which writes ERASE)."""

import re
import subprocess
from pathlib import Path

import pytest

from .ports import free_port

REPO = Path(__file__).resolve().parents[1]  # harness/rucio_server.py -> the repository


class RucioServer:
    def __init__(self, base: Path):
        self.base, self.port = base, free_port()
        self.config = None

    def start(self) -> None:
        done = subprocess.run([str(REPO / "scripts/rucio/server.sh"), "start", str(self.base), str(self.port)],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"the Rucio server did not start: {done.stderr[-2000:]}", pytrace=False)
        self.config = done.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        subprocess.run([str(REPO / "scripts/rucio/server.sh"), "stop", str(self.base)], timeout=60)

    def hermes(self, stomp_port: int, destination: str) -> int:
        """One cycle of rucio-hermes to ActiveMQ on 127.0.0.1:``stomp_port`` (``/topic/...`` or ``/queue/...``);
        returns how many messages it delivered (and so deleted from Rucio's table)."""
        log = self._daemon("hermes", str(stomp_port), destination)
        found = re.search(r"Deleting (\d+) messages", log)
        return int(found.group(1)) if found else 0

    def undertaker(self) -> int:
        """One cycle of rucio-undertaker; returns how many expired DIDs it erased."""
        return sum(int(n) for n in re.findall(r"Delete (\d+) dids", self._daemon("undertaker")))

    def _daemon(self, name: str, *args: str) -> str:
        done = subprocess.run([str(REPO / "scripts/rucio/server.sh"), name, str(self.base), *args],
                              capture_output=True, text=True, timeout=300)
        log = done.stdout + done.stderr
        bad = [line for line in log.splitlines() if re.search(r"\t(WARNING|ERROR|CRITICAL)\t", line)]
        if done.returncode != 0 or bad or "Traceback" in log:  # e.g. "[broker] Could not deliver message ..."
            detail = "\n".join(bad) or log
            pytest.fail(f"rucio-{name} failed (status {done.returncode}): {detail[-2000:]}", pytrace=False)
        return log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def rucio_server(tmp_path_factory):
    server = RucioServer(tmp_path_factory.mktemp("rucio"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def real_rucio(rucio_server, monkeypatch):
    from eventindex.ddm import RealRucio

    monkeypatch.setenv("RUCIO_CONFIG", rucio_server.config)
    return RealRucio()
