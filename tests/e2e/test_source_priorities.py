"""The ingestion sources under a real scheduler (Airflow standalone started by `scripts/airflow.sh up`): a backlog of
production-campaign ingestion runs queues behind ``eventindex_ingest_campaign`` (two runs, two pool slots at most)
while a Tier-0 dataset triggered after it is ingested at once, in its own pool, before the backlog is through."""

import json
from datetime import datetime
from pathlib import Path

import pytest

from eventindex.catalog import make_selection, open_catalog
from eventindex.settings import Settings
from eventindex_harness.polling import wait_for
from tests.conftest import dataset
from tests.e2e.conftest import ROOT, admin_api, standalone

pytestmark = pytest.mark.integration

TIER0, GRID, CAMPAIGN = "eventindex_ingest_tier0", "eventindex_ingest", "eventindex_ingest_campaign"
BACKLOG = 12
# DAGs that poll or follow assets on their own (every minute, or after each publish): paused for this test, so that
# the only work on the scheduler is the backlog and the Tier-0 run
SENSING = ("eventindex_tier0", "eventindex_stomp", "eventindex_campaign", "eventindex_conditions",
           "eventindex_consistency")


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _max_overlap(intervals) -> int:
    """The most intervals (start, end or None = still open) open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals if e is not None],
                    key=lambda x: (x[0], x[1]))  # an end before a start at the same instant
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def _all(api, path: str, key: str) -> list[dict]:
    """Every entry of a paged REST list."""
    entries: list[dict] = []
    while True:
        page = api._call("GET", f"{path}{'&' if '?' in path else '?'}limit=100&offset={len(entries)}")
        entries += page[key]
        if not page[key] or len(entries) >= page["total_entries"]:
            return entries


@pytest.fixture
def airflow(tmp_path, eventindex_home, world_home):
    # a snappier scheduler loop than the default (the test waits on it, the machine has 2 cores)
    fast = {"AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5"}
    with standalone(tmp_path / "airflow", eventindex_home, fast) as env:
        api = admin_api(env)

        def parsed():
            ids = {d["dag_id"] for d in _all(api, "/api/v2/dags?dag_id_pattern=eventindex", "dags")}
            return ids >= {TIER0, GRID, CAMPAIGN, *SENSING} and ids

        wait_for(parsed, 300, step=1.0, what="the DAG processor parses the project's DAGs")
        for dag_id in SENSING:
            api._call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})
        yield api, world_home, Path(env["AIRFLOW_HOME"])


def test_a_tier0_dataset_is_ingested_at_once_while_a_campaign_backlog_waits(airflow):
    api, (world, _, staging), airflow_home = airflow

    # `make up` keeps its secrets to the owner: the generated admin password and the SQLite DB
    for name in ("simple_auth_manager_passwords.json.generated", "airflow.db"):
        assert (airflow_home / name).stat().st_mode & 0o077 == 0, f"{name} is readable by others"
    # `make up` created one pool per source from scripts/pools.json and left the ingestion DAGs unpaused
    pools = {p["name"]: p for p in _all(api, "/api/v2/pools", "pools")}
    for name, spec in json.loads((ROOT / "scripts/pools.json").read_text()).items():
        assert name in pools, f"pool {name} not created by scripts/airflow.sh up: {sorted(pools)}"
        assert (pools[name]["slots"], pools[name]["description"]) == (spec["slots"], spec["description"])
    assert pools["eventindex_campaign"]["slots"] == 2 and pools["eventindex_tier0"]["slots"] >= 1
    for dag_id in (TIER0, GRID, CAMPAIGN):
        assert api._call("GET", f"/api/v2/dags/{dag_id}")["is_paused"] is False, dag_id

    # the backlog: every production-system output of the world, re-indexed (so each run really loads), in turn
    outputs = [d["name"] for d in world["datasets"] if d["source"] == "prodsys"]
    backlog = [f"backlog__{i:02d}" for i in range(BACKLOG)]
    for i, run_id in enumerate(backlog):
        api._call("POST", f"/api/v2/dags/{CAMPAIGN}/dagRuns", {
            "dag_run_id": run_id, "logical_date": None,
            "conf": {"dataset": outputs[i % len(outputs)], "staging_uri": str(staging), "source": "prodsys",
                     "reindex": True}})
    # then a Tier-0 RAW dataset is READY
    raw = dataset(world, "RAW", stream="physics_MinBias")
    api._call("POST", f"/api/v2/dags/{TIER0}/dagRuns", {
        "dag_run_id": "tier0__after_backlog", "logical_date": None,
        "conf": {"dataset": raw["name"], "staging_uri": str(staging), "source": "tier0"}})

    def campaign_runs() -> dict[str, dict]:
        return {r["dag_run_id"]: r for r in _all(api, f"/api/v2/dags/{CAMPAIGN}/dagRuns", "dag_runs")}

    # follow the Tier-0 run; when it is first seen started, what is the backlog doing?
    seen_started: dict[str, str] = {}

    def tier0_done():
        run = api._call("GET", f"/api/v2/dags/{TIER0}/dagRuns/tier0__after_backlog")
        if run["state"] != "queued" and not seen_started:
            seen_started.update({k: r["state"] for k, r in campaign_runs().items()})
        return run if run["state"] in ("success", "failed") else None

    tier0 = wait_for(tier0_done, 600, step=1.0, what="the Tier-0 run finishes")
    tier0_tis = _all(api, f"/api/v2/dags/{TIER0}/dagRuns/tier0__after_backlog/taskInstances", "task_instances")
    assert tier0["state"] == "success", {t["task_id"]: t["state"] for t in tier0_tis}
    assert {t["task_id"]: t["state"] for t in tier0_tis} == dict.fromkeys(
        ["wait_complete", "fetch", "validate", "load", "publish"], "success")
    assert "queued" in seen_started.values(), f"campaign runs when the Tier-0 run started: {seen_started}"
    assert {(t["pool"], t["priority_weight"]) for t in tier0_tis} == {("eventindex_tier0", 100)}

    # let the backlog move on past its first two runs, so that the cap on runs at a time is put to work
    wait_for(lambda: sum(r["state"] in ("success", "failed") for r in campaign_runs().values()) >= 3, 600,
             step=1.0, what="three campaign runs finish")
    runs = campaign_runs()
    assert set(runs) == set(backlog)
    assert not [k for k, r in runs.items() if r["state"] == "failed"], "a campaign run failed"
    tier0_start = min(_ts(t["start_date"]) for t in tier0_tis)
    tier0_end = _ts(tier0["end_date"])
    # the Tier-0 run started, and finished, while part of the backlog triggered before it had not even started:
    # it did not wait for the backlog to drain
    started = {k: _ts(r["start_date"]) for k, r in runs.items()}
    assert [k for k, s in started.items() if s is None or s > tier0_start], "backlog drained before Tier-0 started"
    assert [k for k, s in started.items() if s is None or s > tier0_end], "backlog drained before Tier-0 finished"
    # never more than two campaign runs, nor two campaign tasks, at a time (max_active_runs, the pool's slots)
    assert _max_overlap([(s, _ts(runs[k]["end_date"])) for k, s in started.items() if s is not None]) <= 2
    campaign_tis = [t for t in _all(api, f"/api/v2/dags/{CAMPAIGN}/dagRuns/~/taskInstances", "task_instances")
                    if t["start_date"]]
    assert len({t["dag_run_id"] for t in campaign_tis}) >= 3
    assert {(t["pool"], t["priority_weight"]) for t in campaign_tis} == {("eventindex_campaign", 1)}
    assert _max_overlap([(_ts(t["start_date"]), _ts(t["end_date"])) for t in campaign_tis]) <= 2

    # and the Tier-0 dataset is in the catalogue
    assert open_catalog(Settings.from_env()).count(make_selection(dataset=raw["name"])) == raw["nevents"]
