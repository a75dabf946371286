"""The catalogue contract, run against every backend available: the embedded store with its metadata on SQLite
and on a real PostgreSQL, and HBase/Phoenix when EVENTINDEX_PHOENIX_URL names a server (not run otherwise).

Expected values come from the simulated world itself (world.json and the ROOT files read with uproot), never
from the catalogue under test.
"""

import uuid
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot

from eventindex.catalog import BadSelection, make_selection
from eventindex.catalog.embedded import BadLoad, EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.errors import UnknownTrigger
from eventindex.settings import Settings
from eventindex.trigger import bit_is_set, load_menus
from tests.conftest import dataset, upgraded

pytestmark = pytest.mark.integration
BACKENDS = ["sqlite", "postgresql", "phoenix"]


@pytest.fixture(params=BACKENDS)
def empty_catalog(request, tmp_path):
    if request.param == "sqlite":
        return EmbeddedCatalog(tmp_path / "catalog", upgraded(f"sqlite:///{tmp_path / 'meta.sqlite'}"))
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres")
        return EmbeddedCatalog(tmp_path / "catalog", upgraded(pg.create_database(f"t{uuid.uuid4().hex[:12]}")))
    s = Settings.from_env()
    if not s.phoenix_url:
        pytest.skip("not run: no Apache Phoenix query server here (set EVENTINDEX_PHOENIX_URL to run)")
    from eventindex.catalog.phoenix import PhoenixCatalog

    return PhoenixCatalog(s.phoenix_url, upgraded(f"sqlite:///{tmp_path / 'meta.sqlite'}"),
                          table_prefix=f"T{uuid.uuid4().hex[:8]}", auth=s.phoenix_auth, user=s.phoenix_user, password=s.phoenix_password, ca=s.phoenix_ca)


@pytest.fixture
def catalog(empty_catalog, staged_world):
    world, out, staging = staged_world
    menus, _ = load_menus(out / "menus.json")
    empty_catalog.save_menus(menus.values())
    load_staged(empty_catalog, str(staging))
    return empty_catalog


def _events(out, ds, branches):
    parts = []
    for f in ds["files"]:
        with uproot.open(out / f["path"]) as h:
            parts.append(h["events"].arrays(branches, library="np"))
    return {b: np.concatenate([p[b] for p in parts]) for b in branches}


def test_every_dataset_and_file_of_the_world_is_loaded(catalog, staged_world):
    world, _, _ = staged_world
    rows = {r["name"]: r for r in catalog.datasets()}
    assert set(rows) == {d["name"] for d in world["datasets"]}
    for d in world["datasets"]:
        assert rows[d["name"]]["nevents"] == d["nevents"]
        shown = catalog.show(d["name"])
        assert {f["guid"]: f["nevents"] for f in shown["files"]} == {f["guid"]: f["nevents"] for f in d["files"]}


def test_lookup_gives_references_that_point_at_the_event_in_the_files(catalog, staged_world):
    world, out, _ = staged_world
    paths = {f["guid"]: out / f["path"] for d in world["datasets"] for f in d["files"]}
    deriv = dataset(world, "DAOD_PHYS")
    evts = _events(out, deriv, ["run_number", "event_number"])
    for i in (0, len(evts["event_number"]) // 2, len(evts["event_number"]) - 1):
        run, event = int(evts["run_number"][i]), int(evts["event_number"][i])
        matches = catalog.lookup(run, event)
        formats = {(m["datatype"], m["version"]) for m in matches}
        assert {("RAW", ""), ("AOD", "f961_m1831"), ("AOD", "r11969_r11784_p4072"),
                ("DAOD_PHYS", "r11969_r11784_p4072_p4309")} <= formats
        for m in matches:
            assert {"dataset", "datatype", "version", "refs"} <= set(m)
            for stage, ref in m["refs"].items():
                with uproot.open(paths[ref["guid"]]) as h:
                    t = h["events"]
                    got = t.arrays(["run_number", "event_number"], entry_start=ref["oid"],
                                   entry_stop=ref["oid"] + 1, library="np")
                assert (int(got["run_number"][0]), int(got["event_number"][0])) == (run, event), (m["dataset"], stage)


def test_lookup_filters_by_format_and_version(catalog, staged_world):
    world, out, _ = staged_world
    aod = dataset(world, "AOD", tag="r11969_r11784_p4072")
    e = _events(out, aod, ["run_number", "event_number"])
    run, event = int(e["run_number"][5]), int(e["event_number"][5])
    only = catalog.lookup(run, event, datatype="AOD", version="r11969_r11784_p4072")
    assert [m["dataset"] for m in only] == [aod["name"]]
    latest = catalog.lookup(run, event, datatype="AOD", version="latest")
    assert [m["version"] for m in latest] == ["r11969_r11784_p4072"]
    assert catalog.lookup(run, 2**63) == []


def test_lookup_many_agrees_with_single_lookups(catalog, staged_world):
    world, out, _ = staged_world
    raw = dataset(world, "RAW")
    e = _events(out, raw, ["run_number", "event_number"])
    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(e["event_number"]), 300)
    pairs = [(int(e["run_number"][i]), int(e["event_number"][i])) for i in idx] + [(1, 1), (raw["run_number"], 3)]
    table = catalog.lookup_many(pairs, datatype="RAW")
    got = Counter(table.column("request").to_pylist())
    for k, (run, event) in enumerate(pairs):
        assert got.get(k, 0) == len(catalog.lookup(run, event, datatype="RAW")), (run, event)
    assert table.num_rows >= 300


