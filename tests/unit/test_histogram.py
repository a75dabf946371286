"""The histogramming service (eventindex.tag.histogram, `eventindex histogram`).

Expected values are numpy's (np.histogram / np.histogram2d) over the events read directly from the small world's
ROOT files with uproot, trigger decisions decoded here through the world's menus; never from the code under test.
Bins are half-open [lo, hi): numpy's last bin is closed, so values equal to the upper edge are counted as overflow
here before numpy sees the rest.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot

from eventindex.catalog import make_selection, open_catalog
from eventindex.errors import BadRequest
from eventindex.tag.histogram import COLUMNS, histogram
from eventindex.trigger import bit_is_set, load_menus

TRIGGER = "HLT_mu26_ivarmedium_L1MU14FCH"
MAIN_RAW = {"datatype": "RAW", "stream": "physics_Main"}


@pytest.fixture(scope="module")
def home(staged_world, tmp_path_factory):
    """The small world loaded once through the CLI into its own EVENTINDEX_HOME: (world, world folder, home)."""
    world, out, staging = staged_world
    home = tmp_path_factory.mktemp("histogram-home")
    ei(home, "load", staging, "--menus", out / "menus.json")
    return world, out, home


@pytest.fixture
def catalog(home, monkeypatch):
    monkeypatch.setenv("EVENTINDEX_HOME", str(home[2]))
    return open_catalog()


def ei(home, *args, check=True):
    env = {**os.environ, "EVENTINDEX_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "eventindex.cli", *map(str, args)], capture_output=True, text=True,
                          check=check, env=env)


def _datasets(world, datatype, stream=None, mc=False):
    return [d for d in world["datasets"] if d["datatype"] == datatype and ("dsid" in d) == mc
            and (stream is None or d.get("stream") == stream)]


def _read(out, datasets, branches) -> dict[str, np.ndarray]:
    parts = []
    for d in datasets:
        for f in d["files"]:
            with uproot.open(Path(out) / f["path"]) as h:
                parts.append(h["events"].arrays(branches, library="np"))
    return {b: np.concatenate([p[b] for p in parts]) for b in branches}


def _passed(out, cols, chain) -> np.ndarray:
    """Whether each event passed an HLT chain, decoded through the menu of its own SMK."""
    menus, _ = load_menus(Path(out) / "menus.json")
    hlt = np.stack(cols["hlt_passed"]).view(np.uint8).reshape(len(cols["smk"]), -1)
    passed = np.zeros(len(cols["smk"]), bool)
    for smk in np.unique(cols["smk"]):
        rows = cols["smk"] == smk
        passed[rows] = bit_is_set(hlt[rows], menus[int(smk)].locate(chain)[1])
    return passed


def _expect_1d(v, bins, lo, hi, w=None):
    inside = (v >= lo) & (v < hi)
    counts = np.histogram(v[inside], bins, (lo, hi), weights=None if w is None else w[inside])[0]
    flow = (lambda m: int(m.sum())) if w is None else (lambda m: float(w[m].sum()))
    return counts, flow(v < lo), flow(v >= hi)


# --- the library against numpy ------------------------------------------------------------------------------------


def test_1d_counts_underflow_overflow_and_entries_equal_numpy_over_the_root_files(home, catalog):
    world, out, _ = home
    v = _read(out, _datasets(world, "RAW", "physics_Main"), ["lumi_block"])["lumi_block"].astype(np.int64)
    j = histogram(catalog, make_selection(**MAIN_RAW), "lumi_block", 11, [(3, 25)]).to_json()
    counts, under, over = _expect_1d(v, 11, 3, 25)
    assert under > 0 and over > 0
    assert j["counts"] == counts.tolist()
    assert (j["underflow"], j["overflow"]) == ([under], [over])
    assert j["entries"] == len(v) and j["missing"] == 0 and j["limited"] is False
    assert j["edges"] == [np.linspace(3, 25, 12).tolist()] and j["range_from"] == ["options"]


def test_without_a_range_the_axis_spans_the_data_from_min_to_max_plus_one(home, catalog):
    world, out, _ = home
    v = _read(out, _datasets(world, "RAW", "physics_Main"), ["bcid"])["bcid"].astype(np.int64)
    j = histogram(catalog, make_selection(**MAIN_RAW), ["bcid"], 7).to_json()
    lo, hi = int(v.min()), int(v.max()) + 1
    assert j["edges"][0][0] == lo and j["edges"][0][-1] == hi and j["range_from"] == ["data"]
    assert j["counts"] == np.histogram(v, np.asarray(j["edges"][0]))[0].tolist()
    assert sum(j["counts"]) == len(v) and j["underflow"] == [0] and j["overflow"] == [0]


def test_2d_counts_and_per_axis_flows_equal_numpy_histogram2d(home, catalog):
    world, out, _ = home
    cols = _read(out, _datasets(world, "RAW", "physics_Main"), ["lumi_block", "bcid"])
    x, y = cols["lumi_block"].astype(np.int64), cols["bcid"].astype(np.int64)
    j = histogram(catalog, make_selection(**MAIN_RAW), ["lumi_block", "bcid"], [6, 8],
                  [(2, 26), (0, 3000)]).to_json()
    inside = (x >= 2) & (x < 26) & (y >= 0) & (y < 3000)
    expected = np.histogram2d(x[inside], y[inside], [6, 8], [(2, 26), (0, 3000)])[0].astype(int)
    assert np.asarray(j["counts"]).shape == (6, 8)
    assert j["counts"] == expected.tolist()
    assert j["underflow"] == [int((x < 2).sum()), int((y < 0).sum())]
    assert j["overflow"] == [int((x >= 26).sum()), int((y >= 3000).sum())]
    assert j["overflow"][0] > 0 and j["overflow"][1] > 0
    assert j["entries"] == len(x) and len(j["edges"]) == 2


def test_weighted_counts_and_variances_are_sums_of_mc_event_weights_per_bin(home, catalog):
    world, out, _ = home
    cols = _read(out, _datasets(world, "AOD", mc=True), ["bcid", "mc_event_weight"])
    v, w = cols["bcid"].astype(np.int64), cols["mc_event_weight"].astype(np.float64)
    assert len(np.unique(w)) > 2  # real weights, not all 1
    j = histogram(catalog, make_selection(project="mc16_13TeV", datatype="AOD"), "bcid", 8, [(400, 3600)],
                  weight=True).to_json()
    counts, under, over = _expect_1d(v, 8, 400, 3600, w)
    assert j["weighted"] is True and j["weight_column"] == "mc_event_weight"
    np.testing.assert_allclose(j["counts"], counts, rtol=1e-9)
    np.testing.assert_allclose(j["variances"], _expect_1d(v, 8, 400, 3600, w * w)[0], rtol=1e-9)
    np.testing.assert_allclose([j["underflow"][0], j["overflow"][0]], [under, over], rtol=1e-9)
    assert j["entries"] == len(v)


def test_real_data_has_no_weight_so_a_weighted_histogram_fills_nothing_and_counts_it_missing(home, catalog):
    world, out, _ = home
    n = len(_read(out, _datasets(world, "RAW", "physics_Main"), ["bcid"])["bcid"])
    j = histogram(catalog, make_selection(**MAIN_RAW), "bcid", 5, [(0, 3600)], weight=True).to_json()
    assert j["entries"] == 0 and j["missing"] == n and sum(j["counts"]) == 0


def test_a_trigger_cut_histograms_only_the_events_that_passed_the_chain(home, catalog):
    world, out, _ = home
    cols = _read(out, _datasets(world, "RAW", "physics_Main"), ["lumi_block", "smk", "hlt_passed"])
    passed = _passed(out, cols, TRIGGER)
    assert 0 < passed.sum() < len(passed)
    v = cols["lumi_block"].astype(np.int64)[passed]
    j = histogram(catalog, make_selection(**MAIN_RAW, triggers=[TRIGGER]), "lumi_block", 10, [(0, 30)]).to_json()
    counts, under, over = _expect_1d(v, 10, 0, 30)
    assert j["counts"] == counts.tolist() and (j["underflow"], j["overflow"]) == ([under], [over])
    assert j["entries"] == len(v) and j["selection"]["trigger"] == [TRIGGER]


def test_a_lumi_block_range_histograms_only_its_events(home, catalog):
    world, out, _ = home
    cols = _read(out, _datasets(world, "RAW", "physics_Main"), ["lumi_block", "bcid"])
    keep = (cols["lumi_block"] >= 5) & (cols["lumi_block"] <= 12)
    v = cols["bcid"].astype(np.int64)[keep]
    j = histogram(catalog, make_selection(**MAIN_RAW, lumi_blocks=["5-12"]), "bcid", 12, [(0, 3600)]).to_json()
    assert j["counts"] == _expect_1d(v, 12, 0, 3600)[0].tolist()
    assert j["entries"] == len(v) < len(cols["bcid"]) and j["selection"]["lumi"] == ["5-12"]


def test_a_limit_fills_at_most_that_many_events_and_says_so(catalog):
    j = histogram(catalog, make_selection(**MAIN_RAW), "lumi_block", 5, [(0, 30)], limit=100).to_json()
    assert j["entries"] == 100 and sum(j["counts"]) + j["underflow"][0] + j["overflow"][0] == 100
    assert j["limit"] == 100 and j["limited"] is True and "--limit 100" in j["command"]


@pytest.mark.parametrize("kwargs, option", [
    ({"columns": "jet_pt"}, "column"), ({"columns": "stream"}, "column"),
    ({"columns": ["lumi_block", "bcid", "smk"]}, "column"), ({"bins": 0}, "bins"), ({"bins": "x"}, "bins"),
    ({"bins": [3, 4, 5]}, "bins"), ({"ranges": [(5, 1)]}, "range"), ({"ranges": ["a,b"]}, "range"),
    ({"ranges": [(0, 1), (0, 1)]}, "range"), ({"limit": 0}, "limit")])
def test_bad_columns_bins_ranges_and_limits_are_refused_naming_the_option(catalog, kwargs, option):
    args = {"columns": "lumi_block", "bins": 5, **kwargs}
    with pytest.raises(BadRequest, match=rf"^{option}\b") as exc:
        histogram(catalog, make_selection(**MAIN_RAW), **args)
    if option == "column" and isinstance(args["columns"], str):
        assert args["columns"] in str(exc.value) and all(c in str(exc.value) for c in COLUMNS)


# --- the command --------------------------------------------------------------------------------------------------


def test_the_cli_json_equals_the_library_and_its_command_reproduces_it(home, catalog):
    opts = ["--column", "lumi_block", "--column", "bcid", "--bins", "6", "--bins", "8", "--range", "0,30",
            "--range", "0,3600", "--type", "RAW", "--stream", "physics_Main", "--trigger", TRIGGER, "--lumi", "2-20"]
    cli = json.loads(ei(home[2], "histogram", *opts, "--json").stdout)
    lib = histogram(catalog, make_selection(**MAIN_RAW, triggers=[TRIGGER], lumi_blocks=["2-20"]),
                    ["lumi_block", "bcid"], [6, 8], [(0, 30), (0, 3600)]).to_json()
    assert cli == lib and cli["entries"] > 0
    words = shlex.split(cli["command"])
    assert words[:2] == ["eventindex", "histogram"]
    assert json.loads(ei(home[2], *words[1:]).stdout) == cli


def test_the_cli_weighted_json_has_variances_equal_to_the_library(home, catalog):
    cli = json.loads(ei(home[2], "histogram", "--column", "event_number", "--bins", "4", "--project", "mc16_13TeV",
                        "--type", "DAOD_PHYS", "--weight", "--json").stdout)
    lib = histogram(catalog, make_selection(project="mc16_13TeV", datatype="DAOD_PHYS"), "event_number", 4,
                    weight=True).to_json()
    assert cli == lib and "variances" in cli and cli["entries"] > 0


@pytest.mark.parametrize("flag, check", [
    ("--png", lambda data: data.startswith(b"\x89PNG\r\n\x1a\n")),
    ("--svg", lambda data: b"<svg" in data[:2000] and data.rstrip().endswith(b"</svg>"))])
@pytest.mark.parametrize("columns", [["--column", "lumi_block"], ["--column", "lumi_block", "--column", "bcid"]])
def test_png_and_svg_plots_are_written_as_valid_files(home, tmp_path, flag, check, columns):
    path = tmp_path / f"h{flag[2:]}.{flag[2:]}"
    ei(home[2], "histogram", *columns, "--bins", "10", "--type", "RAW", "--stream", "physics_Main", flag, path)
    data = path.read_bytes()
    assert len(data) > 1000 and check(data)


def test_the_text_output_shows_bins_entries_and_flows(home):
    text = ei(home[2], "histogram", "--column", "lumi_block", "--bins", "5", "--range", "2,20", "--type", "RAW",
              "--stream", "physics_Main").stdout
    assert "entries" in text and "underflow" in text and "overflow" in text and "█" in text


@pytest.mark.parametrize("args, named", [
    (["--column", "jet_pt", "--bins", "5"], "'jet_pt'"),
    (["--column", "lumi_block", "--bins", "0"], "bins"),
    (["--column", "lumi_block", "--bins", "many"], "bins"),
    (["--column", "lumi_block", "--bins", "5", "--range", "9,3"], "range"),
    (["--column", "lumi_block", "--bins", "5", "--range", "1-3"], "range"),
    (["--column", "lumi_block", "--column", "bcid", "--bins", "5", "--range", "0,9"], "range"),
    (["--column", "lumi_block", "--bins", "5", "--png", "plot.jpg"], "--png")])
def test_bad_cli_options_exit_non_zero_naming_the_option(home, args, named):
    done = ei(home[2], "histogram", *args, "--type", "RAW", check=False)
    assert done.returncode != 0 and named in done.stderr and not done.stdout
    if "jet_pt" in args:
        assert "lumi_block" in done.stderr and "mc_event_weight" in done.stderr
