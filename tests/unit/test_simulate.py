import json
from collections import Counter
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import uproot

from eventindex import naming
from eventindex.rootfile import read_fid
from eventindex.trigger import bit_is_set, load_menus
from tests.conftest import dataset


def _read(world_dir: Path, ds: dict, branches: list[str]) -> dict[str, np.ndarray]:
    parts = []
    for f in ds["files"]:
        with uproot.open(world_dir / f["path"]) as h:
            parts.append(h["events"].arrays(branches, library="np"))
    return {b: np.concatenate([p[b] for p in parts]) for b in branches}


def test_world_json_lists_every_file_with_its_guid_and_count(small_world):
    world, out = small_world
    assert json.loads((out / "world.json").read_text())["nevents"] == world["nevents"]
    for ds in world["datasets"]:
        naming.parse(ds["name"])
        assert ds["nevents"] == sum(f["nevents"] for f in ds["files"])
        for f in ds["files"]:
            path = out / f["path"]
            assert path.parts[-4:-1] == ("rse", ds["scope"], ds["name"]) or path.parent.name == ds["name"]
            assert f["guid"] in f["lfn"]
            with uproot.open(path) as h:
                assert read_fid(h) == f["guid"]
                assert h["events"].num_entries == f["nevents"]


def test_world_has_all_formats_streams_and_versions(small_world):
    world, _ = small_world
    kinds = Counter((d["datatype"], d.get("amitag")) for d in world["datasets"])
    assert kinds[("RAW", None)] == 2 * 3  # two runs, three streams
    assert kinds[("AOD", "f961_m1831")] == 6
    assert kinds[("AOD", "r11969_r11784_p4072")] == 2
    assert kinds[("DAOD_PHYS", "r11969_r11784_p4072_p4309")] == 2
    assert sum(1 for d in world["datasets"] if "dsid" in d) == 4


def test_streams_overlap_as_in_real_data(small_world):
    world, out = small_world
    run = world["runs"][0]["run_number"]
    events = {}
    for stream in ("physics_Main", "physics_MinBias", "express_express"):
        ds = next(d for d in world["datasets"] if d["datatype"] == "RAW" and d["run_number"] == run
                  and d["stream"] == stream)
        events[stream] = set(_read(out, ds, ["event_number"])["event_number"].tolist())
    assert events["express_express"] & events["physics_Main"]
    assert len(events["physics_Main"]) > 5 * len(events["express_express"])
    assert events["physics_MinBias"] - events["physics_Main"]


def test_hlt_decisions_imply_their_l1_seed_after_veto(small_world):
    world, out = small_world
    menus, _ = load_menus(out / "menus.json")
    ds = dataset(world, "RAW")
    cols = _read(out, ds, ["smk", "l1_tav", "hlt_passed"])
    menu = menus[int(cols["smk"][0])]
    tav = cols["l1_tav"].view(np.uint8)
    hlt = cols["hlt_passed"].view(np.uint8)
    checked = 0
    for chain in ("HLT_e26_lhtight_ivarloose_L1EM22VHI", "HLT_mu26_ivarmedium_L1MU14FCH", "HLT_j420_L1J100"):
        passed = bit_is_set(hlt, menu.locate(chain)[1])
        seed = bit_is_set(tav, menu.locate(menu.hlt_seeds[chain])[1])
        assert passed.sum() > 0, chain
        assert np.all(seed[passed]), chain
        checked += passed.sum()
    assert checked > 50
    # correlated thresholds: EM22VHI fires only where the looser EM20VH fires too
    em22 = bit_is_set(tav, menu.locate("L1_EM22VHI")[1])
    tbp = _read(out, ds, ["l1_tbp"])["l1_tbp"].view(np.uint8)
    em20 = bit_is_set(tbp, menu.locate("L1_EM20VH")[1])
    assert np.all(em20[em22])


