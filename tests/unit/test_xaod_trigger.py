"""Real trigger decisions of ATLAS xAOD files in the index: the masks of the records are the words of
``xTrigDecision`` bit for bit (a real Run 2 file and Run 3 RNTuple files written by tests/xaod_run3.py), the menus
the files carry are saved by SMK so that trigger names select, and a menu that contradicts the catalogue's is refused.

The ground truth is decoded here, independently of the producer: uproot reads the words and the menus, and bit ``b``
is ``(word[b >> 5] >> (b & 31)) & 1``.
"""

import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from eventindex import naming
from eventindex.catalog import open_catalog
from eventindex.catalog.loader import load_staged
from eventindex.catalog.selection import make_selection
from eventindex.errors import BadLoad, ValidationFailed
from eventindex.producer import index_file, produce
from eventindex.settings import Settings
from tests.conftest import upgraded
from tests.xaod_run3 import data_info, make_menu, renamed, reshuffled, write_run3

REAL = Path(__file__).resolve().parents[1] / "data" / "atlas" / "DAOD_PHYSLITE.run2-mc16.pool.root"
MC_NAME = ("mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYSLITE."
           "e6337_s3126_r10201_p4172")
RUN3_NAME = "data23_13p6TeV.00451587.physics_Main.merge.AOD.f1357_m2173"
WORDS = {"l1_tbp": "tbp", "l1_tap": "tap", "l1_tav": "tav", "hlt_passed": "efPassedPhysics",
         "hlt_prescaled": "efPrescaled", "hlt_resurrected": "efResurrected"}
KEYS = {"smk": "m_smk", "l1psk": "m_l1psk", "hltpsk": "m_hltpsk"}
# the real file's menu (SMK 2216): chains that fire in some of its 40 events, at counters below 1024, past 1024,
# past 2000 and past 4000 (4241 is the highest); items at CTP ids 11, 18 and 256 (the first bit of word 8)
REAL_CHAINS = ["HLT_e26_lhtight_nod0_ivarloose", "HLT_mu26_ivarmedium", "HLT_j150_L1J40", "HLT_xe110_pufit_L1XE55",
               "HLT_j30_xe60_razor100", "HLT_j30_xe60_razor220"]
REAL_ITEMS = ["L1_EM22VHI", "L1_MU20", "L1_MU11"]


# --- the independent decode -------------------------------------------------------------------------------------


@dataclass
class Truth:
    words: dict[str, np.ndarray]  # mask column -> (events, words) int64
    keys: dict[str, np.ndarray]  # smk, l1psk, hltpsk per event
    menus: dict[int, dict[str, tuple[str, int]]]  # smk -> name -> (level, bit)

    def fired(self, name: str) -> np.ndarray:
        """Events whose menu has ``name`` and whose L1 TAV / HLT passed word has its bit set."""
        out = np.zeros(len(self.keys["smk"]), bool)
        for smk, menu in self.menus.items():
            if name in menu:
                level, b = menu[name]
                words = self.words["l1_tav" if level == "L1" else "hlt_passed"]
                bit = (words[:, b >> 5] >> (b & 31)) & 1 if b >> 5 < words.shape[1] else 0
                out |= (self.keys["smk"] == smk) & (bit == 1)
        return out

    def passing(self, expression: str) -> np.ndarray:
        """Events passing an expression: names -> their fired arrays, and/or/not -> &, |, ~ (the same precedence)."""
        py = re.sub(r"\b(and|or|not)\b", lambda m: {"and": "&", "or": "|", "not": "~"}[m.group(1)],
                    re.sub(r"\b((?:L1|HLT)_[A-Za-z0-9_.\-]+)", r'F("\1")', expression))
        return np.asarray(eval(py, {"F": self.fired}), bool)

    def count(self, *expressions: str) -> int:
        """Events passing all ``expressions`` (as a selection ANDs its trigger expressions)."""
        return int(np.sum(np.logical_and.reduce([self.passing(e) for e in expressions])))


