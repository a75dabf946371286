"""Event-level selections of the embedded store: trigger expressions (and, or, not), BCID and time cuts, overlaps
within a cut, row groups skipped by their statistics, and a store written before the trigger index.

Expected values come from the small world's ROOT files read with uproot, each event's trigger decisions decoded
here through the menu of its own SMK, and the expressions written out as numpy boolean algebra in this file;
never from the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import uproot

from eventindex import metadata
from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.errors import BadSelection
from eventindex.schema import record_schema
from eventindex.trigger import bit_is_set, load_menus
from tests.conftest import upgraded

MU, EL, XE = "HLT_mu26_ivarmedium_L1MU14FCH", "HLT_e26_lhtight_ivarloose_L1EM22VHI", "HLT_xe35_tcpufit_L1XE50"
L1_MU, L1_EM = "L1_MU14FCH", "L1_EM22VHI"
# each expression with the same logic written as numpy on the decoded decisions
EXPRESSIONS = {
    f"{MU} or {EL}": lambda p: p[MU] | p[EL],
    f"not {MU}": lambda p: ~p[MU],
    f"{L1_MU} and not {MU}": lambda p: p[L1_MU] & ~p[MU],
    f"({XE} | {EL}) & !{L1_EM}": lambda p: (p[XE] | p[EL]) & ~p[L1_EM],
    f"not ({MU} or {EL}) and {L1_MU}": lambda p: ~(p[MU] | p[EL]) & p[L1_MU],
}
BRANCHES = ["run_number", "event_number", "lumi_block", "bcid", "timestamp", "smk", "l1_tav", "hlt_passed"]


@pytest.fixture(scope="module")
def world(staged_world, tmp_path_factory):
    """The small world loaded into a catalogue of its own, and the RAW physics_Main events read from the ROOT
    files with each trigger's decision: (world folder, catalogue root, metadata URL, events)."""
    world, out, staging = staged_world
    root = tmp_path_factory.mktemp("selection-store")
    url = upgraded(f"sqlite:///{root / 'metadata.sqlite'}")
    catalog = EmbeddedCatalog(root / "catalog", url)
    menus = load_menus(out / "menus.json")[0]
    catalog.save_menus(menus.values())
    load_staged(catalog, str(staging))
    parts = []
    for d in world["datasets"]:
        if d["datatype"] == "RAW" and d.get("stream") == "physics_Main":
            for f in d["files"]:
                with uproot.open(out / f["path"]) as h:
                    parts.append(h["events"].arrays(BRANCHES, library="np"))
    ev = {b: np.concatenate([p[b] for p in parts]) for b in BRANCHES}
    masks = {"L1": np.stack(ev.pop("l1_tav")).view(np.uint8).reshape(len(ev["smk"]), -1),
             "HLT": np.stack(ev.pop("hlt_passed")).view(np.uint8).reshape(len(ev["smk"]), -1)}
    passed = _Decisions(ev["smk"], masks, menus)
    for name in (MU, EL, XE, L1_MU, L1_EM):
        assert 0 < passed[name].sum() < len(passed[name]), f"{name} must pass some events and fail others"
    return out, root, url, ev, passed


class _Decisions(dict):
    """name -> whether each event passed it, decoded on first use through the menu of the event's own SMK."""

    def __init__(self, smk, masks, menus):
        super().__init__()
        self.smk, self.masks, self.menus = smk, masks, menus

    def __missing__(self, name):
        out = np.zeros(len(self.smk), bool)
        for smk in np.unique(self.smk):
            rows = self.smk == smk
            level, bit = self.menus[int(smk)].locate(name)
            out[rows] = bit_is_set(self.masks[level][rows], bit)
        self[name] = out
        return out


def _catalog(world):
    return EmbeddedCatalog(world[1] / "catalog", world[2])


def _pairs(catalog, sel) -> set[tuple[int, int]]:
    out = set()
    for b in catalog.select(sel, ["run_number", "event_number"]):
        out.update(zip(b.column(0).to_pylist(), b.column(1).to_pylist()))
    return out


