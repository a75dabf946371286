"""Writer of Run 3 layout xAOD files (RNTuple) that carry trigger decisions and their menus, for tests.

The layout follows what Athena (release 24) writes:
- ``EventData``: one entry per event, EventInfo as ``EventInfoAuxDyn:<attr>``, the trigger decision as
  ``xTrigDecisionAux:smk`` and the bit words ``xTrigDecisionAux:tbp|tap|tav`` (16 uint32, bit = CTP id) and
  ``xTrigDecisionAux:efPassedPhysics|efPrescaled|efResurrected`` (bit = HLT chain counter), and the record
  ``TrigConfKeys`` (``m_smk``, ``m_l1psk``, ``m_hltpsk``);
- ``MetaData``: one entry holding the JSON menus, ``TriggerMenuJson_HLTAux:key|payload`` and
  ``TriggerMenuJson_L1Aux:key|payload`` (key = SMK);
- ``DataHeader``, ``EventTag`` and the ``##Params`` TTree (the file's GUID, ``[NAME=FID]``).

Menus are the size of real ones (about 2,500 HLT chains with counters past 2,000, 400 L1 items with CTP ids below
512); decisions are random but seeded. Bit ``b`` of a word list is bit ``b % 32`` of word ``b // 32``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

L1_WORDS = 16  # 512 CTP ids
L1_KINDS = ("EM", "eEM", "MU", "J", "jJ", "TAU", "eTAU", "XE", "jXE", "gXE", "TE", "2EM", "2MU", "3J", "4J",
            "2TAU", "HT", "ZDC", "MBTS", "RD")
L1_SUFFIXES = ("", "VHI", "VH", "I", "L", "M", "FCH", "BOM", "VHIM", "_FILLED", "_EMPTY", "_UNPAIRED", "_0ETA25")
HLT_OBJECTS = ("e", "g", "mu", "j", "tau", "xe", "2e", "2g", "2mu", "3mu", "2j", "3j", "4j", "5j", "6j", "b", "2b",
               "ht", "mb")
HLT_SELECTIONS = ("", "_lhtight", "_lhmedium", "_lhloose", "_lhtight_ivarloose", "_loose", "_medium", "_tight",
                  "_ivarmedium", "_ivarloose", "_etcut", "_tracktwoMVA", "_pf_ftf", "_cell", "_tcpufit", "_msonly",
                  "_idperf", "_0eta290", "_a10t", "_nod0", "_gsc", "_bdl1r70", "_noalg")


@dataclass(frozen=True)
class Menu:
    """One trigger menu (one SMK): HLT chain -> counter, L1 item -> CTP id, each chain's L1 seed."""

    smk: int
    name: str
    chains: dict[str, int]
    items: dict[str, int]
    seeds: dict[str, str] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # how often each chain or item fires (by name)

    @property
    def max_counter(self) -> int:
        return max(self.chains.values())

    def hlt_json(self) -> str:
        return json.dumps({"filetype": "hltmenu", "name": self.name, "chains": {
            n: {"counter": c, "l1item": self.seeds.get(n, ""), "streams": ["Main"]} for n, c in self.chains.items()}})

    def l1_json(self) -> str:
        return json.dumps({"filetype": "l1menu", "name": self.name,
                           "items": {n: {"ctpid": c} for n, c in self.items.items()}})


def _names(n: int, make) -> list[str]:
    found: dict[str, None] = {}
    while len(found) < n:
        found.setdefault(make(), None)
    return list(found)


def make_menu(smk: int, *, seed: int, nchains: int = 2500, nitems: int = 400) -> Menu:
    """A realistic-size menu: chain counters 1..nchains shuffled, CTP ids drawn below 512 (without 0)."""
    rng = np.random.default_rng(seed)
    items = _names(nitems, lambda: f"L1_{rng.choice(L1_KINDS)}{rng.integers(3, 120)}{rng.choice(L1_SUFFIXES)}")
    chains = _names(nchains, lambda: f"HLT_{rng.choice(HLT_OBJECTS)}{rng.integers(4, 400)}"
                                     f"{rng.choice(HLT_SELECTIONS)}{rng.choice(HLT_SELECTIONS)}"
                                     f"_L1{rng.choice(items)[3:]}")
    counters = rng.permutation(np.arange(1, nchains + 1))
    ctpids = rng.choice(np.arange(1, 512), nitems, replace=False)
    seeds = {c: "L1_" + c.rsplit("_L1", 1)[1] for c in chains}
    rates = {n: float(r) for n, r in zip(chains + items, rng.beta(0.6, 4.0, nchains + nitems))}
    return Menu(smk, f"Physics_pp_run3_v1 SMK {smk}", dict(zip(chains, counters.tolist())),
                dict(zip(items, ctpids.tolist())), seeds, rates)


def reshuffled(menu: Menu, smk: int, *, seed: int, extra: int = 0) -> Menu:
    """The same chains and items at other counters and CTP ids (a later menu of the same names), plus ``extra``
    new chains with counters after the last one."""
    rng = np.random.default_rng(seed)
    names = list(menu.chains)
    counters = rng.permutation(np.arange(1, len(names) + 1)).tolist()
    chains = dict(zip(names, counters))
    rates = dict(menu.rates)
    for k in range(extra):
        name = f"HLT_j{20 + k}_newchain_L1J15"
        chains[name] = len(names) + 1 + k
        rates[name] = 0.3
    ctpids = rng.choice(np.arange(1, 512), len(menu.items), replace=False).tolist()
    return replace(menu, smk=smk, name=f"Physics_pp_run3_v1 SMK {smk}", chains=chains,
                   items=dict(zip(menu.items, ctpids)), seeds={**menu.seeds, **{n: "L1_J15" for n in chains
                                                                                 if n not in menu.seeds}},
                   rates=rates)