def _stack(arrays) -> np.ndarray:
    rows = [np.asarray(a, np.int64) for a in ak.to_list(arrays)]
    width = max(len(r) for r in rows)
    return np.array([np.pad(r, (0, width - len(r))) for r in rows], np.int64)


def read_truth(*paths: Path) -> Truth:
    words: dict[str, list] = {c: [] for c in WORDS}
    keys: dict[str, list] = {k: [] for k in KEYS}
    menus: dict[int, dict[str, tuple[str, int]]] = {}
    for path in paths:
        with uproot.open(path) as h:
            if "CollectionTree" in h:  # Run 2: TTree, menus in TriggerMenuAux
                t, p, q = h["CollectionTree"], "xTrigDecisionAux./xTrigDecisionAux.", "TriggerMenuAux./TriggerMenuAux."
                raw = {c: t[p + w].array(library="ak") for c, w in WORDS.items()}
                conf = t["TrigConfKeys"].array(library="ak")
                m = h["MetaData"].arrays([q + x for x in ("smk", "chainIds", "chainNames", "itemCtpIds",
                                                          "itemNames")], library="ak")
                for i, smk in enumerate(m[q + "smk"][0].tolist()):
                    menus[smk] = {**{n: ("L1", c) for n, c in zip(m[q + "itemNames"][0][i].tolist(),
                                                                  m[q + "itemCtpIds"][0][i].tolist())},
                                  **{n: ("HLT", c) for n, c in zip(m[q + "chainNames"][0][i].tolist(),
                                                                   m[q + "chainIds"][0][i].tolist())}}
            else:  # Run 3: RNTuple, menus as JSON
                e = h["EventData"]
                raw = {c: e.arrays([f"xTrigDecisionAux:{w}"])[f"xTrigDecisionAux:{w}"] for c, w in WORDS.items()}
                conf = e.arrays(["TrigConfKeys"])["TrigConfKeys"]
                m = h["MetaData"].arrays()[0]
                for level, kind, field in (("HLT", "chains", "counter"), ("L1", "items", "ctpid")):
                    for smk, payload in zip(m[f"TriggerMenuJson_{level}Aux:key"].tolist(),
                                            m[f"TriggerMenuJson_{level}Aux:payload"].tolist()):
                        found = json.loads(payload)[kind]
                        menus.setdefault(smk, {}).update({n: (level, v[field]) for n, v in found.items()})
        for c in WORDS:
            words[c].append(_stack(raw[c]))
        for k, f in KEYS.items():
            keys[k].append(np.asarray(conf[f], np.int64))
    width = {c: max(w.shape[1] for w in ws) for c, ws in words.items()}
    return Truth({c: np.concatenate([np.pad(w, ((0, 0), (0, width[c] - w.shape[1]))) for w in ws])
                  for c, ws in words.items()}, {k: np.concatenate(v) for k, v in keys.items()}, menus)


def assert_masks_are_the_words(table, truth: Truth) -> None:
    """All six masks equal the words bit for bit (bits past the mask's width must be zero in the words), their
    widths are as promised, and the menu keys are TrigConfKeys."""
    highest = max(b for menu in truth.menus.values() for level, b in menu.values() if level == "HLT")
    for column, words in truth.words.items():
        width = table.schema.field(column).type.byte_width
        if column.startswith("l1_"):
            assert width == 64, column
        else:
            assert width % 8 == 0 and width >= 128 and 8 * width > highest, (column, width, highest)
        assert table.column(column).null_count == 0, column
        masks = np.frombuffer(b"".join(table.column(column).to_pylist()), np.uint8).reshape(table.num_rows, width)
        nbits = max(8 * width, 32 * words.shape[1])
        b = np.arange(nbits)
        got = np.where(b < 8 * width, (masks.astype(np.int64)[:, np.minimum(b >> 3, width - 1)] >> (b & 7)) & 1, 0)
        want = np.where(b >> 5 < words.shape[1], (words[:, np.minimum(b >> 5, words.shape[1] - 1)] >> (b & 31)) & 1,
                        0)
        bad = np.argwhere(got != want)
        assert len(bad) == 0, f"{column}: {len(bad)} bits differ, first event {bad[0][0]} bit {bad[0][1]} " \
                              f"(record {got[tuple(bad[0])]}, file {want[tuple(bad[0])]})"
        assert want.sum() > 0 or column in ("hlt_prescaled", "hlt_resurrected"), f"{column}: no bit set in the file"
    for key in KEYS:
        assert np.array_equal(table.column(key).to_numpy().astype(np.int64), truth.keys[key]), key


