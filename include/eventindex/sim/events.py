"""Simulated collisions: physics objects per event, the trigger decisions they cause, and the recorded events.

Everything is whole-array numpy: candidates are drawn in batches, the trigger fires on all of them at once,
and only events that pass some HLT chain are recorded, as in the detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from ..schema import HLT_BITS, L1_BITS
from ..trigger import PrescaleSet, pack_bits
from .triggers import MenuRules

PROCESSES = {  # share among collision candidates reaching the HLT
    "dijet": 0.44, "w_enu": 0.08, "w_munu": 0.08, "z_ee": 0.03, "z_mumu": 0.03, "ttbar": 0.02,
    "met": 0.03, "photon": 0.05, "tau": 0.04, "minbias": 0.20,
}
N_BCID = 3564
FILLED_BCIDS = np.array([b for b in range(N_BCID) if (b % 80) < 48 and 100 <= b < 3400], dtype=np.uint16)
L1_SMEAR, HLT_SMEAR = 0.08, 0.03


@dataclass
class Events:
    """Columns of a set of events (index branches + physics payload), all of the same length."""

    columns: dict[str, np.ndarray]
    jets: ak.Array
    muons: ak.Array
    streams: dict[str, np.ndarray]  # stream name -> bool
    skim: np.ndarray  # passes the DAOD_PHYS selection

    def __len__(self) -> int:
        return len(self.columns["event_number"])

    def take(self, index: np.ndarray) -> "Events":
        return Events(
            {k: v[index] for k, v in self.columns.items()}, self.jets[index], self.muons[index],
            {k: v[index] for k, v in self.streams.items()}, self.skim[index],
        )

    def payload(self) -> dict[str, ak.Array]:
        return {"jet": self.jets, "mu": self.muons}


def _physics(rng: np.random.Generator, process: np.ndarray) -> tuple[dict[str, np.ndarray], ak.Array, ak.Array]:
    n = len(process)
    names = np.array(list(PROCESSES))
    is_ = {p: process == i for i, p in enumerate(names)}
    z = np.zeros(n)
    q = {k: z.copy() for k in ("e1", "e2", "g1", "mu1", "mu2", "met", "tau1", "tau2")}
    j1 = 12 + rng.exponential(8, n)
    pareto = 20 * (1 - rng.random(n)) ** (-1 / 2.5)
    j1 = np.where(is_["dijet"], np.minimum(pareto, 3000), j1)
    q["met"] = rng.exponential(12, n)

    def put(key, mask, values):
        q[key] = np.where(mask, np.maximum(values, 0), q[key])

    put("e1", is_["w_enu"], rng.normal(38, 8, n))
    put("mu1", is_["w_munu"], rng.normal(38, 8, n))
    put("met", is_["w_enu"] | is_["w_munu"], rng.normal(38, 10, n))
    put("e1", is_["z_ee"], rng.normal(46, 8, n))
    put("e2", is_["z_ee"], rng.normal(36, 8, n))
    put("mu1", is_["z_mumu"], rng.normal(46, 8, n))
    put("mu2", is_["z_mumu"], rng.normal(36, 8, n))
    tt = is_["ttbar"]
    j1 = np.where(tt, rng.normal(160, 50, n).clip(60), j1)
    lep = rng.random(n)
    put("e1", tt & (lep < 0.3), rng.normal(55, 20, n))
    put("mu1", tt & (lep >= 0.3) & (lep < 0.6), rng.normal(55, 20, n))
    put("met", tt, rng.normal(60, 30, n))
    put("met", is_["met"], 80 + rng.exponential(80, n))
    j1 = np.where(is_["met"], 100 + rng.exponential(100, n), j1)
    put("g1", is_["photon"], 25 * (1 - rng.random(n)) ** (-1 / 3))
    put("tau1", is_["tau"], rng.normal(45, 12, n))
    put("tau2", is_["tau"] & (lep < 0.5), rng.normal(30, 10, n))
    fake = is_["dijet"] & (rng.random(n) < 0.06)  # jets faking electrons; heavy-flavour muons
    put("e1", fake, j1 * rng.uniform(0.2, 0.7, n))
    soft_mu = is_["dijet"] & (rng.random(n) < 0.04)
    put("mu1", soft_mu, 3 + rng.exponential(6, n))
    q["g1"] = np.where(q["g1"] > 0, q["g1"], np.where(is_["dijet"] & (rng.random(n) < 0.05), j1 * 0.4, 0))

    # jets: leading j1, then falling fractions; ttbar has at least four
    njet = np.maximum(1 + rng.poisson(2.0, n), np.where(tt, 4, 1)).astype(np.int64)
    total = int(njet.sum())
    starts = np.concatenate([[0], np.cumsum(njet)[:-1]])
    frac = np.log(rng.uniform(0.35, 0.92, total))
    frac[starts] = 0.0
    csum = np.cumsum(frac)
    log_pt = csum - np.repeat(csum[starts], njet) + np.repeat(np.log(j1), njet)
    jet_pt = np.exp(log_pt).astype(np.float32)
    jets = ak.zip({
        "pt": ak.unflatten(jet_pt, njet),
        "eta": ak.unflatten(rng.uniform(-4.5, 4.5, total).astype(np.float32), njet),
        "phi": ak.unflatten(rng.uniform(-np.pi, np.pi, total).astype(np.float32), njet),
        "m": ak.unflatten((jet_pt * rng.uniform(0.05, 0.2, total)).astype(np.float32), njet),
    })
    nth = lambda k: np.where(njet > k, jet_pt[np.minimum(starts + k, total - 1)], 0.0)  # noqa: E731
    q["j1"], q["j3"], q["j4"] = j1, nth(2), nth(3)
    q["ht"] = np.asarray(ak.sum(ak.where(jets.pt > 15, jets.pt, 0), axis=1))
    q["eg1"] = np.maximum(q["e1"], q["g1"])
    q["mbts"] = rng.random(n)

    nmu = (q["mu1"] > 0).astype(np.int64) + (q["mu2"] > 0)
    mu_pt = np.stack([q["mu1"], q["mu2"]], axis=1)[np.arange(2)[None, :] < nmu[:, None]].astype(np.float32)
    nm = int(nmu.sum())
    muons = ak.zip({
        "pt": ak.unflatten(mu_pt, nmu),
        "eta": ak.unflatten(rng.uniform(-2.5, 2.5, nm).astype(np.float32), nmu),
        "phi": ak.unflatten(rng.uniform(-np.pi, np.pi, nm).astype(np.float32), nmu),
        "charge": ak.unflatten(rng.choice(np.array([-1, 1], np.int8), nm), nmu),
    })
    real_e = is_["w_enu"] | is_["z_ee"] | tt
    q["e_id"] = np.where(real_e, rng.random(n) ** 2, rng.uniform(0.5, 1, n))
    q["e_iso"] = np.where(real_e, rng.random(n) ** 2, rng.uniform(0.3, 1, n))
    q["g_id"] = np.where(is_["photon"], rng.random(n) ** 2, rng.uniform(0.4, 1, n))
    q["mu_q"] = rng.random(n) ** 0.5 * 0.99
    q["mu_iso"] = np.where(soft_mu, rng.uniform(0.5, 1, n), rng.random(n) ** 2)
    q["tau_iso"] = np.where(is_["tau"], rng.random(n) ** 2, rng.uniform(0.5, 1, n))
    return q, jets, muons


def _fire(rules, q, smear, quality_ok) -> np.ndarray:
    out = np.empty((len(q["j1"]), len(rules)), dtype=bool)
    for i, r in enumerate(rules):
        ok = quality_ok.copy()
        for qty, thr in r.cuts:
            ok &= smear[qty] > thr
        for score, cut in r.quality:
            ok &= q[score] < cut
        out[:, i] = ok
    return out


def _inverse_prescales(rules, sets: list[PrescaleSet]) -> np.ndarray:
    return np.array([[1.0 / s.prescales[r.name] if s.prescales[r.name] > 0 else 0.0 for r in rules] for s in sets])


def trigger(rng, q, rules: MenuRules, l1_sets, hlt_sets, key_index: np.ndarray) -> dict[str, np.ndarray]:
    """Fire the menu on every event; returns the six masks as (N, words) uint64 plus per-stream decisions."""
    n = len(q["j1"])
    l1_res = {k: q[k] * (1 + L1_SMEAR * rng.standard_normal(n)) for k in q}
    hlt_res = {k: q[k] * (1 + HLT_SMEAR * rng.standard_normal(n)) for k in q}
    everything = np.ones(n, dtype=bool)
    tbp = _fire(rules.l1, q, l1_res, everything)
    tap = tbp & (rng.random(tbp.shape) < _inverse_prescales(rules.l1, l1_sets)[key_index])
    busy = rng.random(n) < 0.01  # dead-time veto
    tav = tap & ~busy[:, None]
    l1_bit = {r.name: i for i, r in enumerate(rules.l1)}
    seeds = np.array([l1_bit[r.seed] for r in rules.hlt])
    active = tav[:, seeds]
    raw = _fire(rules.hlt, q, hlt_res, everything)
    run = rng.random(raw.shape) < _inverse_prescales(rules.hlt, hlt_sets)[key_index]
    passed = active & raw & run
    prescaled = active & ~run
    resurrected = prescaled & raw & (rng.random(raw.shape) < 0.002)

    def masks(bits: np.ndarray, nbits: int) -> np.ndarray:
        full = np.zeros((n, nbits), dtype=bool)
        full[:, : bits.shape[1]] = bits
        return pack_bits(full).view("<u8")

    out = {
        "l1_tbp": masks(tbp, L1_BITS), "l1_tap": masks(tap, L1_BITS), "l1_tav": masks(tav, L1_BITS),
        "hlt_passed": masks(passed, HLT_BITS), "hlt_prescaled": masks(prescaled, HLT_BITS),
        "hlt_resurrected": masks(resurrected, HLT_BITS),
    }
    stream_of = np.array([r.stream for r in rules.hlt])
    main = passed[:, stream_of == "Main"].any(axis=1)
    minbias = passed[:, stream_of == "MinBias"].any(axis=1)
    hlt_bit = {r.name: i for i, r in enumerate(rules.hlt)}
    primaries = [hlt_bit[c] for c in ("HLT_e26_lhtight_ivarloose_L1EM22VHI", "HLT_mu26_ivarmedium_L1MU14FCH")]
    u = rng.random(n)
    express = (main & (u < 0.03)) | (passed[:, primaries].any(axis=1) & (u < 0.12)) | (minbias & (u < 0.02))
    out["_streams"] = {"physics_Main": main, "physics_MinBias": minbias, "express_express": express}
    out["_recorded"] = main | minbias
    return out


def _skim(q) -> np.ndarray:
    """The DAOD_PHYS selection: a lepton, a photon, missing energy or a hard jet."""
    return (q["e1"] > 27) | (q["mu1"] > 27) | (q["g1"] > 100) | (q["met"] > 100) | (q["j1"] > 400) | (q["tau1"] > 50)


def collisions(rng, n_wanted: int, rules: MenuRules, l1_sets, hlt_sets, lb_weights: np.ndarray,
               lb_split: int) -> tuple[dict, ak.Array, ak.Array, dict, np.ndarray]:
    """Draw candidates until ``n_wanted`` are recorded; returns their quantities, payload, masks and streams."""
    parts = []
    have = 0
    probs = np.array(list(PROCESSES.values()))
    while have < n_wanted:
        batch = max(20_000, int((n_wanted - have) * 1.6))
        process = rng.choice(len(PROCESSES), size=batch, p=probs / probs.sum())
        lb = rng.choice(len(lb_weights), size=batch, p=lb_weights) + 1
        q, jets, muons = _physics(rng, process)
        trig = trigger(rng, q, rules, l1_sets, hlt_sets, (lb > lb_split).astype(np.int64))
        keep = np.nonzero(trig.pop("_recorded"))[0]
        streams = trig.pop("_streams")
        parts.append(({**{k: v[keep] for k, v in trig.items()}, "lumi_block": lb[keep].astype(np.uint32)},
                      jets[keep], muons[keep], {k: v[keep] for k, v in streams.items()},
                      _skim({k: v[keep] for k, v in q.items()})))
        have += len(keep)
    cols = {k: np.concatenate([p[0][k] for p in parts])[:n_wanted] for k in parts[0][0]}
    jets = ak.concatenate([p[1] for p in parts])[:n_wanted]
    muons = ak.concatenate([p[2] for p in parts])[:n_wanted]
    streams = {k: np.concatenate([p[3][k] for p in parts])[:n_wanted] for k in parts[0][3]}
    skim = np.concatenate([p[4] for p in parts])[:n_wanted]
    return cols, jets, muons, streams, skim


def run_events(rng, run_number: int, n: int, rules: MenuRules, smk: int, l1_sets, hlt_sets,
               lumi_blocks: int, start_time: int) -> Events:
    """One run's recorded events in time order, with lumi blocks, timestamps, BCIDs and event numbers."""
    lb_weights = np.exp(-np.arange(lumi_blocks) / (lumi_blocks * 0.8))
    lb_weights /= lb_weights.sum()
    split = lumi_blocks // 2
    cols, jets, muons, streams, skim = collisions(rng, n, rules, l1_sets, hlt_sets, lb_weights, split)
    lb = cols["lumi_block"]
    t = start_time + (lb.astype(np.float64) - 1) * 60.0 + rng.random(n) * 60.0
    order = np.argsort(t, kind="stable")
    t = t[order]
    gaps = 1 + rng.geometric(0.002, n)
    cols = {k: v[order] for k, v in cols.items()}
    cols.update(
        run_number=np.full(n, run_number, np.uint32),
        event_number=(rng.integers(1, 10_000) + np.cumsum(gaps)).astype(np.uint64),
        timestamp=np.floor(t).astype(np.uint32),
        timestamp_ns=((t - np.floor(t)) * 1e9).astype(np.uint32),
        bcid=rng.choice(FILLED_BCIDS, n),
        smk=np.full(n, smk, np.uint32),
        l1psk=np.where(cols["lumi_block"] > split, l1_sets[1].key, l1_sets[0].key).astype(np.uint32),
        hltpsk=np.where(cols["lumi_block"] > split, hlt_sets[1].key, hlt_sets[0].key).astype(np.uint32),
    )
    return Events(cols, jets[order], muons[order], {k: v[order] for k, v in streams.items()}, skim[order])