def _truth_pairs(ev, keep) -> set[tuple[int, int]]:
    return set(zip(ev["run_number"][keep].tolist(), ev["event_number"][keep].tolist()))


RAW_MAIN = {"datatype": "RAW", "stream": "physics_Main"}


@pytest.mark.parametrize("text", list(EXPRESSIONS))
def test_trigger_expressions_count_and_select_the_events_the_root_files_hold(world, text):
    _, _, _, ev, passed = world
    catalog = _catalog(world)
    keep = EXPRESSIONS[text](passed)
    assert catalog.count(make_selection(**RAW_MAIN, triggers=[text])) == int(keep.sum())
    in_lumi = keep & (ev["lumi_block"] >= 5) & (ev["lumi_block"] <= 12)
    sel = make_selection(**RAW_MAIN, triggers=[text], lumi_blocks=["5-12"])
    assert catalog.count(sel) == int(in_lumi.sum())
    assert _pairs(catalog, sel) == _truth_pairs(ev, in_lumi)


def test_expressions_and_names_given_together_must_all_hold(world):
    _, _, _, ev, passed = world
    sel = make_selection(**RAW_MAIN, triggers=[f"{MU} or {EL}", L1_EM])
    assert _catalog(world).count(sel) == int(((passed[MU] | passed[EL]) & passed[L1_EM]).sum())


def test_bcid_and_time_cuts_select_the_events_the_root_files_hold(world):
    _, _, _, ev, passed = world
    catalog = _catalog(world)
    keep = ((ev["bcid"] >= 100) & (ev["bcid"] <= 900)) | ((ev["bcid"] >= 2000) & (ev["bcid"] <= 2100))
    sel = make_selection(**RAW_MAIN, bcid=["100-900", "2000-2100"])
    assert catalog.count(sel) == int(keep.sum())
    assert _pairs(catalog, sel) == _truth_pairs(ev, keep)
    lo, hi = (int(x) for x in np.percentile(ev["timestamp"], [30, 60]))
    in_time = (ev["timestamp"] >= lo) & (ev["timestamp"] <= hi)
    sel = make_selection(**RAW_MAIN, time_range=(lo, hi), triggers=[f"not {MU}"])
    assert catalog.count(sel) == int((in_time & ~passed[MU]).sum())
    assert _pairs(catalog, sel) == _truth_pairs(ev, in_time & ~passed[MU])


def test_overlaps_within_a_cut_equal_the_pairwise_counts_of_the_root_files(world):
    _, _, _, ev, passed = world
    names = [MU, EL, XE, L1_MU, L1_EM]
    cut = (ev["lumi_block"] <= 20) & (ev["bcid"] >= 500)
    sel = make_selection(**RAW_MAIN, lumi_blocks=["1-20"], bcid=["500-3563"])
    labels, matrix = _catalog(world).overlaps(sel, triggers=names)
    expected = [[int((cut & passed[a] & passed[b]).sum()) for b in names] for a in names]
    assert labels == names and matrix.tolist() == expected
    labels, matrix = _catalog(world).overlaps(make_selection(**RAW_MAIN), triggers=names)
    assert matrix.tolist() == [[int((passed[a] & passed[b]).sum()) for b in names] for a in names]


def test_overlaps_of_more_triggers_than_signatures_can_hold_equal_the_root_files(world):
    _, _, _, ev, passed = world
    menu = passed.menus[int(ev["smk"][0])]
    names = [n for n in menu.names if n.startswith("HLT_")][:24]  # 24 > 20: pattern by pattern, not by signature
    _, matrix = _catalog(world).overlaps(make_selection(**RAW_MAIN, lumi_blocks=["3-25"]), triggers=names)
    cut = (ev["lumi_block"] >= 3) & (ev["lumi_block"] <= 25)
    assert matrix.tolist() == [[int((cut & passed[a] & passed[b]).sum()) for b in names] for a in names]
    assert matrix.sum() > 0


