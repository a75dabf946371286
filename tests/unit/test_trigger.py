import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventindex.errors import UnknownTrigger
from eventindex.schema import HLT_BITS, L1_BITS
from eventindex.sim.triggers import build_menu
from eventindex.trigger import (
    TriggerMenu, bit_is_set, decode_masks, encode_masks, masks_from_arrow, masks_to_arrow, unpack_bits,
)

MENU, _ = build_menu(2757, 0)
LATER_MENU, _ = build_menu(2781, 1)
L1_NAMES = [n for n in MENU.l1_items if n]
HLT_NAMES = [n for n in MENU.hlt_chains if n]


def test_menu_has_several_hundred_items_named_like_atlas():
    assert len(L1_NAMES) >= 200 and len(HLT_NAMES) >= 400
    for name in ("L1_EM22VHI", "L1_MU14FCH", "L1_J100", "L1_XE50", "HLT_e26_lhtight_ivarloose_L1EM22VHI",
                 "HLT_mu26_ivarmedium_L1MU14FCH", "HLT_j420_L1J100", "HLT_xe110_pufit_L1XE50"):
        assert name in MENU.names
    assert all(MENU.hlt_seeds[c] in L1_NAMES for c in HLT_NAMES)


events_l1 = st.lists(st.lists(st.sampled_from(L1_NAMES), max_size=40), min_size=1, max_size=50)
events_hlt = st.lists(st.lists(st.sampled_from(HLT_NAMES), max_size=40), min_size=1, max_size=50)


@settings(max_examples=60, deadline=None)
@given(events_l1)
def test_l1_encode_then_decode_gives_the_names_back(events):
    masks = encode_masks(events, MENU.l1_items, L1_BITS)
    assert masks.shape == (len(events), L1_BITS // 8)
    decoded = decode_masks(masks, MENU.l1_items)
    assert [set(d) for d in decoded] == [set(e) for e in events]
    bit = {n: i for i, n in enumerate(MENU.l1_items)}
    assert all(d == sorted(d, key=bit.get) for d in decoded)  # bit order


@settings(max_examples=60, deadline=None)
@given(events_hlt)
def test_hlt_masks_survive_arrow_round_trip(events):
    masks = encode_masks(events, MENU.hlt_chains, HLT_BITS)
    arrow = masks_to_arrow(masks)
    back = masks_from_arrow(arrow)
    assert np.array_equal(back, masks)
    assert [set(d) for d in decode_masks(back, MENU.hlt_chains)] == [set(e) for e in events]


@settings(max_examples=40, deadline=None)
@given(events_hlt, st.sampled_from(HLT_NAMES))
def test_bit_is_set_agrees_with_the_decoded_names(events, name):
    masks = encode_masks(events, MENU.hlt_chains, HLT_BITS)
    level, bit = MENU.locate(name)
    assert level == "HLT"
    assert list(bit_is_set(masks, bit)) == [name in e for e in events]


def test_single_event_encode_matches_vectorized_encode():
    names = ["L1_EM22VHI", "HLT_e26_lhtight_ivarloose_L1EM22VHI", "L1_MU14FCH"]
    one = MENU.encode(names)
    many_l1 = encode_masks([["L1_EM22VHI", "L1_MU14FCH"]], MENU.l1_items, L1_BITS)
    assert one["L1"] == many_l1[0].tobytes()
    assert decode_masks(np.frombuffer(one["HLT"], np.uint8)[None, :], MENU.hlt_chains) == [
        ["HLT_e26_lhtight_ivarloose_L1EM22VHI"]]


def test_the_same_name_sits_at_different_bits_in_two_menus():
    moved = [n for n in L1_NAMES if n in LATER_MENU.names and MENU.locate(n) != LATER_MENU.locate(n)]
    assert moved, "the later menu should move some items"
    name = moved[0]
    mask = encode_masks([[name]], MENU.l1_items, L1_BITS)
    assert decode_masks(mask, LATER_MENU.l1_items) != [[name]]


def test_unknown_trigger_names_list_close_matches():
    with pytest.raises(UnknownTrigger) as exc:
        MENU.locate("HLT_e26_lhtight_ivarlose_L1EM22VHI")
    assert "HLT_e26_lhtight_ivarloose_L1EM22VHI" in str(exc.value)
    assert "2757" in str(exc.value)
    with pytest.raises(UnknownTrigger):
        encode_masks([["L1_NOPE"]], MENU.l1_items, L1_BITS)


def test_menus_round_trip_through_json():
    assert TriggerMenu.from_json(MENU.to_json()) == MENU


def test_unpack_of_empty_mask_has_no_bits():
    assert not unpack_bits(np.zeros((3, 64), np.uint8)).any()
    assert decode_masks(np.zeros((3, 64), np.uint8), MENU.l1_items) == [[], [], []]
