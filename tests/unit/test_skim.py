"""Skims (`eventindex skim`, eventindex.tag.skim): the ROOT file of the events passing a selection.

Expected values come from the simulated world's ROOT files read with uproot (which events a dataset's files hold,
at which entry of which file), never from the catalogue or the function under test.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import uproot

from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.cli.main import main
from eventindex.errors import BadRequest
from eventindex.tag.skim import skim, skim_to_area
from eventindex.trigger import load_menus
from tests.conftest import upgraded

VERSION = "f961_m1831"


@pytest.fixture(scope="module")
def loaded_home(staged_world, tmp_path_factory):
    """An EVENTINDEX_HOME whose embedded catalogue holds the small world (loaded once for this module)."""
    world, out, staging = staged_world
    home = tmp_path_factory.mktemp("skim-home")
    catalog = EmbeddedCatalog(home / "catalog", upgraded(f"sqlite:///{home / 'metadata.sqlite'}"))
    catalog.save_menus(load_menus(out / "menus.json")[0].values())
    load_staged(catalog, str(staging))
    return world, out, home


@pytest.fixture
def home(loaded_home, monkeypatch):
    world, out, home = loaded_home
    monkeypatch.setenv("EVENTINDEX_HOME", str(home))
    return world, out


def world_refs(world, out, datatype, stream="physics_Main", version=None, lumi=None) -> dict:
    """(run, event) -> (GUID, entry, lumi block) of every event in the ROOT files of the world's datasets of a
    format (and stream, version), read with uproot."""
    found = {}
    for d in world["datasets"]:
        if d["datatype"] != datatype or d.get("stream") != stream or (version and d["amitag"] != version):
            continue
        for f in d["files"]:
            with uproot.open(Path(out) / f["path"]) as h:
                a = h["events"].arrays(["run_number", "event_number", "lumi_block"], library="np")
            for entry, (r, e, lb) in enumerate(zip(a["run_number"].tolist(), a["event_number"].tolist(),
                                                   a["lumi_block"].tolist())):
                if lumi is None or lumi[0] <= lb <= lumi[1]:
                    found[(r, e)] = (f["guid"].upper(), entry, lb)
    return found


def read_tree(path) -> dict[str, np.ndarray]:
    with uproot.open(path) as h:
        return h["events"].arrays(library="np")


def skim_cli(capsys, *args) -> tuple[int, dict | None, str]:
    rc = main(["skim", *map(str, args), "--json"])
    captured = capsys.readouterr()
    return rc, json.loads(captured.out) if rc == 0 else None, captured.err


def write_options(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_skim_holds_the_selected_events_with_their_guid_and_entry_in_each_format(home, capsys, tmp_path):
    world, out = home
    target = tmp_path / "skim.root"
    rc, summary, err = skim_cli(capsys, "--type", "AOD", "--stream", "physics_Main", "--version", VERSION,
                                "--lumi", "10-20", "--formats", "AOD,RAW",
                                "--attributes", "run_number,event_number,lumi_block", "--output", target)
    assert rc == 0, err
    aod = world_refs(world, out, "AOD", version=VERSION, lumi=(10, 20))
    raw = world_refs(world, out, "RAW")
    tree = read_tree(target)
    assert sorted(tree) == ["AOD_entry", "AOD_guid", "RAW_entry", "RAW_guid", "event_number", "lumi_block",
                            "run_number"]
    got = {(int(r), int(e)): (ag, int(ae), rg, int(re), int(lb)) for r, e, lb, ag, ae, rg, re in zip(
        tree["run_number"], tree["event_number"], tree["lumi_block"], tree["AOD_guid"], tree["AOD_entry"],
        tree["RAW_guid"], tree["RAW_entry"])}
    assert len(got) == len(tree["run_number"]), "an event written twice"
    assert aod and set(got) == set(aod)
    assert got == {k: (aod[k][0], aod[k][1], *raw[k][:2], aod[k][2]) for k in aod}
    assert summary["events"] == len(aod)
    assert summary["bytes"] == target.stat().st_size
    assert summary["output"] == str(target)
    assert summary["formats"] == ["AOD", "RAW"]
    assert summary["selection"] == {"lumi": ["10-20"], "stream": "physics_Main", "type": "AOD", "version": VERSION}
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*.part"))


def test_the_references_default_to_the_selection_s_format_and_masks_keep_their_bits(home, tmp_path):
    world, out = home
    from eventindex.catalog import open_catalog

    sel = make_selection(datatype="RAW", stream="physics_Main", lumi_blocks=["5"])
    result = skim(open_catalog(), sel, ["run_number", "event_number", "stream", "l1_tav", "dataset"],
                  output=str(tmp_path / "raw.root"))
    tree = read_tree(tmp_path / "raw.root")
    assert result.formats == ["RAW"] and sorted(tree) == ["RAW_entry", "RAW_guid", "dataset", "event_number",
                                                          "l1_tav", "run_number", "stream"]
    raw = world_refs(world, out, "RAW", lumi=(5, 5))
    assert {(int(r), int(e)): (g, int(n)) for r, e, g, n in zip(tree["run_number"], tree["event_number"],
                                                                  tree["RAW_guid"], tree["RAW_entry"])} == \
        {k: v[:2] for k, v in raw.items()}
    assert set(tree["stream"]) == {"physics_Main"}
    assert all(name.split(".")[2] == "physics_Main" and name.endswith(".RAW") for name in tree["dataset"])
    masks = {}  # the L1 TAV mask of each event, as the data files hold it
    for d in world["datasets"]:
        if d["datatype"] == "RAW" and d.get("stream") == "physics_Main":
            for f in d["files"]:
                with uproot.open(Path(out) / f["path"]) as h:
                    a = h["events"].arrays(["run_number", "event_number", "l1_tav"], library="np")
                masks.update({(int(r), int(e)): m for r, e, m in zip(a["run_number"], a["event_number"],
                                                                     a["l1_tav"])})
    for r, e, m in zip(tree["run_number"], tree["event_number"], tree["l1_tav"]):
        assert np.array_equal(m, masks[(int(r), int(e))])


def test_the_options_file_gives_defaults_that_the_command_line_overrides(home, capsys, tmp_path, monkeypatch):
    world, out = home
    monkeypatch.chdir(tmp_path)
    options = write_options(tmp_path / "skim.toml", f"""