def mc_events(rng, process: str, dsid: int, n: int, run_number: int, rules: MenuRules, smk: int, l1_sets,
              hlt_sets, start_time: int) -> Events:
    """A simulation sample: every generated event is kept; triggers are simulated but do not select."""
    q, jets, muons = _physics(rng, np.full(n, list(PROCESSES).index(process)))
    trig = trigger(rng, q, rules, l1_sets[:1], hlt_sets[:1], np.zeros(n, np.int64))
    trig.pop("_recorded"), trig.pop("_streams")
    lb = rng.integers(1, 1001, n).astype(np.uint32)
    negative = rng.random(n) < (0.1 if process == "ttbar" else 0.01)
    weight = np.abs(rng.normal(1.0, 0.05 if process == "ttbar" else 0.3, n)) * np.where(negative, -1, 1)
    cols = {
        **trig,
        "run_number": np.full(n, run_number, np.uint32),
        "event_number": np.arange(1, n + 1, dtype=np.uint64) + np.uint64(rng.integers(0, 1000) * 10_000),
        "lumi_block": lb,
        "bcid": rng.choice(FILLED_BCIDS, n),
        "timestamp": np.full(n, start_time, np.uint32),
        "timestamp_ns": np.zeros(n, np.uint32),
        "smk": np.full(n, smk, np.uint32),
        "l1psk": np.full(n, l1_sets[0].key, np.uint32),
        "hltpsk": np.full(n, hlt_sets[0].key, np.uint32),
        "mc_channel_number": np.full(n, dsid, np.uint32),
        "mc_event_weight": weight.astype(np.float32),
    }
    return Events(cols, jets, muons, {}, _skim(q) | (rng.random(n) < 0.5))