def test_counts_by_stream_type_and_version_match_the_world(catalog, staged_world):
    world, _, _ = staged_world
    assert catalog.count(make_selection()) == world["nevents"]
    expect = sum(d["nevents"] for d in world["datasets"] if d.get("stream") == "physics_Main"
                 and d["datatype"] == "AOD" and d["amitag"] == "f961_m1831")
    assert catalog.count(make_selection(stream="physics_Main", datatype="AOD", version="f961_m1831")) == expect
    run = world["runs"][0]["run_number"]
    expect_run = sum(d["nevents"] for d in world["datasets"] if d.get("run_number") == run)
    assert catalog.count(make_selection(runs=[run])) == expect_run
    assert catalog.count(make_selection(project="mc16_13TeV")) == sum(
        d["nevents"] for d in world["datasets"] if "dsid" in d)


def test_trigger_counts_match_an_independent_decode_of_the_masks(catalog, staged_world):
    world, out, _ = staged_world
    menus, _ = load_menus(out / "menus.json")
    raws = [d for d in world["datasets"] if d["datatype"] == "RAW"]
    for chain in ("HLT_e26_lhtight_ivarloose_L1EM22VHI", "HLT_mu26_ivarmedium_L1MU14FCH", "L1_EM22VHI"):
        expect = expect_lb = 0
        for d in raws:
            e = _events(out, d, ["smk", "hlt_passed", "l1_tav", "lumi_block"])
            for smk in set(e["smk"].tolist()):
                level, bit = menus[smk].locate(chain)
                masks = (e["hlt_passed"] if level == "HLT" else e["l1_tav"]).view(np.uint8)
                passed = bit_is_set(masks, bit) & (e["smk"] == smk)
                expect += int(passed.sum())
                expect_lb += int((passed & (e["lumi_block"] >= 3) & (e["lumi_block"] <= 9)).sum())
        assert expect > 0
        assert catalog.count(make_selection(datatype="RAW", triggers=[chain])) == expect
        assert catalog.count(make_selection(datatype="RAW", triggers=[chain], lumi_blocks=["3-9"])) == expect_lb


def test_two_triggers_select_events_passing_both(catalog, staged_world):
    world, out, _ = staged_world
    menus, _ = load_menus(out / "menus.json")
    d = dataset(world, "RAW")
    e = _events(out, d, ["smk", "hlt_passed"])
    menu = menus[int(e["smk"][0])]
    a, b = "HLT_j420_L1J100", "HLT_xe110_pufit_L1XE50"
    masks = e["hlt_passed"].view(np.uint8)
    both = bit_is_set(masks, menu.locate(a)[1]) & bit_is_set(masks, menu.locate(b)[1])
    assert catalog.count(make_selection(dataset=d["name"], triggers=[a, b])) == int(both.sum())
    labels, matrix = catalog.overlaps(make_selection(dataset=d["name"]), triggers=[a, b])
    assert matrix[0, 1] == matrix[1, 0] == int(both.sum())
    assert matrix[0, 0] == int(bit_is_set(masks, menu.locate(a)[1]).sum())