type = "AOD"
stream = "physics_Main"
version = "{VERSION}"
lumi = ["10-20"]
attributes = ["run_number", "event_number", "lumi_block"]
formats = ["AOD"]
output = "from_file.root"
""")
    rc, summary, err = skim_cli(capsys, "--formats", "AOD,RAW", "--options", options, "--lumi", "3-4",
                                "--output", "from_cli.root")
    assert rc == 0, err
    assert not (tmp_path / "from_file.root").exists()
    tree = read_tree(tmp_path / "from_cli.root")
    expected = world_refs(world, out, "AOD", version=VERSION, lumi=(3, 4))
    assert set(zip(tree["run_number"].tolist(), tree["event_number"].tolist())) == set(expected)
    assert summary["selection"] == {"lumi": ["3-4"], "stream": "physics_Main", "type": "AOD", "version": VERSION}
    assert summary["formats"] == ["AOD", "RAW"]  # given before --options: the command line still wins
    assert summary["attributes"] == ["run_number", "event_number", "lumi_block"]  # from the file


def test_an_unknown_key_in_the_options_file_is_refused_by_name(home, capsys, tmp_path):
    options = write_options(tmp_path / "bad.toml", 'type = "AOD"\nlumiblocks = ["1-2"]\n')
    rc, _, err = skim_cli(capsys, "--options", options, "--output", tmp_path / "x.root")
    assert rc == 1
    assert "unknown option 'lumiblocks'" in err
    assert list(tmp_path.iterdir()) == [options]


def test_an_unknown_attribute_is_refused_listing_the_allowed_ones_and_no_file_is_written(home, capsys, tmp_path):
    rc, _, err = skim_cli(capsys, "--type", "AOD", "--attributes", "run_number,jet_pt", "--output",
                          tmp_path / "x.root")
    assert rc == 1
    assert "unknown attribute(s) 'jet_pt'" in err and "lumi_block" in err and "mc_event_weight" in err
    assert list(tmp_path.iterdir()) == []


def test_a_format_the_records_do_not_reference_is_refused(home, capsys, tmp_path):
    rc, _, err = skim_cli(capsys, "--type", "RAW", "--formats", "AOD", "--output", tmp_path / "x.root")
    assert rc == 1 and "no reference to AOD" in err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_kept_unless_overwrite_is_given(home, capsys, tmp_path):
    target = tmp_path / "x.root"
    target.write_bytes(b"keep me")
    args = ("--type", "AOD", "--stream", "physics_Main", "--version", VERSION, "--lumi", "1", "--output", target)
    rc, _, err = skim_cli(capsys, *args)
    assert rc == 1 and "exists: give --overwrite" in err
    assert target.read_bytes() == b"keep me"
    rc, summary, err = skim_cli(capsys, *args, "--overwrite")
    assert rc == 0, err
    assert len(read_tree(target)["run_number"]) == summary["events"] > 0


def test_the_reproduce_command_run_again_gives_an_identical_tree(home, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = write_options(tmp_path / "skim.toml", f"""
type = "AOD"
version = "{VERSION}"
stream = "physics_Main"
run = [358031]
trigger = ["HLT_mu26_ivarmedium_L1MU14FCH"]
attributes = ["event_number", "run_number", "bcid", "timestamp", "hlt_passed"]
formats = ["RAW", "AOD"]
""")
    rc, summary, err = skim_cli(capsys, "--options", options, "--limit", "50", "--output", "first.root")
    assert rc == 0, err
    words = shlex.split(summary["command"])
    assert words[:2] == ["eventindex", "skim"] and "--options" not in words
    assert words[words.index("--trigger") + 1] == "HLT_mu26_ivarmedium_L1MU14FCH"
    Path("first.root").rename("kept.root")
    rc, again, err = skim_cli(capsys, *words[2:])
    assert rc == 0, err
    assert again["command"] == summary["command"]
    first, second = read_tree("kept.root"), read_tree("first.root")
    assert 0 < len(first["event_number"]) <= 50
    assert sorted(first) == sorted(second)
    for name in first:
        assert np.array_equal(first[name], second[name]), name


def test_a_skim_that_fails_midway_leaves_no_file(home, tmp_path):
    from eventindex.catalog import open_catalog

    catalog = open_catalog()

    class Failing:
        """The catalogue, whose event stream breaks after the first batch."""

        def __getattr__(self, name):
            return getattr(catalog, name)

        def select(self, sel, columns=None, batch_size=65536):
            for batch in catalog.select(sel, columns, batch_size=100):
                yield batch
                raise OSError("the disk is full")

    with pytest.raises(OSError, match="disk is full"):
        skim(Failing(), make_selection(datatype="RAW", stream="physics_Main"), output=str(tmp_path / "x.root"))
    assert list(tmp_path.iterdir()) == []


def test_a_skim_goes_to_the_skims_area_by_file_name_only(home, tmp_path):
    from eventindex.catalog import open_catalog

    sel = make_selection(datatype="AOD", stream="physics_Main", version=VERSION, lumi_blocks=["7"])
    for bad in ("../x.root", "sub/x.root", "x.csv", ""):
        with pytest.raises(BadRequest, match="output name"):
            skim_to_area(open_catalog(), sel, str(tmp_path / "skims"), bad)
    area = f"file://{tmp_path / 'skims'}"  # through the object-store path: uploaded whole when complete
    result = skim_to_area(open_catalog(), sel, area, "lb7.root")
    tree = read_tree(tmp_path / "skims" / "lb7.root")
    assert result.events == len(tree["run_number"]) > 0
    assert result.output == f"{area}/lb7.root" and result.bytes == (tmp_path / "skims" / "lb7.root").stat().st_size
    assert list((tmp_path / "skims").iterdir()) == [tmp_path / "skims" / "lb7.root"]


def test_an_empty_skim_is_a_valid_file_with_the_branches_asked_for(home, tmp_path):
    from eventindex.catalog import open_catalog

    sel = make_selection(datatype="AOD", stream="physics_Main", version=VERSION, runs=["1-2"])
    result = skim(open_catalog(), sel, ["run_number"], ["AOD"], output=str(tmp_path / "none.root"))
    tree = read_tree(tmp_path / "none.root")
    assert result.events == 0 and sorted(tree) == ["AOD_entry", "AOD_guid", "run_number"]
    assert all(len(v) == 0 for v in tree.values())


def test_dag_submits_a_conf_that_the_dag_s_task_turns_into_the_same_skim(home, capsys, tmp_path, monkeypatch):
    from eventindex import airflow_api
    from eventindex.catalog import open_catalog
    from eventindex.tag.skim import run_dag_skim

    area = tmp_path / "skims"

    class Airflow:
        """Airflow's REST API as the CLI sees it; the run does what the DAG's task does with the conf."""

        url = "http://airflow.invalid"

        def trigger(self, dag_id, conf, prefix="pick"):
            assert (dag_id, prefix) == ("eventindex_skim", "skim")
            self.conf = json.loads(json.dumps(conf))  # as it travels
            self.result = run_dag_skim(open_catalog(), self.conf, str(area), "skim__1")
            return "skim__1"

        def wait(self, dag_id, run_id, progress=None, **kwargs):
            return "success"

        def run_xcom(self, dag_id, run_id, key):
            return self.result.to_dict()

    api = Airflow()
    monkeypatch.setattr(airflow_api.AirflowAPI, "from_env", classmethod(lambda cls, settings=None: api))
    args = ("--type", "AOD", "--stream", "physics_Main", "--version", VERSION, "--lumi", "8-9", "--formats", "AOD,RAW")
    rc, submitted, err = skim_cli(capsys, *args, "--dag", "--output", "via_dag.root")
    assert rc == 0, err
    assert submitted["run_id"] == "skim__1" and submitted["state"] == "success"
    assert api.conf["lumi"] == ["8-9"] and api.conf["output"] == "via_dag.root"
    rc, local, err = skim_cli(capsys, *args, "--output", tmp_path / "local.root")
    assert rc == 0, err
    first, second = read_tree(area / "via_dag.root"), read_tree(tmp_path / "local.root")
    assert sorted(first) == sorted(second) and submitted["events"] == local["events"] > 0
    for name in first:
        assert np.array_equal(first[name], second[name]), name
    rc, _, err = skim_cli(capsys, *args, "--dag", "--output", "sub/x.root")
    assert rc == 1 and "a file name without folders" in err
