"""Skims through Airflow (`eventindex_skim`) on the small world: the file lands in the skims area, the summary is
pushed; bad options fail the run without writing anything; a cleared run replaces its own file."""

import json
from pathlib import Path

import uproot

from eventindex.catalog import make_selection
from eventindex.tag.skim import DAG_OPTIONS, dag_conf
from tests.dags.conftest import task_states

VERSION = "f961_m1831"


def _conf(**params) -> dict:
    """Every param (dag.test keeps params between runs of the same DAG object)."""
    base = {"project": None, "run": [], "lumi": [], "stream": None, "type": None, "version": None, "dataset": None,
            "guid": None, "trigger": [], "since": None, "until": None, "include_obsolete": False,
            "attributes": ["run_number", "event_number", "lumi_block"], "formats": [], "limit": None,
            "output": "skim.root", "overwrite": False}
    return {**base, **params}


def _world_events(world, out, lumi) -> dict:
    """(run, event) -> (GUID, entry) of the world's AOD f961_m1831 physics_Main events in the lumi range."""
    found = {}
    for d in world["datasets"]:
        if d["datatype"] == "AOD" and d.get("stream") == "physics_Main" and d["amitag"] == VERSION:
            for f in d["files"]:
                with uproot.open(Path(out) / f["path"]) as h:
                    a = h["events"].arrays(["run_number", "event_number", "lumi_block"], library="np")
                for i, (r, e, lb) in enumerate(zip(a["run_number"].tolist(), a["event_number"].tolist(),
                                                   a["lumi_block"].tolist())):
                    if lumi[0] <= lb <= lumi[1]:
                        found[(r, e)] = (f["guid"].upper(), i)
    return found


def _summary(run) -> dict:
    """The XCom ``summary`` of the run's skim task, from Airflow's DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(select(XComModel).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id, XComModel.task_id == "skim",
            XComModel.key == "summary")).one()
        value = XComModel.deserialize_value(row)
    return json.loads(value) if isinstance(value, str) else value


def test_a_skim_run_writes_the_file_in_the_skims_area_and_pushes_its_summary(dagbag, loaded, eventindex_home, tmp_path,
                                                                              monkeypatch):
    world, out, _, _, _ = loaded
    area = tmp_path / "skims-area"  # not the local home: where every worker writes
    monkeypatch.setenv("EVENTINDEX_SKIMS", str(area))
    dag = dagbag.dags["eventindex_skim"]
    assert set(dag.params) == set(DAG_OPTIONS)  # what `eventindex skim --dag` sends names every param
    sel = make_selection(datatype="AOD", stream="physics_Main", version=VERSION, lumi_blocks=["10-20"])
    run = dag.test(run_conf=dag_conf(sel, None, ["AOD", "RAW"], "lb10_20.root"))
    assert str(run.state) == "success", task_states(run)
    target = area / "lb10_20.root"
    with uproot.open(target) as h:
        tree = h["events"].arrays(library="np")
    expected = _world_events(world, out, (10, 20))
    got = {(int(r), int(e)): (g, int(n)) for r, e, g, n in zip(tree["run_number"], tree["event_number"],
                                                                 tree["AOD_guid"], tree["AOD_entry"])}
    assert got == expected and set(tree) >= {"RAW_guid", "RAW_entry", "lumi_block"}
    summary = _summary(run)
    assert summary["events"] == len(expected) and summary["bytes"] == target.stat().st_size
    assert summary["output"] == str(target) and summary["formats"] == ["AOD", "RAW"]
    assert summary["command"].startswith("eventindex skim ") and "--lumi 10-20" in summary["command"]
    assert json.loads((area / "lb10_20.root.json").read_text())["run_id"] == run.run_id
    assert not list(eventindex_home.rglob("*.root"))


def test_a_skim_with_an_unknown_attribute_fails_and_writes_nothing(dagbag, loaded, tmp_path, monkeypatch):
    area = tmp_path / "skims-area"
    monkeypatch.setenv("EVENTINDEX_SKIMS", str(area))
    run = dagbag.dags["eventindex_skim"].test(run_conf=_conf(type="AOD", attributes=["run_number", "jet_pt"]))
    assert str(run.state) == "failed" and task_states(run)["skim"] == "failed"
    assert not list(area.glob("*.root*"))
    [failure] = (area / ".failed").iterdir()  # why, for the requester's mail
    assert json.loads(failure.read_text())["error"].startswith("skim: bad skim: unknown attribute(s) 'jet_pt'")


def test_another_run_s_file_of_the_same_name_is_kept(dagbag, loaded, tmp_path, monkeypatch):
    area = tmp_path / "skims-area"
    monkeypatch.setenv("EVENTINDEX_SKIMS", str(area))
    conf = _conf(type="AOD", stream="physics_Main", version=VERSION, lumi=["3"], output="lb3.root")
    first = dagbag.dags["eventindex_skim"].test(run_conf=conf)
    assert str(first.state) == "success", task_states(first)
    written = (area / "lb3.root").read_bytes()
    second = dagbag.dags["eventindex_skim"].test(run_conf={**conf, "lumi": ["4"]})
    assert str(second.state) == "failed"
    assert (area / "lb3.root").read_bytes() == written
    third = dagbag.dags["eventindex_skim"].test(run_conf={**conf, "lumi": ["4"], "overwrite": True})
    assert str(third.state) == "success", task_states(third)
    with uproot.open(area / "lb3.root") as h:
        assert set(h["events"]["lumi_block"].array(library="np").tolist()) == {4}
