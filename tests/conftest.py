"""Shared fixtures: every test runs with its own EVENTINDEX_HOME, and one small simulated world per session."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def eventindex_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "eventindex-home"
    monkeypatch.setenv("EVENTINDEX_HOME", str(home))
    monkeypatch.delenv("EVENTINDEX_STAGING", raising=False)
    monkeypatch.delenv("EVENTINDEX_STOMP_URL", raising=False)
    return home


def upgraded(url: str) -> str:
    """``url`` (a metadata DB) created or migrated as `eventindex db upgrade` leaves it, returned as is: opening a DB
    never migrates it, so a test that makes a fresh catalogue runs the upgrade first, as an installation does."""
    from eventindex.metadata import upgrade

    upgrade(url)
    return url


@pytest.fixture
def metadata_home(eventindex_home) -> Path:
    """The test's EVENTINDEX_HOME with its metadata DB upgraded (what `eventindex db upgrade` makes)."""
    from eventindex.settings import Settings

    upgraded(Settings.from_env().metadata_url)
    return eventindex_home


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """Two runs, all formats, small: (world dict, world folder)."""
    from eventindex.sim.world import WorldConfig, simulate

    out = tmp_path_factory.mktemp("world")
    config = WorldConfig(seed=11, runs=2, events_per_run=4000, lumi_blocks=30, raw_file_events=900,
                         reproc_file_events=1500, mc_events=600, mc_file_events=300, workers=1)
    return simulate(out, config), out


def corrupt_copy(staging, name: str, target):
    """A copy of a dataset's staging folder under ``target`` with one byte of its Parquet file flipped."""
    import shutil

    shutil.copytree(staging / name, target / name)
    parquet = next((target / name).glob("*.parquet"))
    data = bytearray(parquet.read_bytes())
    data[len(data) // 2] ^= 0xFF
    parquet.write_bytes(bytes(data))
    return target


def dataset(world: dict, datatype: str, *, stream: str = "physics_Main", tag: str | None = None, mc: bool = False):
    for d in world["datasets"]:
        if d["datatype"] != datatype or (tag and d["amitag"] != tag) or (("dsid" in d) != mc):
            continue
        if mc or d.get("stream") == stream:
            return d
    raise LookupError(f"no {datatype} dataset in the world")


os.environ.setdefault("AIRFLOW__CORE__PARALLELISM", "4")


@pytest.fixture(scope="session")
def staged_world(small_world, tmp_path_factory):
    """The small world produced into a staging area: (world, world folder, staging folder)."""
    from eventindex.producer import produce

    world, out = small_world
    staging = tmp_path_factory.mktemp("staging")
    for d in world["datasets"]:
        produce(d["name"], [str(out / f["path"]) for f in d["files"]], str(staging), d["task_id"], 1)
    return world, out, staging


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL 15 on 127.0.0.1 for the whole session."""
    from eventindex_harness.postgres import PrivatePostgres

    try:
        pg = PrivatePostgres().start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield pg
    pg.stop()


@pytest.fixture
def picking_world(staged_world, tmp_path):
    """The small world loaded into a catalogue and registered in a local data catalogue: (world, world folder,
    catalogue, local Rucio)."""
    from eventindex.catalog.embedded import EmbeddedCatalog
    from eventindex.catalog.loader import load_staged
    from eventindex.ddm import LocalRucio, register_world
    from eventindex.trigger import load_menus

    world, out, staging = staged_world
    catalog = EmbeddedCatalog(tmp_path / "cat", upgraded(f"sqlite:///{tmp_path / 'm.sqlite'}"))
    catalog.save_menus(load_menus(out / "menus.json")[0].values())
    load_staged(catalog, str(staging))
    ddm = LocalRucio(f"sqlite:///{tmp_path / 'rucio.sqlite'}")
    register_world(ddm, world, out)
    return world, out, catalog, ddm


def dataset_events(world_dir, ds: dict) -> list[tuple[int, int]]:
    """(run, event) of every entry of a world dataset's ROOT files, in file order, read with uproot."""
    import uproot

    pairs = []
    for f in ds["files"]:
        with uproot.open(Path(world_dir) / f["path"]) as h:
            a = h["events"].arrays(["run_number", "event_number"], library="np")
        pairs += list(zip(a["run_number"].tolist(), a["event_number"].tolist()))
    return pairs


def event_payloads(paths) -> dict[int, tuple]:
    """event number -> (jet pT, muon pT, L1 TAV mask) read with uproot from ROOT files (to compare picked events with
    their source entries)."""
    import uproot

    found = {}
    for path in paths:
        with uproot.open(path) as h:
            a = h["events"].arrays(["event_number", "jet_pt", "mu_pt", "l1_tav"], library="ak")
        for e, jp, mp, tav in zip(a.event_number.to_list(), a.jet_pt.to_list(), a.mu_pt.to_list(), a.l1_tav.to_list()):
            assert e not in found, f"event {e} twice"
            found[e] = (jp, mp, tav)
    return found


@contextmanager
def panda_standin_at(base: Path, monkeypatch):
    """The PanDA STAND-IN of harness/panda_standin.py (no PanDA server can run here) on loopback under ``base``; the
    picking backend's settings (``monkeypatch``'s environment) point at it. Tests add faults through ``.faults``."""
    import secrets

    from eventindex_harness.panda_standin import PandaStandIn

    standin = PandaStandIn(base / "panda-grid", token=secrets.token_urlsafe(24))
    url = standin.start()
    token_file = base / "panda-token"
    token_file.write_text(standin.token)
    for key, value in {"EVENTINDEX_PANDA_URL": url, "EVENTINDEX_PANDA_POLL": "0.2", "PANDA_BEHIND_REAL_LB": "1",
                       "PANDA_VERIFY_HOST": "off", "PANDA_AUTH": "oidc", "PANDA_AUTH_VO": "atlas",
                       "OIDC_AUTH_TOKEN_FILE": str(token_file)}.items():
        monkeypatch.setenv(key, value)
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def panda_standin(tmp_path, monkeypatch):
    """The PanDA stand-in (``panda_standin_at``) for one test."""
    with panda_standin_at(tmp_path, monkeypatch) as standin:
        yield standin


from eventindex_harness.activemq import activemq, queue_name  # noqa: E402,F401  (one broker for the whole session)
from eventindex_harness.rucio_server import real_rucio, rucio_server  # noqa: E402,F401  (one server for the session)
from eventindex_harness.seaweedfs import seaweedfs  # noqa: E402,F401  (one S3 server, SeaweedFS, for the session)
