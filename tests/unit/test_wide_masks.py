"""HLT masks as wide as a menu needs: the width per dataset, parts of different widths combined, skims of wide masks.

Ground truth is the real file's xTrigDecision words read with uproot, compared bit for bit."""

import numpy as np
import pyarrow as pa
import pytest
import uproot

from eventindex import naming
from eventindex.catalog.records import as_table
from eventindex.producer import index_file, produce
from eventindex.schema import HLT_BITS, HLT_MASKS, hlt_width

from tests.unit.test_xaod import MC_NAME, REAL

WORDS = {"hlt_passed": "efPassedPhysics", "hlt_prescaled": "efPrescaled", "hlt_resurrected": "efResurrected"}


def _file_words(attr: str) -> list[np.ndarray]:
    with uproot.open(REAL) as f:
        return list(f["CollectionTree"][f"xTrigDecisionAux./xTrigDecisionAux.{attr}"].array(library="np"))


def _bits_of_words(words: np.ndarray) -> set[int]:
    return {32 * i + b for i, w in enumerate(words) for b in range(32) if (int(w) >> b) & 1}


def _bits_of_bytes(mask: bytes) -> set[int]:
    return {8 * i + b for i, byte in enumerate(mask) for b in range(8) if (byte >> b) & 1}


@pytest.mark.parametrize("max_bit, nbytes", [(-1, 128), (0, 128), (1023, 128), (1024, 136), (4241, 536),
                                             (65535, 8192)])
def test_the_hlt_width_is_the_least_multiple_of_64_bits_from_1024_that_holds_the_bit(max_bit, nbytes):
    assert hlt_width(max_bit) == nbytes


def test_a_bit_past_the_widest_mask_is_refused():
    with pytest.raises(ValueError, match="65536"):
        hlt_width(65536)


def test_the_real_file_gets_the_width_its_menu_needs_and_every_bit_of_its_words():
    table = index_file(REAL, naming.parse(MC_NAME)).table
    assert all(table.schema.field(m).type.byte_width == hlt_width(4241) for m in HLT_MASKS)
    for column, attr in WORDS.items():
        for mask, words in zip(table.column(column).to_pylist(), _file_words(attr)):
            assert _bits_of_bytes(mask) == _bits_of_words(words)


def test_parts_of_different_widths_load_as_one_table_with_every_bit_kept():
    wide = index_file(REAL, naming.parse(MC_NAME)).table
    # a part of the default width: the real records' first 1024 bits (what a narrower menu would have written)
    cut = wide.slice(0, 10)
    for name in HLT_MASKS:
        i = cut.schema.get_field_index(name)
        data = np.array([np.frombuffer(m, np.uint8)[:HLT_BITS // 8] for m in cut.column(name).to_pylist()])
        cut = cut.set_column(i, pa.field(name, pa.binary(HLT_BITS // 8), nullable=False),
                             pa.FixedSizeBinaryArray.from_buffers(pa.binary(HLT_BITS // 8), 10,
                                                                  [None, pa.py_buffer(data.tobytes())]))
    combined = as_table([cut, wide.slice(10)])
    assert combined.num_rows == 40 and combined.schema.field("hlt_passed").type == wide.schema.field("hlt_passed").type
    words = _file_words("efPassedPhysics")
    for row, mask in enumerate(combined.column("hlt_passed").to_pylist()):
        expected = _bits_of_words(words[row])
        assert _bits_of_bytes(mask) == ({b for b in expected if b < HLT_BITS} if row < 10 else expected)


def test_a_skim_of_wide_masks_writes_every_word(tmp_path, metadata_home):
    from eventindex.catalog import open_catalog
    from eventindex.catalog.loader import load_staged
    from eventindex.catalog.selection import make_selection
    from eventindex.tag.skim import skim

    produce(MC_NAME, [str(REAL)], str(tmp_path / "staging"))
    catalog = open_catalog()
    load_staged(catalog, str(tmp_path / "staging"))
    out = tmp_path / "skim.root"
    result = skim(catalog, make_selection(dataset=MC_NAME), ["event_number", "hlt_passed"], output=str(out))
    assert result.events == 40
    with uproot.open(out) as f:
        got = f["events"].arrays(["event_number", "hlt_passed"], library="np")
    with uproot.open(REAL) as f:
        events = f["CollectionTree"]["EventInfoAux./EventInfoAux.eventNumber"].array(library="np")
    words = dict(zip(events.tolist(), _file_words("efPassedPhysics")))
    for event, mask in zip(got["event_number"].tolist(), got["hlt_passed"]):
        assert _bits_of_bytes(np.asarray(mask, "<u8").tobytes()) == _bits_of_words(words[event])


@pytest.mark.parametrize("counter", [-1, 65536, 10**9])
def test_a_menu_with_a_chain_counter_outside_the_widest_mask_is_one_producer_error(tmp_path, counter):
    import json
    import uuid

    import awkward as ak

    from eventindex.errors import ProducerError
    from tests.xaod_run3 import data_info, make_menu, write_run3

    good, bad = tmp_path / "good.root", tmp_path / "AOD.36000001._000001.pool.root.1"
    write_run3(good, str(uuid.uuid4()).upper(), data_info(10, 451587), [make_menu(3201, seed=1)])
    with uproot.open(good) as f:
        events, meta = f["EventData"].arrays(), f["MetaData"].arrays()
        params = f["##Params"]["db_string"].array(library="np")
    menu = json.loads(meta["TriggerMenuJson_HLTAux:payload"][0][0])
    menu["chains"][next(iter(menu["chains"]))]["counter"] = counter
    with uproot.recreate(bad) as out:
        out.mkrntuple("EventData", events)
        out.mkrntuple("MetaData", ak.Array({"TriggerMenuJson_HLTAux:key": meta["TriggerMenuJson_HLTAux:key"],
                                            "TriggerMenuJson_HLTAux:payload": [[json.dumps(menu)]]}))
        out.mktree("##Params", {"db_string": "string"})
        out["##Params"].extend({"db_string": params})
    with pytest.raises(ProducerError) as err:
        index_file(bad, naming.parse("data23_13p6TeV.00451587.physics_Main.merge.AOD.f1357_m2173"))
    assert str(err.value).count("\n") == 0 and bad.name in str(err.value) and f"counter {counter}" in str(err.value)
    assert "SMK 3201" in str(err.value)
