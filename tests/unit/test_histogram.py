"""The histogramming service (eventindex.tag.histogram, `eventindex histogram`).

Expected values are binned here in exact arithmetic (integers, or Fractions for float values and ranges) over the
events read directly from the small world's ROOT files with uproot, trigger decisions decoded here through the
world's menus; never with the float arithmetic of the code under test (numpy's histogram computes a bin the way a
regular axis does, and puts lumi block 117 of 50 bins over [1, 201) into [113, 117)). Bins are half-open [lo, hi).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from fractions import Fraction

import numpy as np
import pytest
import uproot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    ei(home, "db", "upgrade")
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


def _bin_of(v: np.ndarray, bins: int, lo: int, hi: int) -> np.ndarray:
    """Each integer value's bin over integer [lo, hi) in integer arithmetic: floor((v - lo) * bins / (hi - lo)),
    -1 below the range, ``bins`` at or above it."""
    v = v.astype(np.int64)
    return np.where(v < lo, -1, np.where(v >= hi, bins, (v - lo) * bins // (hi - lo)))


def _expect_1d(v, bins, lo, hi, w=None):
    index = _bin_of(v, bins, lo, hi)
    weights = np.ones(len(v), np.int64) if w is None else w
    counts = np.array([weights[index == i].sum() for i in range(-1, bins + 1)])
    flow = int if w is None else float
    return counts[1:-1], flow(counts[0]), flow(counts[-1])


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
    exact = [Fraction(lo) + Fraction(hi - lo) * i / 7 for i in range(8)]  # the edges in rationals
    assert j["counts"] == [int(((v >= a) & (v < b)).sum()) for a, b in zip(exact, exact[1:])]
    assert sum(j["counts"]) == len(v) and j["underflow"] == [0] and j["overflow"] == [0]


def test_2d_counts_and_per_axis_flows_equal_numpy_histogram2d(home, catalog):
    world, out, _ = home
    cols = _read(out, _datasets(world, "RAW", "physics_Main"), ["lumi_block", "bcid"])
    x, y = cols["lumi_block"].astype(np.int64), cols["bcid"].astype(np.int64)
    j = histogram(catalog, make_selection(**MAIN_RAW), ["lumi_block", "bcid"], [6, 8],
                  [(2, 26), (0, 3000)]).to_json()
    bx, by = _bin_of(x, 6, 2, 26), _bin_of(y, 8, 0, 3000)
    expected = np.array([[int(((bx == i) & (by == k)).sum()) for k in range(8)] for i in range(6)])
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


# --- exact bins, whatever the float arithmetic of the edges -------------------------------------------------------


def _exact_counts(values, weights, lo, hi, bins) -> tuple[list, object, object]:
    """Counts (or summed weights) per bin of ``bins`` over [lo, hi) in rationals: value x is in bin
    floor((x - lo) * bins / (hi - lo)); one Fraction computation per distinct value."""
    lo, hi = Fraction(lo), Fraction(hi)
    counts, under, over = [0] * bins, 0, 0
    uniq, inverse = np.unique(values, return_inverse=True)
    totals = np.bincount(inverse, weights=weights, minlength=len(uniq))
    for x, total in zip(uniq.tolist(), totals.tolist()):
        x = Fraction(x)
        if x < lo:
            under += total
        elif x >= hi:
            over += total
        else:
            counts[(x - lo) * bins // (hi - lo)] += total
    return counts, under, over


def test_each_lumi_block_lands_in_the_bin_that_count_per_lumi_block_gives(home, catalog):
    """26 bins over [1, 27): one lumi block a bin. A regular axis puts 12 and 24 in the bin below ((x - 1) / 26 * 26
    is 10.999... in doubles); ``count --lumi X`` (the catalogue's key-file cut, another code path) says where they
    belong."""
    j = histogram(catalog, make_selection(**MAIN_RAW), "lumi_block", 26, [(1, 27)]).to_json()
    per_block = [catalog.count(make_selection(**MAIN_RAW, lumi_blocks=[str(b)])) for b in range(1, 27)]
    assert j["counts"] == per_block and sum(per_block) > 0
    assert j["edges"] == [[float(e) for e in range(1, 28)]]


@pytest.fixture(scope="module")
def columns(home):
    world, out, _ = home
    raw = _read(out, _datasets(world, "RAW", "physics_Main"), ["lumi_block", "bcid"])
    mc = _read(out, _datasets(world, "AOD", mc=True), ["mc_event_weight", "bcid"])
    return raw, mc


finite = st.floats(-5000, 5000, allow_nan=False, allow_infinity=False)


@st.composite
def span(draw, integer: bool, bins: int = 1):
    """A range as users type them: integers (often a whole number of values a bin, where a bin's edges fall on
    values and float arithmetic errs), or decimals."""
    if integer:
        a = draw(st.integers(-5, 40))
        b = draw(st.one_of(st.integers(-50, 3600), st.integers(1, 8).map(lambda k: a + k * bins)))
    else:
        a, b = draw(finite), draw(finite)
    if a == b:
        b = a + 1
    return min(a, b), max(a, b)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), bins=st.integers(1, 400), integer=st.booleans(), column=st.sampled_from(["lumi_block", "bcid"]))
def test_1d_bins_of_integer_columns_equal_exact_binning(catalog, columns, data, bins, integer, column):
    lo, hi = data.draw(span(integer, bins))
    v = columns[0][column].astype(np.int64)
    j = histogram(catalog, make_selection(**MAIN_RAW), column, bins, [(lo, hi)]).to_json()
    counts, under, over = _exact_counts(v, None, lo, hi, bins)
    assert j["counts"] == [int(c) for c in counts]
    assert (j["underflow"], j["overflow"]) == ([int(under)], [int(over)])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bins=st.integers(1, 300), lo=st.floats(-3, 3), width=st.floats(0.001, 6))
def test_1d_bins_of_a_float_column_equal_exact_binning(catalog, columns, bins, lo, width):
    hi = lo + width
    w = columns[1]["mc_event_weight"].astype(np.float64)
    j = histogram(catalog, make_selection(project="mc16_13TeV", datatype="AOD"), "mc_event_weight", bins,
                  [(lo, hi)]).to_json()
    counts, under, over = _exact_counts(w, None, lo, hi, bins)
    assert j["counts"] == [int(c) for c in counts]
    assert (j["underflow"], j["overflow"]) == ([int(under)], [int(over)])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), bx=st.integers(1, 60), by=st.integers(1, 60))
def test_2d_bins_equal_exact_binning_per_axis(catalog, columns, data, bx, by):
    (xlo, xhi), (ylo, yhi) = data.draw(span(True, bx)), data.draw(span(False))
    x, y = columns[0]["lumi_block"].astype(np.int64), columns[0]["bcid"].astype(np.int64)
    j = histogram(catalog, make_selection(**MAIN_RAW), ["lumi_block", "bcid"], [bx, by],
                  [(xlo, xhi), (ylo, yhi)]).to_json()
    expected = np.zeros((bx, by), np.int64)
    ix, iy = _exact_index(x, xlo, xhi, bx), _exact_index(y, ylo, yhi, by)
    inside = (ix >= 0) & (ix < bx) & (iy >= 0) & (iy < by)
    np.add.at(expected, (ix[inside], iy[inside]), 1)
    assert j["counts"] == expected.tolist()
    assert j["underflow"] == [int((ix < 0).sum()), int((iy < 0).sum())]
    assert j["overflow"] == [int((ix >= bx).sum()), int((iy >= by).sum())]


def _exact_index(v, lo, hi, bins) -> np.ndarray:
    """Each value's bin in rationals (-1 below, ``bins`` at or above the range)."""
    lo, hi = Fraction(lo), Fraction(hi)
    table = {}
    for x in np.unique(v).tolist():
        fx = Fraction(x)
        table[x] = -1 if fx < lo else bins if fx >= hi else int((fx - lo) * bins // (hi - lo))
    return np.array([table[x] for x in v.tolist()], np.int64)


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
