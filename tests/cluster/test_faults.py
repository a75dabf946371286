"""Faults on the cluster, with nothing lost and nothing loaded twice: a worker killed in the middle of a load, Redis
restarted while runs are queued, the metadata PostgreSQL restarted and the object store stopped during ingestion.

Each test uses datasets of its own (the world has 36) and asserts outcomes: every run succeeds, every dataset is in
the catalogue with its events, loaded exactly once."""

from __future__ import annotations

import time

import pytest

from eventindex_harness.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def _fresh(site, n: int, *, datatype: str | None = None) -> list[dict]:
    """``n`` datasets nothing has ingested yet (biggest first)."""
    catalogued = {d["name"] for d in site.catalog().datasets(include_obsolete=True)}
    pending = [d for d in site.datasets(datatype) if d["name"] not in catalogued]
    pending.sort(key=lambda d: -d["nevents"])
    assert len(pending) >= n, "the world has too few datasets left for this test"
    return pending[:n]


def _all_loaded_once(site, datasets: list[dict], runs: dict[str, str]) -> None:
    assert site.wait_runs(runs, timeout=900) == {d["name"]: "success" for d in datasets}
    catalog = site.catalog()
    assert {d["name"]: catalog.show(d["name"])["nevents"] for d in datasets} == \
        {d["name"]: d["nevents"] for d in datasets}
    assert {d["name"]: site.loads(d["name"]) for d in datasets} == {d["name"]: 1 for d in datasets}


def _running(site, runs: dict[str, str], task_id: str) -> tuple[str, str, str] | None:
    """The first task instance ``task_id`` found running among ``runs``: (dataset, run id, hostname)."""
    for name, run_id in runs.items():
        for ti in site.task_instances("eventindex_ingest", run_id):
            if ti["task_id"] == task_id and ti["state"] == "running" and ti.get("hostname"):
                return name, run_id, ti["hostname"]
    return None


def test_a_worker_killed_during_a_load_leaves_the_dataset_loaded_once_by_the_other(site):
    datasets = _fresh(site, 3)
    runs = site.ingest([d["name"] for d in datasets], "kill")
    name, run_id, host = wait_for(lambda: _running(site, runs, "load"), 300, 0.1, "a load task to be running")
    victim = int(host.rsplit("-", 1)[1])
    site.cluster.kill_worker(victim)
    assert not site.cluster.worker_alive(victim)
    try:
        _all_loaded_once(site, datasets, runs)
        tries = site.tries("eventindex_ingest", run_id, "load")
        assert tries[0]["hostname"] == host and tries[0]["state"] != "success"
        assert tries[-1]["state"] == "success" and tries[-1]["hostname"] != host, tries
    finally:
        site.cluster.start_worker(victim)


def test_runs_queued_while_redis_restarts_all_complete(site):
    datasets = _fresh(site, 4)
    runs = site.ingest([d["name"] for d in datasets], "redis")
    wait_for(lambda: any(ti["state"] == "queued" for run in runs.values()
                         for ti in site.task_instances("eventindex_ingest", run)), 120, 0.1, "a task to be queued")
    site.cluster.stop_redis()
    time.sleep(3)
    site.cluster.start_redis()
    _all_loaded_once(site, datasets, runs)


def test_metadata_postgres_restarted_mid_ingestion_is_a_transient_retry(site):
    datasets = _fresh(site, 4)
    runs = site.ingest([d["name"] for d in datasets], "pg")
    wait_for(lambda: _running(site, runs, "validate") or _running(site, runs, "load"), 300, 0.1,
             "an ingestion task to be running")
    pg = site.cluster.pg_metadata
    pg._run("/usr/lib/postgresql/15/bin/pg_ctl", "-D", pg.base / "data", "-m", "immediate", "-w", "stop")
    time.sleep(5)
    pg.start()
    _all_loaded_once(site, datasets, runs)


def test_object_store_stopped_for_twenty_seconds_loses_nothing(site):
    datasets = _fresh(site, 4)
    runs = site.ingest([d["name"] for d in datasets], "s3")
    wait_for(lambda: _running(site, runs, "wait_complete") or _running(site, runs, "fetch"), 300, 0.1,
             "an ingestion task to be running")
    site.cluster.s3.stop()
    time.sleep(20)
    site.cluster.s3.start()
    _all_loaded_once(site, datasets, runs)
