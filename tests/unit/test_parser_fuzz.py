"""Fuzzing (hypothesis) of the parsers that take users' text: trigger expressions, dataset names, selection values and
histogram ranges. Whatever the text, only the project's own error types come out (a one-line refusal), never a
RecursionError, IndexError or TypeError that would reach a user as a traceback or an HTTP 500; what parses, parses to
a fixed point (its canonical text parses to itself)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventindex.catalog import expression, make_selection
from eventindex.errors import BadInput, BadSelection, EventIndexError, MalformedDatasetName
from eventindex.naming import parse
from eventindex.tag.histogram import check_ranges

NAMES = st.sampled_from(["HLT_mu26_ivarmedium_L1MU14FCH", "L1_EM22VHI", "HLT_e26_lhtight_ivarloose_L1EM22VHI",
                         "L1_J100", "HLT_x", "L1_", "HLT", "mu26", "HLT_a.b-c"])
WORDS = st.sampled_from(["and", "or", "not", "AND", "Not", "&", "&&", "|", "||", "!", "(", ")", " ", "\t", ",",
                         "\u00a0", "é", "\x00", ";", "'", "--", "1=1"])


@st.composite
def nested(draw):
    """Deep nests of parentheses or 'not', as a hostile or careless user may send them."""
    depth = draw(st.integers(0, 2500))
    name = draw(NAMES)
    if draw(st.booleans()):
        return "(" * depth + name + ")" * draw(st.integers(0, depth + 1))
    return "not " * depth + name


TEXTS = st.one_of(st.text(max_size=200), st.lists(st.one_of(NAMES, WORDS), max_size=40).map(" ".join),
                  st.lists(st.one_of(NAMES, WORDS), max_size=40).map("".join), nested())


@settings(max_examples=400, deadline=None)
@given(text=TEXTS)
def test_a_trigger_expression_parses_to_a_fixed_point_or_is_refused_as_bad_selection(text):
    try:
        tree = expression.parse(text)
    except BadSelection:
        return
    canonical = expression.canonical(tree)
    assert expression.canonical(expression.parse(canonical)) == canonical
    assert set(expression.names(tree)) == set(expression.names(expression.parse(canonical)))


@settings(max_examples=300, deadline=None)
@given(triggers=st.one_of(TEXTS, st.lists(TEXTS, max_size=4)))
def test_a_selection_of_any_trigger_text_is_built_or_refused_in_one_line(triggers):
    try:
        make_selection(triggers=triggers)
    except BadSelection as exc:
        assert "\n" not in str(exc).strip() or "\n" in str(triggers)


FIELD = st.one_of(st.text(max_size=20), st.sampled_from([
    "data18_13TeV", "mc16_13TeV", "00358031", "410470", "358031", "physics_Main", "PhPy8EG_A14_ttbar", "daq", "merge",
    "deriv", "recon", "RAW", "AOD", "DAOD_PHYS", "DAOD_", "f961_m1831", "e6337_s3126_r10201_p4172", "r", "_", "",
    "user.jdoe:", "data18_13TeV:", "physics_Main.", "..", "\u0660\u0661"]))


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(max_size=300), st.lists(FIELD, min_size=1, max_size=8).map(".".join)))
def test_a_dataset_name_parses_to_itself_or_is_refused_as_malformed(text):
    try:
        name = parse(text)
    except MalformedDatasetName:
        return
    assert parse(name.name).name == name.name


RANGE = st.one_of(st.text(max_size=40), st.integers(-2**70, 2**70).map(str),
                  st.tuples(st.integers(-2**70, 2**70), st.integers(-2**70, 2**70)).map(lambda t: f"{t[0]}-{t[1]}"))


@settings(max_examples=300, deadline=None)
@given(runs=st.lists(RANGE, max_size=3), lumi=st.lists(RANGE, max_size=3), bcid=st.lists(RANGE, max_size=3),
       period=st.lists(st.text(max_size=20), max_size=3))
def test_selection_ranges_and_periods_are_built_in_range_or_refused(runs, lumi, bcid, period):
    try:
        sel = make_selection(runs=runs, lumi_blocks=lumi, bcid=bcid, period=period)
    except BadSelection:
        return
    assert all(0 <= lo <= hi <= 2**32 - 1 for lo, hi in sel.runs + sel.lumi_blocks)
    assert all(0 <= lo <= hi <= 3563 for lo, hi in sel.bcids)


@settings(max_examples=300, deadline=None)
@given(ranges=st.lists(st.one_of(st.text(max_size=30), st.tuples(st.floats(), st.floats()),
                                 st.tuples(st.integers(), st.text(max_size=5))), max_size=3))
def test_histogram_ranges_are_checked_or_refused_naming_range(ranges):
    try:
        check_ranges(ranges, max(1, len(ranges)))
    except BadInput as exc:
        assert str(exc).startswith("range")


@pytest.mark.parametrize("text", ["not " * 900 + "HLT_x", "(" * 1900 + "HLT_x" + ")" * 1900])
def test_a_deep_nest_under_the_length_cap_is_refused_in_one_line(text):
    assert len(text) <= expression.MAX_LENGTH
    with pytest.raises(BadSelection, match="deeper than"):
        make_selection(triggers=[text])
    assert issubclass(BadSelection, EventIndexError)