# --- catalogues shared by a module --------------------------------------------------------------------------------


def _loaded_home(home: Path, datasets: dict[str, list[Path]]) -> Path:
    """An EVENTINDEX_HOME whose catalogue has ``datasets`` produced and loaded."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVENTINDEX_HOME", str(home))
        upgraded(Settings.from_env().metadata_url)
        for name, paths in datasets.items():
            produce(name, [str(p) for p in paths], str(home / "staging"))
        load_staged(open_catalog(), str(home / "staging"))
    return home


def _catalog(home: Path, monkeypatch):
    monkeypatch.setenv("EVENTINDEX_HOME", str(home))
    return open_catalog()


@pytest.fixture(scope="module")
def run2_home(tmp_path_factory):
    return _loaded_home(tmp_path_factory.mktemp("run2-home"), {MC_NAME: [REAL]})


@pytest.fixture(scope="module")
def run3_file(tmp_path_factory):
    """One Run 3 file of 400 events taken with two menus (SMK 3101 for the first 240, then 3102): the same 2,500
    chain names at other counters (1..2500), the same 400 items at other CTP ids."""
    a = make_menu(3101, seed=31)
    b = reshuffled(a, 3102, seed=32)
    path = tmp_path_factory.mktemp("run3") / "AOD.36000001._000001.pool.root.1"
    smks = np.where(np.arange(400) < 240, a.smk, b.smk)
    write_run3(path, str(uuid.uuid4()).upper(), data_info(400, 451587), [a, b], smks, seed=33)
    return path, a, b


@pytest.fixture(scope="module")
def run3_home(run3_file, tmp_path_factory):
    return _loaded_home(tmp_path_factory.mktemp("run3-home"), {RUN3_NAME: [run3_file[0]]})


def _check_catalogue(catalog, name: str, truth: Truth, chains: list[str], items: list[str]) -> None:
    """Counts per chain and item, expressions and an overlap matrix, against the truth."""
    n = len(truth.keys["smk"])
    assert catalog.count(make_selection(dataset=name)) == n
    for trigger in chains + items:
        want = int(truth.fired(trigger).sum())
        assert 0 < want < n, f"{trigger} fires in {want} of {n} events: pick another"
        assert catalog.count(make_selection(dataset=name, triggers=[trigger])) == want, trigger
    (h1, h2, h3), (l1, l2) = chains[-3:], items[:2]
    expressions = [[f"{h1} or {h2}"], [f"not {l1}"], [f"({h1} or {l2}) and not {h3}"],
                   [f"{h2} or not {l1}", l2], [f"not ({h1} or {h2} or {h3})"], [f"{h3} and not {h3}"]]
    for triggers in expressions:
        assert catalog.count(make_selection(dataset=name, triggers=triggers)) == truth.count(*triggers), triggers
    names = [chains[0], h1, h3, l1, l2]
    labels, matrix = catalog.overlaps(make_selection(dataset=name), triggers=names)
    assert sorted(labels) == sorted(names)
    fired = {t: truth.fired(t) for t in names}
    want = np.array([[int(np.sum(fired[a] & fired[b])) for b in labels] for a in labels])
    assert np.array_equal(np.asarray(matrix), want), (labels, matrix, want)


# --- the real Run 2 file ----------------------------------------------------------------------------------------


def test_independent_decode_of_the_real_file_finds_its_menu_and_decisions():
    truth = read_truth(REAL)
    assert set(truth.keys["smk"].tolist()) == {2216} and set(truth.menus) == {2216}
    menu = truth.menus[2216]
    assert max(b for level, b in menu.values() if level == "HLT") == 4241
    assert [menu[c][1] for c in REAL_CHAINS] == [234, 1397, 1048, 2001, 4237, 4241]
    assert [menu[i][1] for i in REAL_ITEMS] == [11, 18, 256]
    assert [int(truth.fired(c).sum()) for c in REAL_CHAINS + REAL_ITEMS] == [7, 9, 2, 2, 6, 1, 12, 15, 20]


def test_real_run2_records_carry_the_trigger_words_bit_for_bit():
    table = index_file(REAL, naming.parse(MC_NAME)).table
    truth = read_truth(REAL)
    assert table.num_rows == 40
    assert_masks_are_the_words(table, truth)
    assert json.loads(table.schema.metadata[b"eventindex.menus"])  # the file's menu goes with its records


def test_real_run2_file_in_the_catalogue_selects_by_trigger_name(run2_home, monkeypatch):
    catalog = _catalog(run2_home, monkeypatch)
    assert 2216 in catalog.menus()
    _check_catalogue(catalog, MC_NAME, read_truth(REAL), REAL_CHAINS, REAL_ITEMS)


# --- Run 3: RNTuple, two menus in one file ---------------------------------------------------------------------


def _run3_picks(truth: Truth, a, b) -> tuple[list[str], list[str]]:
    """Chains past counter 2000 in either menu at different counters in the two, firing in some events only; and
    items at different CTP ids."""
    n = len(truth.keys["smk"])

    def partial(t):
        return 0 < truth.fired(t).sum() < n

    chains = sorted(c for c in a.chains if a.chains[c] != b.chains[c] and max(a.chains[c], b.chains[c]) > 2000
                    and partial(c))
    picks = [next(c for c in chains if a.chains[c] > 2000), next(c for c in chains if b.chains[c] > 2000)]
    picks += [c for c in chains if c not in picks][:3]
    items = sorted(i for i in a.items if a.items[i] != b.items[i] and partial(i))[:3]
    return picks, items


def test_run3_records_carry_the_trigger_words_of_both_menus_bit_for_bit(run3_file):
    path, a, b = run3_file
    truth = read_truth(path)
    assert set(truth.menus) == {3101, 3102} and max(b for _, b in truth.menus[3102].values()) == 2500
    assert np.array_equal(truth.keys["smk"], np.where(np.arange(400) < 240, 3101, 3102))
    table = index_file(path, naming.parse(RUN3_NAME)).table
    assert_masks_are_the_words(table, truth)
    menus = json.loads(table.schema.metadata[b"eventindex.menus"])
    assert len(menus) == 2


def test_run3_file_with_two_menus_in_the_catalogue_selects_by_trigger_name(run3_file, run3_home, monkeypatch):
    path, a, b = run3_file
    truth = read_truth(path)
    chains, items = _run3_picks(truth, a, b)
    catalog = _catalog(run3_home, monkeypatch)
    assert {3101, 3102} <= set(catalog.menus())
    _check_catalogue(catalog, RUN3_NAME, truth, chains, items)


def test_run3_dataset_of_two_files_whose_menus_need_different_mask_widths(tmp_path, monkeypatch):
    """File 1 holds SMK 3301 (counters up to 2500); file 2 also holds SMK 3302, 400 chains more (up to 2900)."""
    a = make_menu(3301, seed=41)
    c = reshuffled(a, 3302, seed=42, extra=400)
    files = [tmp_path / "AOD.36000002._000001.pool.root.1", tmp_path / "AOD.36000002._000002.pool.root.1"]
    name = RUN3_NAME.replace("00451587", "00451590")
    write_run3(files[0], str(uuid.uuid4()).upper(), data_info(150, 451590, seed=1), [a], seed=43)
    write_run3(files[1], str(uuid.uuid4()).upper(), data_info(150, 451590, seed=2), [a, c],
               np.where(np.arange(150) < 50, a.smk, c.smk), seed=44)
    truth = read_truth(*files)
    assert max(b for _, b in truth.menus[3302].values()) == 2900
    home = _loaded_home(tmp_path / "home", {name: files})
    catalog = _catalog(home, monkeypatch)
    new = [n for n in c.chains if n not in a.chains and 0 < truth.fired(n).sum()][:3]
    old = [n for n in a.chains if max(a.chains[n], c.chains[n]) > 2000 and 0 < truth.fired(n).sum() < 300][:3]
    assert len(new) == len(old) == 3
    for trigger in new + old:
        assert catalog.count(make_selection(dataset=name, triggers=[trigger])) == truth.fired(trigger).sum(), trigger
    assert catalog.count(make_selection(dataset=name, triggers=[f"{new[0]} or not {old[0]}"])) == \
        truth.count(f"{new[0]} or not {old[0]}")


# --- a menu that contradicts the catalogue's ------------------------------------------------------------------


def test_same_smk_with_another_menu_is_refused_naming_the_smk_and_the_first_differing_name(tmp_path, metadata_home):
    menu = make_menu(3201, seed=51)
    first = RUN3_NAME.replace("00451587", "00451591")
    second = RUN3_NAME.replace("00451587", "00451592")
    paths = {first: tmp_path / "AOD.36000003._000001.pool.root.1",
             second: tmp_path / "AOD.36000004._000001.pool.root.1"}
    write_run3(paths[first], str(uuid.uuid4()).upper(), data_info(120, 451591), [menu], seed=52)
    truth = read_truth(paths[first])
    old = sorted(n for n in menu.chains if 0 < truth.fired(n).sum() < 120 and menu.chains[n] > 2000)[0]
    new = "HLT_e26_lhtight_ivarloose_renamed_L1EM22VHI"
    write_run3(paths[second], str(uuid.uuid4()).upper(), data_info(120, 451592), [renamed(menu, old, new)], seed=53)
    for name, path in paths.items():
        produce(name, [str(path)], str(tmp_path / name.split(".")[1]))
    catalog = open_catalog()
    load_staged(catalog, str(tmp_path / "00451591"))
    before = {t: catalog.count(make_selection(dataset=first, triggers=[t])) for t in (old, f"not {old}")}
    assert before == {old: truth.count(old), f"not {old}": truth.count(f"not {old}")}
    with pytest.raises(BadLoad) as err:  # the catalogue itself refuses the records
        catalog.load(second, [str(p) for p in (tmp_path / "00451592" / second).glob("*.parquet")])
    with pytest.raises((BadLoad, ValidationFailed)) as checked:  # and so does the check before a load
        load_staged(catalog, str(tmp_path / "00451592"))
    for message in (str(err.value), str(checked.value)):
        assert "SMK 3201" in message and (old in message or new in message), message
    catalog = open_catalog()
    assert second not in [d["name"] for d in catalog.datasets(include_obsolete=True)]
    assert catalog.menus()[3201].locate(old)[0] == "HLT"
    assert {t: catalog.count(make_selection(dataset=first, triggers=[t])) for t in before} == before
    # the same SMK with the same menu (another dataset of the run) is no conflict
    third = RUN3_NAME.replace("00451587", "00451593")
    path = tmp_path / "AOD.36000005._000001.pool.root.1"
    write_run3(path, str(uuid.uuid4()).upper(), data_info(80, 451593), [menu], seed=54)
    produce(third, [str(path)], str(tmp_path / "00451593"))
    load_staged(catalog, str(tmp_path / "00451593"))
    assert catalog.count(make_selection(dataset=third, triggers=[old])) == read_truth(path).count(old)


# --- the command line ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which, name, smks", [("run2_home", MC_NAME, [2216]), ("run3_home", RUN3_NAME, [3101, 3102])])
def test_cli_show_reports_the_smks_of_a_dataset(request, which, name, smks):
    home = request.getfixturevalue(which)
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "show", name, "--json"], capture_output=True,
                          text=True, env={**os.environ, "EVENTINDEX_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert sorted(shown["smks"]) == smks
    assert shown["trigger_information"] is True and shown["menu_missing"] == []