def test_aod_events_point_at_their_raw_entry(small_world):
    world, out = small_world
    aod = dataset(world, "AOD", tag="f961_m1831")
    raw = dataset(world, "RAW")
    raw_by_guid = {f["guid"]: _read(out, {"files": [f]}, ["run_number", "event_number"]) for f in raw["files"]}
    cols = _read(out, aod, ["run_number", "event_number", "prov_RAW_guid", "prov_RAW_oid"])
    import uuid
    for i in range(0, len(cols["event_number"]), 37):
        guid = str(uuid.UUID(bytes=cols["prov_RAW_guid"][i].tobytes())).upper()
        entry = int(cols["prov_RAW_oid"][i])
        assert raw_by_guid[guid]["event_number"][entry] == cols["event_number"][i]
        assert raw_by_guid[guid]["run_number"][entry] == cols["run_number"][i]


def test_reprocessing_has_the_same_events_in_other_files_and_order(small_world):
    world, out = small_world
    first = _read(out, dataset(world, "AOD", tag="f961_m1831"), ["event_number", "jet_pt"])
    second = _read(out, dataset(world, "AOD", tag="r11969_r11784_p4072"), ["event_number", "jet_pt"])
    assert sorted(first["event_number"]) == sorted(second["event_number"])
    assert not np.array_equal(first["event_number"], second["event_number"])
    assert {f["guid"] for f in dataset(world, "AOD", tag="f961_m1831")["files"]}.isdisjoint(
        f["guid"] for f in dataset(world, "AOD", tag="r11969_r11784_p4072")["files"])
    daod = _read(out, dataset(world, "DAOD_PHYS"), ["event_number"])["event_number"]
    assert 0 < len(daod) < len(first["event_number"])
    assert set(daod.tolist()) <= set(first["event_number"].tolist())


def test_simulation_samples_carry_channel_and_weights(small_world):
    world, out = small_world
    ds = dataset(world, "AOD", mc=True)
    cols = _read(out, ds, ["mc_channel_number", "mc_event_weight", "run_number"])
    assert set(cols["mc_channel_number"].tolist()) == {ds["dsid"]}
    assert (cols["mc_event_weight"] < 0).any() and (cols["mc_event_weight"] > 0).mean() > 0.5
    assert "physics_Main" not in ds["name"]


def test_upstream_tables_hold_tier0_flags_and_production_tasks(small_world):
    world, out = small_world
    engine = sa.create_engine(f"sqlite:///{out / 'upstream.sqlite'}")
    with engine.connect() as conn:
        t0 = conn.execute(sa.text("select name, status from tier0_datasets")).all()
        tasks = conn.execute(sa.text("select task_id, output_datasets, last_update from prodsys_tasks")).all()
    by_source = Counter(d["source"] for d in world["datasets"])
    assert len(t0) == by_source["tier0"] and {s for _, s in t0} == {"READY"}
    outputs = [name for _, o, _ in tasks for name in json.loads(o)]
    indexed = [name for name in outputs if ".evgen.EVNT." not in name]  # generation: parameters, no events here
    assert sorted(indexed) == sorted(d["name"] for d in world["datasets"] if d["source"] == "prodsys")
    assert len(outputs) - len(indexed) == 3 * sum(1 for d in world["datasets"] if d["datatype"] == "AOD" and "dsid" in d)
    assert len({t for t, _, _ in tasks}) == len(tasks)


def test_same_seed_gives_the_same_world(tmp_path):
    from eventindex.sim.world import WorldConfig, simulate

    config = dict(seed=5, runs=1, events_per_run=500, lumi_blocks=5, mc_events=100, mc_file_events=100, workers=1)
    a = simulate(tmp_path / "a", WorldConfig(**config))
    b = simulate(tmp_path / "b", WorldConfig(**config))
    strip = lambda w: [(d["name"], [(f["guid"], f["nevents"]) for f in d["files"]])  # noqa: E731
                       for d in w["datasets"]]
    assert strip(a) == strip(b)
    # ROOT files carry their creation time, so compare content, not bytes
    branches = ["event_number", "l1_tav", "hlt_passed", "jet_pt", "mu_pt"]
    for ds_a, ds_b in zip(a["datasets"], b["datasets"]):
        for fa, fb in zip(ds_a["files"], ds_b["files"]):
            with uproot.open(tmp_path / "a" / fa["path"]) as ha, uproot.open(tmp_path / "b" / fb["path"]) as hb:
                assert ha["events"].arrays(branches).tolist() == hb["events"].arrays(branches).tolist()
    c = simulate(tmp_path / "c", WorldConfig(**{**config, "seed": 6}))
    assert strip(c) != strip(a)