def test_select_streams_the_chosen_columns_and_the_guid_selection_finds_one_file(catalog, staged_world):
    world, out, _ = staged_world
    d = dataset(world, "AOD", tag="f961_m1831")
    f = d["files"][1]
    batches = list(catalog.select(make_selection(guid=f["guid"].lower()), ["dataset", "event_number", "AOD_guid",
                                                                           "AOD_oid", "RAW_oid"]))
    table = pa.Table.from_batches(batches)
    assert table.num_rows == f["nevents"]
    assert set(table.column("AOD_guid").to_pylist()) == {f["guid"]}
    assert sorted(table.column("AOD_oid").to_pylist()) == list(range(f["nevents"]))
    with uproot.open(out / f["path"]) as h:
        assert sorted(h["events"]["event_number"].array(library="np").tolist()) == \
            sorted(table.column("event_number").to_pylist())
    assert catalog.count(make_selection(guid=f["guid"])) == f["nevents"]


def test_stream_overlaps_match_the_raw_files(catalog, staged_world):
    world, out, _ = staged_world
    events = {}
    for s in ("physics_Main", "express_express"):
        events[s] = set()
        for d in world["datasets"]:
            if d["datatype"] == "RAW" and d["stream"] == s:
                e = _events(out, d, ["run_number", "event_number"])
                events[s] |= set(zip(e["run_number"].tolist(), e["event_number"].tolist()))
    labels, m = catalog.overlaps(make_selection(datatype="RAW"), streams=["physics_Main", "express_express"])
    assert m[0, 1] == len(events["physics_Main"] & events["express_express"])
    assert m[1, 1] == len(events["express_express"])


def test_obsolete_datasets_vanish_from_queries_but_not_from_history(catalog, staged_world):
    world, out, _ = staged_world
    d = dataset(world, "AOD", tag="r11969_r11784_p4072")
    e = _events(out, d, ["run_number", "event_number"])
    run, event = int(e["run_number"][0]), int(e["event_number"][0])
    before = catalog.count(make_selection())
    catalog.mark_obsolete(d["name"])
    assert catalog.count(make_selection()) == before - d["nevents"]
    assert d["name"] not in {m["dataset"] for m in catalog.lookup(run, event)}
    assert d["name"] not in {r["name"] for r in catalog.datasets()}
    assert catalog.lookup(run, event, datatype="AOD", version="latest")[0]["version"] == "f961_m1831"
    shown = catalog.show(d["name"])
    assert shown["status"] == "obsolete" and [h["action"] for h in shown["history"]] == ["load", "obsolete"]
    assert catalog.count(make_selection(dataset=d["name"], include_obsolete=True)) == d["nevents"]
    assert catalog.restore(d["name"]) is True and catalog.restore(d["name"]) is False
    assert catalog.count(make_selection()) == before
    assert d["name"] in {m["dataset"] for m in catalog.lookup(run, event)}
    assert [h["action"] for h in catalog.show(d["name"])["history"]] == ["load", "obsolete", "restore"]


def test_the_monitoring_answers_agree_with_the_world_on_every_backend(catalog, staged_world):
    from eventindex import monitoring

    world, out, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    catalog.load(d["name"], sorted(str(p) for p in (staging / d["name"]).glob("*.parquet")), source="grid")
    listed = monitoring.dataset_list(catalog, limit=1000)
    assert [r["name"] for r in listed["datasets"]] == sorted(x["name"] for x in world["datasets"])
    assert [r["name"] for r in monitoring.dataset_list(catalog, source="grid")["datasets"]] == [d["name"]]
    rates = monitoring.ingestion_rates(catalog, "day")
    assert sum(r["datasets"] for r in rates) == len(world["datasets"]) + 1
    assert sum(r["events"] for r in rates) == sum(x["nevents"] for x in world["datasets"]) + d["nevents"]
    e = _events(out, d, ["run_number", "lumi_block"])
    lumis = Counter(zip(e["run_number"].tolist(), e["lumi_block"].tolist()))
    assert monitoring.events_per(catalog, make_selection(dataset=d["name"]), by="lumi_block") == \
        [{"run_number": r, "lumi_block": lb, "events": n} for (r, lb), n in sorted(lumis.items())]