def renamed(menu: Menu, old: str, new: str) -> Menu:
    """The same menu (same SMK) with one chain renamed at the same counter."""
    chains = {(new if n == old else n): c for n, c in menu.chains.items()}
    return replace(menu, chains=chains, seeds={(new if n == old else n): s for n, s in menu.seeds.items()},
                   rates={(new if n == old else n): r for n, r in menu.rates.items()})


def _words(bits: np.ndarray) -> np.ndarray:
    """(N, nbits) booleans -> (N, nbits // 32) uint32 words, bit b at bit b % 32 of word b // 32."""
    return np.packbits(bits, axis=1, bitorder="little").view("<u4")


def decisions(rng: np.random.Generator, menus: list[Menu], hlt_words: int) -> dict[str, np.ndarray]:
    """Random decisions of events taken with ``menus`` (one per event): L1 before prescale, after prescale (a subset)
    and after veto (a subset of that); HLT passed, prescaled and resurrected (a subset of prescaled)."""
    n = len(menus)
    l1 = np.zeros((3, n, 32 * L1_WORDS), bool)
    hlt = np.zeros((3, n, 32 * hlt_words), bool)
    for smk in dict.fromkeys(m.smk for m in menus):
        m = next(x for x in menus if x.smk == smk)
        rows = np.array([e for e, x in enumerate(menus) if x.smk == smk])[:, None]
        ctp = np.fromiter(m.items.values(), int)
        l1[0, rows, ctp] = rng.random((len(rows), len(ctp))) < np.array([m.rates[i] for i in m.items])
        counters = np.fromiter(m.chains.values(), int)
        hlt[0, rows, counters] = rng.random((len(rows), len(counters))) < np.array([m.rates[c] for c in m.chains])
        hlt[1, rows, counters] = rng.random((len(rows), len(counters))) < 0.01
    l1[1] = l1[0] & (rng.random(l1[0].shape) < 0.9)
    l1[2] = l1[1] & (rng.random(l1[0].shape) < 0.98)
    hlt[2] = hlt[1] & (rng.random(hlt[1].shape) < 0.3)
    return {"tbp": _words(l1[0]), "tap": _words(l1[1]), "tav": _words(l1[2]),
            "efPassedPhysics": _words(hlt[0]), "efPrescaled": _words(hlt[1]), "efResurrected": _words(hlt[2])}


def data_info(n: int, run: int, seed: int = 3) -> dict:
    """EventInfo of ``n`` events of a data run, stream tag Main."""
    rng = np.random.default_rng(seed)
    return {"runNumber": np.full(n, run, np.uint32),
            "eventNumber": rng.choice(10**9, n, replace=False).astype(np.uint64),
            "lumiBlock": np.sort(rng.integers(1, 800, n)).astype(np.uint32),
            "bcid": rng.integers(1, 3564, n).astype(np.uint32),
            "timeStamp": np.full(n, 1_690_000_000, np.uint32), "timeStampNSOffset": np.zeros(n, np.uint32),
            "streamTagNames": ak.Array([["Main"]] * n)}


def write_run3(path: Path, guid: str, info: dict, menus: list[Menu] | None = None, smks=None, *, seed: int = 0,
               hlt_words: int | None = None) -> None:
    """A Run 3 POOL file. With ``menus``: trigger decisions of each event under the menu of its SMK (``smks``, one
    per event; by default the first menu's) and the menus' JSON in MetaData."""
    n = len(next(iter(info.values())))
    tokens = np.array([f"[DB={guid}][CNT=EventData][CLID=0][TECH=00000202][OID=00000000-{i:08X}]"
                       for i in range(n)])
    fields = {f"EventInfoAuxDyn:{k}": v for k, v in info.items()}
    meta = None
    if menus:
        rng = np.random.default_rng(seed)
        by_smk = {m.smk: m for m in menus}
        smks = np.full(n, menus[0].smk, np.uint32) if smks is None else np.asarray(smks, np.uint32)
        hlt_words = hlt_words or -(-(max(m.max_counter for m in menus) + 1) // 32)
        for name, words in decisions(rng, [by_smk[int(s)] for s in smks], hlt_words).items():
            fields[f"xTrigDecisionAux:{name}"] = ak.from_regular(ak.from_numpy(words))  # var * uint32
        fields["xTrigDecisionAux:smk"] = smks
        fields["TrigConfKeys"] = ak.zip({"m_smk": smks,
                                         "m_l1psk": (smks * 10 + rng.integers(1, 3, n)).astype(np.uint32),
                                         "m_hltpsk": (smks * 10 + rng.integers(4, 6, n)).astype(np.uint32)})
        keys = [m.smk for m in menus]
        meta = {"TriggerMenuJson_HLTAux:key": ak.values_astype(ak.Array([keys]), np.uint32),
                "TriggerMenuJson_HLTAux:payload": ak.Array([[m.hlt_json() for m in menus]]),
                "TriggerMenuJson_L1Aux:key": ak.values_astype(ak.Array([keys]), np.uint32),
                "TriggerMenuJson_L1Aux:payload": ak.Array([[m.l1_json() for m in menus]])}
    with uproot.recreate(path) as out:
        out.mkrntuple("EventData", ak.Array(fields))
        if meta:
            out.mkrntuple("MetaData", ak.Array(meta))
        out.mkrntuple("DataHeader", ak.Array({"Token": tokens}))
        out.mkrntuple("EventTag", ak.Array({"Token": tokens, "RunNumber": info["runNumber"]}))
        out.mktree("##Params", {"db_string": "string"})
        out["##Params"].extend({"db_string": np.array([f"[NAME=FID][VALUE={guid}]", "[NAME=POOL_VSN][VALUE=1.1]"])})
