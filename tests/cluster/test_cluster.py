"""Ingestion and picking on the cluster: Celery workers that share no folder hand data over through XCom and S3."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import uproot

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_ten_datasets_ingest_over_rest_with_both_workers_at_work(site):
    names = [d["name"] for d in site.datasets()][:10]  # 60 task instances for two workers of two slots each
    runs = site.ingest(names, "ten")
    states = site.wait_runs(runs)
    assert states == {name: "success" for name in names}

    hosts = {ti["hostname"] for run in runs.values() for ti in site.task_instances("eventindex_ingest", run)}
    assert {"worker-1", "worker-2"} <= hosts, f"task instances ran on {hosts}"
    catalog = site.catalog()
    expected = {d["name"]: d["nevents"] for d in site.datasets() if d["name"] in names}
    assert {name: catalog.show(name)["nevents"] for name in names} == expected
    assert all(site.loads(name) == 1 for name in names)
    # the work copies went through the object store, under each run's id; no worker kept anything in its scratch
    work = site.cluster.s3.client().list_objects_v2(Bucket="eventindex", Prefix="work/")
    assert any(run.split("_")[1] in o["Key"] for o in work.get("Contents", []) for run in runs.values())
    for i in (1, 2):
        leftovers = [p for p in (site.cluster.base / f"worker-{i}" / "scratch").rglob("*") if p.is_file()]
        assert leftovers == [], f"worker-{i} left {leftovers[:3]} in its scratch"


def test_pick_request_writes_its_outputs_to_the_object_store_rse(site, tmp_path):
    aod = next(d for d in site.datasets("AOD") if d["amitag"] == "f961_m1831" and d.get("stream") == "physics_Main")
    runs = site.ingest([aod["name"]], "pick")
    assert site.wait_runs(runs) == {aod["name"]: "success"}
    with uproot.open(site.world_dir / aod["files"][0]["path"]) as h:
        a = h["events"].arrays(["run_number", "event_number"], library="np")
    events = [(int(a["run_number"][i]), int(a["event_number"][i])) for i in range(0, 60, 6)]
    request = tmp_path / "events.txt"
    request.write_text("".join(f"{r} {e}\n" for r, e in events))
    done = subprocess.run([sys.executable, "-m", "eventindex.cli.main", "pick", "--events", str(request),
                           "--type", "AOD", "--version", "f961_m1831", "--stream", "physics_Main",
                           "--out", "user.admin.pick.AOD", "--json"],
                          env={**_client_env(site)}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["state"], summary["found"], summary["missing"]) == ("success", 10, 0)

    objects = site.cluster.s3.client().list_objects_v2(Bucket="eventindex", Prefix="picks/").get("Contents", [])
    roots = [o["Key"] for o in objects if o["Key"].endswith(".root")]
    assert sorted(k.rsplit("/", 1)[1] for k in roots) == sorted(summary["files"])
    body = site.cluster.s3.client().get_object(Bucket="eventindex", Key=roots[0])["Body"].read()
    picked = tmp_path / "picked.root"
    picked.write_bytes(body)
    with uproot.open(picked) as h:
        got = h["events"].arrays(["run_number", "event_number"], library="np")
    assert set(zip(got["run_number"].tolist(), got["event_number"].tolist())) <= set(events)
    assert not (site.settings.home / "picks").exists(), "picking wrote its output to a local folder"


def _client_env(site) -> dict[str, str]:
    import os

    return {**{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EVENTINDEX_"))}, **site.env}