def test_the_cli_takes_expressions_and_bcid_ranges(world):
    out, root, url, ev, passed = world
    home = root / "cli-home"
    home.mkdir(exist_ok=True)
    (home / "catalog").symlink_to(root / "catalog") if not (home / "catalog").exists() else None
    (home / "metadata.sqlite").symlink_to(root / "metadata.sqlite") if not (home / "metadata.sqlite").exists() \
        else None
    env = {**os.environ, "EVENTINDEX_HOME": str(home)}
    r = subprocess.run([sys.executable, "-m", "eventindex.cli", "count", "--type", "RAW", "--stream", "physics_Main",
                        "--trigger", f"{MU} or not {L1_EM}", "--bcid", "1-1800", "--json"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    keep = (passed[MU] | ~passed[L1_EM]) & (ev["bcid"] >= 1) & (ev["bcid"] <= 1800)
    assert json.loads(r.stdout)["count"] == int(keep.sum())
    r = subprocess.run([sys.executable, "-m", "eventindex.cli", "count", "--type", "RAW",
                        "--trigger", f"{MU} or (", "--json"], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "expected a trigger name" in r.stderr and "position" in r.stderr


@pytest.mark.parametrize("text, words", [
    ("HLT_a or", "expected a trigger name, 'not' or '(' at position 8"),
    ("(HLT_a and L1_b", "expected ')'"),
    ("HLT_a L1_b", "expected 'and', 'or' or the end at position 6"),
    ("HLT_a or muon26", "'muon26' is not an L1_ item or HLT_ chain name"),
    ("HLT_a or $", "unexpected '$'"),
])
def test_a_bad_expression_is_refused_naming_what_is_wrong_and_where(text, words):
    with pytest.raises(BadSelection, match=None) as exc:
        make_selection(triggers=[text])
    assert words in str(exc.value)


def test_a_bcid_beyond_an_orbit_is_refused():
    with pytest.raises(BadSelection, match=r"BCID 4000 is out of range \(0..3563\)"):
        make_selection(bcid="3000-4000")


def _timed_table(n: int, start: int) -> pa.Table:
    """``n`` RAW records of one run without trigger information, one second apart."""
    schema = record_schema(["RAW"])
    guids = np.frombuffer(bytes(range(16)) * 3, np.uint8).reshape(3, 16).copy()
    guids[:, 0] = [1, 2, 3]
    cols = {"run_number": np.full(n, 350000, np.uint32), "event_number": np.arange(1, n + 1, dtype=np.uint64),
            "lumi_block": (np.arange(n) // 1000 + 1).astype(np.uint32), "bcid": (np.arange(n) % 3564).astype(np.uint16),
            "timestamp": (start + np.arange(n)).astype(np.uint32), "timestamp_ns": np.zeros(n, np.uint32),
            "smk": np.full(n, 0, np.uint32), "l1psk": np.zeros(n, np.uint32), "hltpsk": np.zeros(n, np.uint32),
            "RAW_oid": np.arange(n, dtype=np.uint64) % 100_000}
    arrays = []
    for f in schema:
        if f.name in cols:
            arrays.append(pa.array(cols[f.name], f.type))
        elif f.name == "stream":
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), pa.array(["physics_Main"])))
        elif f.name == "RAW_guid":
            arrays.append(pa.array(list(map(bytes, guids[np.arange(n) // 100_000])), f.type))
        elif pa.types.is_fixed_size_binary(f.type):
            arrays.append(pa.array([b"\0" * f.type.byte_width] * n, f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def test_a_time_cut_reads_only_the_row_groups_its_statistics_leave_open(tmp_path):
    start, n = 1_534_000_000, 300_000  # three row groups: 131,072 + 131,072 + 37,856 records
    catalog = EmbeddedCatalog(tmp_path / "catalog", upgraded(f"sqlite:///{tmp_path / 'metadata.sqlite'}"))
    catalog.load("data18_13TeV.00350000.physics_Main.daq.RAW", _timed_table(n, start))
    catalog.scan_stats.reset()
    # the first group lies wholly inside, the second partly, the third outside: only the second is read
    assert catalog.count(make_selection(time_range=(start, start + 140_000))) == 140_001
    assert (catalog.scan_stats.row_groups_read, catalog.scan_stats.row_groups_skipped) == (1, 2)
    catalog.scan_stats.reset()
    events = [e for b in catalog.select(make_selection(time_range=(start + 299_990, start + 10**6)), ["event_number"])
              for e in b.column(0).to_pylist()]
    assert events == list(range(299_991, 300_001))
    # the cut reads the last group's times; the event numbers come from the key file
    assert (catalog.scan_stats.row_groups_read, catalog.scan_stats.row_groups_skipped) == (1, 2)


def _downgrade(folder: Path) -> None:
    """Rewrite a dataset version's key file as format 1 wrote it (run column, 32-bit GUID indices, 64-bit
    entries, no BCID, no trigger patterns) and remove its trigger index."""
    for keys in folder.glob("*.keys.arrow"):
        t = ipc.open_file(pa.BufferReader(keys.read_bytes())).read_all()  # not mapped: rewritten in place
        runs = json.loads(t.schema.metadata[b"runs"])
        cols = {"run_number": pa.array(np.concatenate([np.full(e - s, r, np.uint32) for r, s, e in runs])),
                "event_number": t.column("event_number"), "lumi_block": t.column("lumi_block")}
        for name in t.column_names:
            if name.endswith("_guid"):
                g = t.column(name).chunk(0)
                cols[name] = pa.DictionaryArray.from_arrays(g.indices.cast(pa.int32()), g.dictionary)
            elif name.endswith("_oid"):
                cols[name] = t.column(name).cast(pa.uint64())
        old = pa.table(cols)
        with pa.OSFile(str(keys), "wb") as sink, ipc.new_file(sink, old.schema) as writer:
            writer.write_table(old)
        keys.with_name(keys.name.replace(".keys.arrow", ".triggers.arrow")).unlink()


def test_a_store_written_before_the_trigger_index_answers_and_is_upgraded(staged_world, tmp_path, world):
    _, _, staging = staged_world
    _, _, _, ev, passed = world
    metadata.upgrade(f"sqlite:///{tmp_path / 'metadata.sqlite'}")
    catalog = EmbeddedCatalog(tmp_path / "catalog", f"sqlite:///{tmp_path / 'metadata.sqlite'}")
    catalog.save_menus(load_menus(world[0] / "menus.json")[0].values())
    load_staged(catalog, str(staging))
    for folder in (tmp_path / "catalog" / "data").iterdir():
        _downgrade(folder)
    old = EmbeddedCatalog(tmp_path / "catalog", f"sqlite:///{tmp_path / 'metadata.sqlite'}")
    run, event = int(ev["run_number"][7]), int(ev["event_number"][7])
    assert any(r["datatype"] == "RAW" for r in old.lookup(run, event))  # lookups read format 1 as it is
    text = f"{MU} or not {L1_EM}"
    sel = make_selection(**RAW_MAIN, triggers=[text], bcid=["0-2000"])
    keep = (passed[MU] | ~passed[L1_EM]) & (ev["bcid"] <= 2000)
    assert old.count(sel) == int(keep.sum())
    upgraded = [p for p in (tmp_path / "catalog" / "data").glob("*RAW*/*.keys.arrow")
                if ipc.open_file(pa.memory_map(str(p))).schema.metadata]
    assert upgraded and all(p.with_name(p.name.replace(".keys.arrow", ".triggers.arrow")).exists() for p in upgraded)
    assert _pairs(EmbeddedCatalog(tmp_path / "catalog", f"sqlite:///{tmp_path / 'metadata.sqlite'}"), sel) == \
        _truth_pairs(ev, keep)
