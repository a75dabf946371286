"""Event picking through Airflow on the small world: 100 random AOD events plus 10 that do not exist."""

import numpy as np
import sqlalchemy as sa
import uproot

from eventindex.settings import Settings
from tests.conftest import dataset
from tests.dags.conftest import task_states



def test_pick_run_extracts_exactly_the_found_events_and_registers_the_output(dagbag, loaded):
    world, out, _, _, rucio = loaded
    aod = dataset(world, "AOD", tag="f961_m1831")
    with uproot.open(out / aod["files"][0]["path"]) as h:
        a = h["events"].arrays(["run_number", "event_number"], library="np")
    idx = np.random.default_rng(2).choice(len(a["event_number"]), 100, replace=False)
    lines = [f"{a['run_number'][i]} {a['event_number'][i]}" for i in idx] + [f"{a['run_number'][0]} {10**15 + k}"
                                                                            for k in range(10)]
    run = dagbag.dags["eventindex_pick"].test(run_conf={
        "events": "\n".join(lines), "datatype": "AOD", "project": "data18_13TeV", "stream": "physics_Main",
        "version": "f961_m1831", "output": "user.tester.pick1.AOD", "max_events": None})
    assert str(run.state) == "success", task_states(run)
    files = rucio.list_files("user.tester", "user.tester.pick1.AOD")
    got = []
    for f in files:
        path = rucio.list_replicas([{"scope": "user.tester", "name": f["name"]}])[0]["rses"]["LOCAL_DISK"][0][7:]
        with uproot.open(path) as h:
            got += h["events"]["event_number"].array(library="np").tolist()
    assert sorted(got) == sorted(int(a["event_number"][i]) for i in idx)
    with sa.create_engine(Settings.from_env().metadata_url).connect() as conn:
        row = conn.execute(sa.text("select state, found, missing, output_dataset from pick_requests")).one()
    assert tuple(row) == ("done", 100, 10, "user.tester:user.tester.pick1.AOD")


def test_bad_pairs_are_refused_before_any_work(dagbag, loaded):
    run = dagbag.dags["eventindex_pick"].test(run_conf={
        "events": "358031 1\nnot a pair\n", "datatype": "AOD", "project": None, "stream": None, "version": None,
        "output": None, "max_events": None})
    states = task_states(run)
    assert states["plan"] == "failed" and "extract" not in {k for k, v in states.items() if v == "success"}
