"""The simulated trigger: menus named like ATLAS Run-2/3 menus, and the rules that fire each item and chain.

A Level-1 item fires when the event's objects pass its thresholds (with a per-event resolution shared by all
items on the same object, so that L1_EM22VHI firing implies L1_EM20VH firing, as it does in the detector).
An HLT chain runs only if its L1 seed survived prescale and veto (TAV), then applies a finer threshold and
identification/isolation cuts to the same objects. That gives realistic, correlated decisions: an event that
passes HLT_e26_lhtight_ivarloose_L1EM22VHI has L1_EM22VHI in its TAV mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..trigger import PrescaleSet, TriggerMenu

# Per-event quantities the rules use; the generator fills each (GeV, or a score in [0, 1]).
QUANTITIES = ("e1", "e2", "g1", "mu1", "mu2", "j1", "j3", "j4", "met", "tau1", "tau2", "ht", "mbts")


@dataclass(frozen=True)
class Rule:
    name: str
    cuts: tuple[tuple[str, float], ...]  # all of (quantity > threshold)
    quality: tuple[tuple[str, float], ...] = ()  # all of (score < cut)
    seed: str | None = None  # HLT only
    stream: str = "Main"
    unprescaled: bool = True


@dataclass
class MenuRules:
    l1: list[Rule] = field(default_factory=list)
    hlt: list[Rule] = field(default_factory=list)


ISO = {"": None, "VH": 0.97, "VHI": 0.9, "I": 0.92, "HI": 0.9, "IM": 0.9}
EM_THRESHOLDS = {3: "", 7: "", 8: "VH", 10: "VH", 12: "", 15: "VH", 18: "VHI", 20: "VH", 22: "VHI", 24: "VHI", 26: "VHI",
                 30: "VHI"}
EM_UNPRESCALED = 20
MU_THRESHOLDS = (3, 4, 5, 6, 8, 10, 11, 14, 15, 18, 20, 21)
MU_FLAVOURS = ("", "V", "F", "FCH", "VF")
MU_UNPRESCALED = 14
J_THRESHOLDS = (12, 15, 20, 25, 30, 40, 50, 75, 85, 100, 120, 400)
J_ETAS = ("", ".0ETA25", ".31ETA49")
J_UNPRESCALED = 100
XE_THRESHOLDS = (10, 20, 30, 35, 40, 45, 50, 55, 60, 70, 80, 150, 300)
XE_UNPRESCALED = 50
TAU_THRESHOLDS = (8, 12, 20, 30, 40, 60, 100)
TAU_UNPRESCALED = 60


def _l1_rules(variant: int) -> list[Rule]:
    rules: list[Rule] = []
    for thr, flav in EM_THRESHOLDS.items():
        for f in sorted({"", flav, "VH", "VHI", "I"}):
            q = (("e_iso", ISO[f]),) if ISO[f] else ()
            rules.append(Rule(f"L1_EM{thr}{f}", (("eg1", thr),), q, unprescaled=thr >= EM_UNPRESCALED))
    for thr in (3, 7, 8, 10, 12, 15, 20):
        for f in ("", "VH"):
            q = (("e_iso", ISO[f]),) if ISO[f] else ()
            rules.append(Rule(f"L1_2EM{thr}{f}", (("e2", thr),), q, unprescaled=thr >= 15))
    for thr in MU_THRESHOLDS:
        for f in MU_FLAVOURS:
            q = (("mu_q", {"": 0.99, "V": 0.97, "F": 0.95, "FCH": 0.93, "VF": 0.94}[f]),)
            rules.append(Rule(f"L1_MU{thr}{f}", (("mu1", thr),), q, unprescaled=thr >= MU_UNPRESCALED))
    for thr in (3, 4, 5, 6, 8, 10):
        for f in ("", "F", "VF"):
            rules.append(Rule(f"L1_2MU{thr}{f}", (("mu2", thr),), unprescaled=thr >= 8))
    for thr in J_THRESHOLDS:
        for eta in J_ETAS:
            rules.append(Rule(f"L1_J{thr}{eta}", (("j1", thr * (1.1 if eta else 1.0)),), unprescaled=thr >= J_UNPRESCALED))
    for thr in (10, 15, 20, 25, 35, 50):
        rules.append(Rule(f"L1_3J{thr}", (("j3", thr),), unprescaled=thr >= 50))
        rules.append(Rule(f"L1_4J{thr}", (("j4", thr),), unprescaled=thr >= 15))
    for thr in XE_THRESHOLDS:
        rules.append(Rule(f"L1_XE{thr}", (("met", thr),), unprescaled=thr >= XE_UNPRESCALED))
    for thr in TAU_THRESHOLDS:
        for f in ("", "IM"):
            q = (("tau_iso", ISO[f]),) if ISO[f] else ()
            rules.append(Rule(f"L1_TAU{thr}{f}", (("tau1", thr),), q, unprescaled=thr >= TAU_UNPRESCALED))
    for ht in (150, 190, 200, 300, 400, 500, 650):
        rules.append(Rule(f"L1_HT{ht}-J15s5pETA21", (("ht", ht),), unprescaled=ht >= 190))
    combos = [
        ("L1_EM15VH_MU8F", (("eg1", 15), ("mu1", 8))), ("L1_EM7_MU10", (("eg1", 7), ("mu1", 10))),
        ("L1_J40_XE50", (("j1", 40), ("met", 50))), ("L1_J40_XE60", (("j1", 40), ("met", 60))),
        ("L1_MU14FCH_J40", (("mu1", 14), ("j1", 40))), ("L1_EM18VHI_MJJ-300", (("eg1", 18), ("j3", 30))),
        ("L1_TAU20IM_2TAU12IM", (("tau1", 20), ("tau2", 12))), ("L1_TAU60_2TAU40", (("tau1", 60), ("tau2", 40))),
        ("L1_TAU20IM_2TAU12IM_J25_2J20_3J12", (("tau1", 20), ("tau2", 12), ("j3", 12))),
        ("L1_MU8F_TAU20IM", (("mu1", 8), ("tau1", 20))), ("L1_EM15VHI_2TAU12IM", (("eg1", 15), ("tau2", 12))),
        ("L1_2EM15VHI", (("e2", 15),)), ("L1_3MU3VF", (("mu2", 3),)),
        ("L1_MJJ-500-NFF", (("j3", 30), ("ht", 150))), ("L1_MJJ-700", (("j3", 35), ("ht", 200))),
        ("L1_DR-TAU20ITAU12I-J25", (("tau1", 20), ("tau2", 12))), ("L1_BPH-2M9-2MU3_BPH-0DR15-2MU3", (("mu2", 3),)),
    ]
    rules += [Rule(n, c, unprescaled=True) for n, c in combos]
    rules += [
        Rule("L1_RD0_FILLED", (("mbts", -1.0),), stream="MinBias", unprescaled=False),
        Rule("L1_RD0_EMPTY", (("mbts", 2.0),), unprescaled=False),
        Rule("L1_ZB", (("mbts", 0.5),), unprescaled=False),
        Rule("L1_MBTS_1", (("mbts", 0.05),), unprescaled=False),
        Rule("L1_MBTS_2", (("mbts", 0.1),), unprescaled=False),
        Rule("L1_MBTS_1_1", (("mbts", 0.15),), unprescaled=False),
        Rule("L1_LUCID", (("mbts", 0.3),), unprescaled=False),
        Rule("L1_BCM_AC_CA_BGRP0", (("mbts", 2.0),), unprescaled=False),
    ]
    if variant:  # a later menu: a few new items, a few retired, so bits move between SMKs
        rules = [r for r in rules if not r.name.startswith("L1_HT150")]
        rules.insert(5, Rule("L1_EM22VHIM", (("eg1", 22),), (("e_iso", 0.88),)))
        rules.insert(40, Rule("L1_MU18VFCH", (("mu1", 18),), (("mu_q", 0.93),)))
    return rules


def _hlt_rules(variant: int) -> list[Rule]:
    rules: list[Rule] = []

    def em_seed(thr: int) -> str:
        best = max(t for t in EM_THRESHOLDS if t <= max(3, thr - 4))
        return f"L1_EM{best}{EM_THRESHOLDS[best]}"

    ids = {"lhvloose": 0.99, "lhloose": 0.96, "lhmedium": 0.92, "lhtight": 0.85}
    isos = {"": None, "_ivarloose": 0.9, "_ivarmedium": 0.85}
    for thr in (5, 7, 9, 12, 14, 15, 17, 20, 24, 26, 28, 60, 70, 80, 120, 140, 300):
        for idn, idc in ids.items():
            for iso, isoc in isos.items():
                if iso and thr > 60:
                    continue
                q = (("e_id", idc),) + ((("e_iso", isoc),) if isoc else ())
                seed = "L1_EM22VHI" if thr >= 26 else em_seed(thr)
                primary = (thr >= 26 and idn == "lhtight" and iso) or (thr >= 60 and idn == "lhmedium") or thr >= 140
                rules.append(Rule(f"HLT_e{thr}_{idn}{iso}_L1{seed[3:]}", (("e1", thr),), q, seed, unprescaled=primary))
    for thr in (10, 15, 20, 25, 35, 40, 45, 50, 60, 80, 100, 120, 140, 200, 300):
        for idn in ("loose", "medium", "tight"):
            seed = "L1_EM22VHI" if thr >= 35 else em_seed(thr)
            rules.append(Rule(f"HLT_g{thr}_{idn}_L1{seed[3:]}", (("g1", thr),), (("g_id", ids['lh' + idn]),), seed,
                              unprescaled=thr >= 140))
    for thr in (12, 17, 22, 24):
        rules.append(Rule(f"HLT_2e{thr}_lhvloose_L12EM{min(thr - 2, 20) if thr > 12 else 10}VH",
                          (("e2", thr),), (("e_id", 0.99),), "L1_2EM15VH" if thr > 12 else "L1_2EM10VH",
                          unprescaled=thr >= 17))
    for thr in (4, 6, 8, 10, 14, 18, 20, 22, 24, 26, 40, 50, 60, 80):
        for iso in ("", "_ivarloose", "_ivarmedium", "_ivartight"):
            if iso and thr > 40:
                continue
            seed = "L1_MU14FCH" if thr >= 24 else f"L1_MU{max(t for t in MU_THRESHOLDS if t <= max(3, thr - 4))}"
            isoc = {"": None, "_ivarloose": 0.93, "_ivarmedium": 0.88, "_ivartight": 0.82}[iso]
            q = (("mu_iso", isoc),) if isoc else ()
            primary = (thr >= 24 and iso == "_ivarmedium") or thr >= 50
            rules.append(Rule(f"HLT_mu{thr}{iso}_L1{seed[3:]}", (("mu1", thr),), q, seed, unprescaled=primary))
    for thr in (4, 6, 10, 14, 15, 20):
        rules.append(Rule(f"HLT_2mu{thr}_L12MU{min(thr, 10) if thr < 14 else 8}F", (("mu2", thr),), (),
                          "L1_2MU8F" if thr >= 14 else "L1_2MU4", unprescaled=thr >= 14))
    rules.append(Rule("HLT_mu22_mu8noL1_L1MU14FCH", (("mu1", 22), ("mu2", 8)), (), "L1_MU14FCH"))
    rules.append(Rule("HLT_e17_lhloose_mu14_L1EM15VH_MU8F", (("e1", 17), ("mu1", 14)), (("e_id", 0.96),),
                      "L1_EM15VH_MU8F"))
    for thr in (15, 25, 35, 45, 60, 85, 110, 150, 175, 200, 260, 300, 360, 380, 400, 420, 440, 460, 480, 500):
        seed = next(f"L1_J{t}" for t in reversed(J_THRESHOLDS) if t <= max(12, thr * 0.3)) if thr < 420 else "L1_J100"
        for reco in ("", "_pf_ftf", "_a10_lcw_subjes", "_a10t_lcw_jes", "_0eta290_020jvt_pf_ftf_boffperf"):
            primary = thr >= 420 and reco in ("", "_pf_ftf") or thr >= 460
            rules.append(Rule(f"HLT_j{thr}{reco}_L1{seed[3:]}", (("j1", thr),), (), seed, unprescaled=primary))
    for thr in (45, 60, 85, 100, 120):
        rules.append(Rule(f"HLT_4j{thr}_L13J50", (("j4", thr),), (), "L1_3J50", unprescaled=thr >= 120))
        rules.append(Rule(f"HLT_3j{thr}_L13J50", (("j3", thr),), (), "L1_3J50", unprescaled=thr >= 120))
    for thr in (35, 55, 70, 80, 90, 100, 110, 120):
        for alg in ("pufit", "tcpufit", "cell", "mht", "trkmht", "pfopufit", "cvfpufit"):
            rules.append(Rule(f"HLT_xe{thr}_{alg}_L1XE50", (("met", thr),), (), "L1_XE50",
                              unprescaled=thr >= 110))
    for thr in (25, 35, 60, 80, 125, 160, 180, 200):
        for idn in ("medium1_tracktwo", "mediumRNN_tracktwoMVA", "looseRNN_tracktwoMVA", "idperf_tracktwo"):
            seed = "L1_TAU100" if thr >= 160 else ("L1_TAU60" if thr >= 80 else "L1_TAU20IM" if thr >= 35 else "L1_TAU12")
            rules.append(Rule(f"HLT_tau{thr}_{idn}_L1{seed[3:]}", (("tau1", thr),), (("tau_iso", 0.9),), seed,
                              unprescaled=thr >= 160 and "RNN" in idn))
    rules.append(Rule("HLT_tau35_medium1_tracktwo_tau25_medium1_tracktwo_L1TAU20IM_2TAU12IM",
                      (("tau1", 35), ("tau2", 25)), (), "L1_TAU20IM_2TAU12IM"))
    for name, seed in (("HLT_mb_sptrk_L1RD0_FILLED", "L1_RD0_FILLED"), ("HLT_mb_sp_L1RD0_FILLED", "L1_RD0_FILLED"),
                       ("HLT_mb_sptrk_L1MBTS_1", "L1_MBTS_1"), ("HLT_mb_mbts_L1MBTS_1_1", "L1_MBTS_1_1"),
                       ("HLT_noalg_mb_L1RD0_FILLED", "L1_RD0_FILLED"), ("HLT_mb_sptrk_pt2_L1MBTS_2", "L1_MBTS_2")):
        rules.append(Rule(name, (("mbts", -1.0),), (), seed, stream="MinBias", unprescaled=False))
    for name, seed in (("HLT_noalg_zb_L1ZB", "L1_ZB"), ("HLT_noalg_L1RD0_EMPTY", "L1_RD0_EMPTY"),
                       ("HLT_noalg_L1LUCID", "L1_LUCID")):
        rules.append(Rule(name, (("mbts", -1.0),), (), seed, stream="MinBias", unprescaled=False))
    if variant:
        rules = [r for r in rules if not r.name.startswith("HLT_g10_")]
        rules.insert(3, Rule("HLT_e26_lhtight_ivarloose_L1EM22VHIM", (("e1", 26),), (("e_id", 0.85), ("e_iso", 0.9)),
                             "L1_EM22VHIM"))
    return rules


def menu_rules(variant: int = 0) -> MenuRules:
    return MenuRules(_l1_rules(variant), _hlt_rules(variant))


def build_menu(smk: int, variant: int = 0) -> tuple[TriggerMenu, MenuRules]:
    rules = menu_rules(variant)
    menu = TriggerMenu(
        smk=smk,
        name=f"Physics_pp_v7{'_primaries' if variant else ''}",
        l1_items=tuple(r.name for r in rules.l1),
        hlt_chains=tuple(r.name for r in rules.hlt),
        hlt_seeds={r.name: r.seed for r in rules.hlt},
        hlt_streams={r.name: r.stream for r in rules.hlt},
    )
    return menu, rules


def prescale_sets(rules: MenuRules, l1_key: int, hlt_key: int, relax: float) -> tuple[PrescaleSet, PrescaleSet]:
    """Prescales that keep primaries at 1 and thin supporting triggers; ``relax`` < 1 lowers them late in a fill."""

    def ps(rule: Rule, base: float) -> float:
        if rule.unprescaled:
            return 1.0
        if rule.stream in ("MinBias", "ZeroBias") or rule.name.startswith(("L1_RD0", "L1_MBTS", "L1_ZB", "L1_LUCID")):
            return max(1.0, round(base * relax))
        lowest = min((t for _, t in rule.cuts), default=1.0)
        return max(1.0, round(base * relax * (40.0 / max(lowest, 4.0)) ** 2))

    l1 = PrescaleSet(l1_key, "L1", {r.name: ps(r, 400.0 if r.cuts[0][0] == "mbts" else 2.0) for r in rules.l1})
    hlt = PrescaleSet(hlt_key, "HLT", {r.name: ps(r, 1.0) for r in rules.hlt})
    return l1, hlt
