"""A real Rucio 41.5 server on 127.0.0.1 for the session (scripts/rucio/server.sh), shared by the tests that need it;
the fixtures are imported by tests/conftest.py."""

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
