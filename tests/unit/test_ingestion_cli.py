"""`eventindex ingestion`: an operator sees which datasets wait for which parts and which are stuck."""

import json
from datetime import timedelta

from eventindex import progress
from eventindex.cli.main import main
from eventindex.ddm import LocalRucio, register_world
from eventindex.metadata import make_engine, upgrade
from eventindex.settings import Settings
from tests.conftest import dataset


def test_waiting_and_stuck_datasets_are_listed_with_what_they_wait_for(small_world, eventindex_home, capsys):
    world, out = small_world
    eventindex_home.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env()
    rucio = LocalRucio(settings.local_rucio_url)
    register_world(rucio, world, out)
    engine = make_engine(settings.metadata_url)
    upgrade(engine)
    raw, aod = dataset(world, "RAW"), dataset(world, "AOD", tag="f961_m1831")
    one_job = [{"task_id": 1, "job_id": 1, "guids": [{"guid": raw["files"][0]["guid"], "nevents": 1}]}]
    progress.check(engine, rucio, raw["name"], one_job, [])
    progress.check(engine, rucio, aod["name"], [], [{"njobs": 3}], stuck_after=timedelta(0))
    assert main(["ingestion", "--state", "stuck", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["dataset"] for r in rows] == [aod["name"]] and rows[0]["detail"].startswith("stuck for")
    assert main(["ingestion", "--json"]) == 0
    waiting = {r["dataset"]: r for r in json.loads(capsys.readouterr().out)}[raw["name"]]
    assert waiting["state"] == "waiting"
    assert waiting["detail"] == f"waiting for {len(raw['files']) - 1} of {len(raw['files'])} files"


def test_an_unknown_state_is_refused_naming_the_states(eventindex_home, capsys):
    assert main(["ingestion", "--state", "stuk"]) == 1
    assert "unknown state stuk: the states are closed, queued, waiting" in capsys.readouterr().err
