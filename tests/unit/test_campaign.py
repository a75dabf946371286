"""Reading the production system as AMI does: from a persisted stop point (late rows are not lost), in reads of at
most 1,000 datasets that continue rather than fail, idempotent backfills unless re-indexing is asked for."""

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from eventindex import campaign, upstream
from eventindex.metadata import make_engine, upgrade

T0 = datetime(2018, 9, 10, 10, 0)
NAME = "data18_13TeV.{run:08d}.physics_Main.merge.AOD.r11969_r11784"


def _task(task_id: int, minute: int, outputs: int = 1) -> dict:
    return {"task_id": task_id, "taskname": f"task {task_id}", "status": "done",
            "output_datasets": [NAME.format(run=350000 + task_id * 10 + i) for i in range(outputs)],
            "last_update": T0 + timedelta(minutes=minute)}


@pytest.fixture
def source(tmp_path):
    url = f"sqlite:///{tmp_path / 'upstream.sqlite'}"
    upstream.create(url, [], [_task(1, 5), _task(2, 40)])
    engine = make_engine(f"sqlite:///{tmp_path / 'meta.sqlite'}")
    upgrade(engine)
    return url, engine


def _add(url: str, *tasks: dict) -> None:
    import json

    with sa.create_engine(url).begin() as conn:
        conn.execute(upstream.prodsys_tasks.insert(),
                     [{**t, "output_datasets": json.dumps(t["output_datasets"])} for t in tasks])


def _datasets(result: dict) -> list[str]:
    return [r["conf"]["dataset"] for r in result["runs"]]


def test_a_row_that_arrives_late_for_an_interval_already_read_is_read_by_the_next_run(source):
    url, engine = source
    first = campaign.read(url, engine, T0, T0 + timedelta(hours=1), follow_stop_point=True)
    assert _datasets(first) == [NAME.format(run=350010), NAME.format(run=350020)]
    assert campaign.commit(engine, first, follow_stop_point=True)
    # task 3 finished at 10:50 but reached the production DB after the 10:00-11:00 read
    _add(url, _task(3, 50), _task(4, 70))
    second = campaign.read(url, engine, T0 + timedelta(hours=1), T0 + timedelta(hours=2), follow_stop_point=True)
    assert _datasets(second) == [NAME.format(run=350030), NAME.format(run=350040)]
    campaign.commit(engine, second, follow_stop_point=True)
    assert campaign.stop_point(engine) == (T0 + timedelta(minutes=70), 4)


def test_a_backfill_reads_its_own_window_and_leaves_the_stop_point_alone(source):
    url, engine = source
    campaign.commit(engine, campaign.read(url, engine, T0, T0 + timedelta(hours=1), follow_stop_point=True), True)
    before = campaign.stop_point(engine)
    again = campaign.read(url, engine, T0, T0 + timedelta(minutes=30), follow_stop_point=False)
    assert _datasets(again) == [NAME.format(run=350010)]
    assert not campaign.commit(engine, again, follow_stop_point=False)
    assert campaign.stop_point(engine) == before


def test_a_backfill_is_idempotent_unless_reindex_is_asked_for(source):
    url, engine = source
    window = (T0, T0 + timedelta(hours=1))
    plain = [r["trigger_run_id"] for r in campaign.read(url, engine, *window, follow_stop_point=False)["runs"]]
    assert plain == [r["trigger_run_id"] for r in campaign.read(url, engine, *window, follow_stop_point=False,
                                                                 run_key="another run")["runs"]]
    reindex = campaign.read(url, engine, *window, follow_stop_point=False, reindex=True, run_key="backfill 1")
    ids = [r["trigger_run_id"] for r in reindex["runs"]]
    assert not set(ids) & set(plain) and all(r["conf"]["reindex"] for r in reindex["runs"])
    later = campaign.read(url, engine, *window, follow_stop_point=False, reindex=True, run_key="backfill 2")
    assert not set(ids) & {r["trigger_run_id"] for r in later["runs"]}  # each re-index backfill re-ingests


def test_a_window_of_more_datasets_than_one_read_takes_is_read_on_not_refused(source):
    url, engine = source
    _add(url, *[_task(100 + i, 41 + i % 10, outputs=3) for i in range(40)])  # 120 more datasets
    window = (T0, T0 + timedelta(hours=1))
    seen, after, reads = [], None, 0
    while True:
        result = campaign.read(url, engine, *window, follow_stop_point=False, after=after, max_datasets=50)
        assert 0 < len(result["runs"]) <= 50
        seen += _datasets(result)
        reads += 1
        if not result["continuation"]:
            break
        after = result["continuation"]["after"]
    assert reads == 3 and len(seen) == len(set(seen)) == 122