def test_reload_replaces_the_dataset_and_is_kept_in_history(catalog, staged_world):
    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    table = pq.read_table(next((staging / d["name"]).glob("*.parquet")))
    result = catalog.load(d["name"], table.slice(0, 100))
    assert result.replaced
    assert catalog.count(make_selection(dataset=d["name"])) == 100
    history = catalog.show(d["name"])["history"]
    assert [h["action"] for h in history] == ["load", "reload"]
    catalog.load(d["name"], table)  # and back
    assert catalog.count(make_selection(dataset=d["name"])) == d["nevents"]


def test_duplicates_and_missing_events_are_reported(catalog, staged_world):
    world, _, staging = staged_world
    raw = dataset(world, "RAW", stream="physics_MinBias")
    aod_name = raw["name"].replace("daq.RAW", "merge.AOD.f961_m1831")
    aod = pq.read_table(next((staging / aod_name).glob("*.parquet")))
    keep = np.ones(aod.num_rows, bool)
    keep[[3, 10, 11]] = False
    lost = sorted(aod.column("event_number").to_numpy()[~keep].tolist())
    doubled = pa.concat_tables([aod.filter(pa.array(keep)), aod.slice(20, 2)])
    result = catalog.load(aod_name, doubled)
    assert result.duplicates == 2
    dup = catalog.duplicates(aod_name)
    assert sorted(dup.column("event_number").to_pylist()) == sorted(aod.column("event_number").to_numpy()[20:22]
                                                                    .tolist())
    assert set(dup.column("copies").to_pylist()) == {2}
    assert sorted(catalog.missing(raw["name"], aod_name).column("event_number").to_pylist()) == lost
    assert catalog.missing(aod_name, raw["name"]).num_rows == 0


def test_bad_loads_change_nothing(catalog, staged_world):
    world, _, staging = staged_world
    raws = [d for d in world["datasets"] if d["datatype"] == "RAW" and d["stream"] == "physics_Main"]
    other = pq.read_table(next((staging / raws[1]["name"]).glob("*.parquet")))
    before = {r["name"]: (r["load_id"], r["nevents"]) for r in catalog.datasets()}
    with pytest.raises(BadLoad, match=f"run {raws[1]['run_number']}"):
        catalog.load(raws[0]["name"], other)
    with pytest.raises(BadLoad, match="lack the column"):
        catalog.load(raws[0]["name"], other.drop_columns(["lumi_block"]))
    with pytest.raises(BadLoad, match="malformed"):
        catalog.load("data18_13TeV.00358031.physics_Main.daq.RAW'; DROP TABLE datasets;--", other)
    assert {r["name"]: (r["load_id"], r["nevents"]) for r in catalog.datasets()} == before


@pytest.mark.parametrize("bad", [
    dict(stream="physics_Main' OR '1'='1"), dict(version="f961; DROP TABLE datasets"),
    dict(triggers=["HLT_e26') OR 1=1 --"]), dict(guid="' OR ''='"), dict(project="data18_13TeV;--"),
    dict(runs=["1-2; DELETE"]), dict(lumi_blocks=["-5"]), dict(runs=["9-1"]), dict(datatype="AOD UNION SELECT"),
    dict(dataset="x' OR 1=1"),
])
def test_hostile_selections_are_rejected(catalog, bad):
    with pytest.raises(BadSelection):
        catalog.count(make_selection(**bad))


def test_huge_ranges_are_handled(catalog, staged_world):
    """The widest ranges the schema holds count everything; a bound past it is refused as typed, never clipped
    (a clipped cut answers another question: REST count?run=4294967296 answered 0)."""
    world, _, _ = staged_world
    assert catalog.count(make_selection(runs=["0-4294967295"])) == world["nevents"]
    with pytest.raises(BadSelection, match="run 99999999999999999999 is out of range"):
        make_selection(runs=["0-99999999999999999999"])
    assert catalog.count(make_selection(lumi_blocks=["0-4294967295"], datatype="RAW")) == sum(
        d["nevents"] for d in world["datasets"] if d["datatype"] == "RAW")


def test_unknown_trigger_lists_close_matches(catalog):
    with pytest.raises(UnknownTrigger, match="HLT_mu26_ivarmedium_L1MU14FCH"):
        catalog.count(make_selection(triggers=["HLT_mu26_ivarmedum_L1MU14FCH"]))
