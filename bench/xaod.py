"""Producer on real ATLAS xAOD files with trigger decisions, beside a bare uproot read of the same branches.

    python -m bench.xaod [--copies 200] [--repeat 3] [--world-events 70000] [--out bench/results/xaod.md]

Volume: ``--copies`` copies of the real file ``tests/data/atlas/DAOD_PHYSLITE.run2-mc16.pool.root`` (40 events each,
all with the same FID) in a temporary directory, one MC dataset. On ONE core (CPU affinity and Arrow thread pools set
to 1), best of ``--repeat``, ours and the peer interleaved (alternating which goes first) so machine load hits both:

- ours: ``index_file`` on every copy, then the records concatenated and written to one Parquet file with the
  producer's options, as ``produce`` does for one job (``produce`` itself refuses the copies' duplicate GUIDs);
- peer: per copy, ``uproot.open`` and ``arrays(library="ak")`` of the branches the producer needs (EventInfo,
  ``xTrigDecisionAux.``, ``TrigConfKeys``, the ``MetaData`` trigger menu, ``##Params``), kept in memory, nothing else.

Second row (``--run3-events 0`` skips it): one Run-3-layout RNTuple file of ``--run3-events`` events written here
(``tests/xaod_run3.py``: a 2,500-chain JSON menu, HLT words of 80 uint32), where the per-event work, not the file's
layout, sets the rate; peer: the same fields read with uproot.

Third row (``--world-events 0`` skips it): the simulated world's own files (one data run plus MC), same two sides
(peer: the index, MC and provenance branches of TTree ``events``). Target: ours >= 80% of the peer's events/s.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import uproot

from bench.catalog import timed
from bench.producer import one_core
from eventindex import naming
from eventindex.producer import PARQUET_OPTIONS, index_file
from eventindex.rootfile import EVENTS_TREE, INDEX_BRANCHES, MC_BRANCHES
from eventindex.sim.world import WorldConfig, simulate

SOURCE = Path("tests/data/atlas/DAOD_PHYSLITE.run2-mc16.pool.root")
NAME = "mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYSLITE.e6337_s3126_r10201_p4172"
EVENT_BRANCHES = [
    *(f"EventInfoAux./EventInfoAux.{a}" for a in
      ("runNumber", "eventNumber", "lumiBlock", "bcid", "timeStamp", "timeStampNSOffset", "streamTagNames")),
    "EventInfoAuxDyn.mcChannelNumber", "EventInfoAuxDyn.mcEventWeights",
    *(f"xTrigDecisionAux./xTrigDecisionAux.{a}" for a in
      ("smk", "tbp", "tap", "tav", "efPassedPhysics", "efPrescaled", "efResurrected")),
    "TrigConfKeys",
]
MENU_BRANCHES = [f"TriggerMenuAux./TriggerMenuAux.{a}" for a in
                 ("smk", "l1psk", "hltpsk", "itemCtpIds", "itemNames", "chainIds", "chainNames", "chainParentNames")]


def ours(jobs: list[tuple[str, list[Path]]], staging: Path | None) -> None:
    """One producer job per dataset: index every file (read and decode), concatenate and, with ``staging``, write
    one Parquet file as ``produce`` does."""
    for k, (name, paths) in enumerate(jobs):
        ds = naming.parse(name)
        table = pa.concat_tables([index_file(p, ds).table for p in paths])
        if staging is not None:
            staging.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, staging / f"job{k}.parquet", **PARQUET_OPTIONS)


def peer_xaod(paths: list[Path]) -> list:
    kept = []
    for p in paths:
        with uproot.open(p) as h:
            kept.append((h["CollectionTree"].arrays(EVENT_BRANCHES, library="ak"),
                         h["MetaData"].arrays(MENU_BRANCHES, library="ak"),
                         h["##Params"]["db_string"].array(library="ak")))
    return kept


RUN3_NAME = "data23_13p6TeV.00451587.physics_Main.merge.AOD.f1357_m2173"
RUN3_FIELDS = [*(f"EventInfoAuxDyn:{a}" for a in ("runNumber", "eventNumber", "lumiBlock", "bcid", "timeStamp",
                                                   "timeStampNSOffset", "streamTagNames")),
               *(f"xTrigDecisionAux:{a}" for a in ("smk", "tbp", "tap", "tav", "efPassedPhysics", "efPrescaled",
                                                   "efResurrected")), "TrigConfKeys"]


def write_run3_file(path: Path, events: int) -> None:
    import uuid

    from tests.xaod_run3 import data_info, make_menu, write_run3

    write_run3(path, str(uuid.uuid4()).upper(), data_info(events, 451587), [make_menu(3201, seed=1)])


def peer_run3(path: Path) -> list:
    with uproot.open(path) as h:
        return [h["EventData"].arrays(RUN3_FIELDS, library="ak"),
                h["MetaData"].arrays(library="ak"), h["##Params"]["db_string"].array(library="ak")]


def peer_world(world: dict, world_dir: Path) -> list:
    kept = []
    for ds in world["datasets"]:
        wanted = list(INDEX_BRANCHES) + (list(MC_BRANCHES) if "dsid" in ds else [])
        for f in ds["files"]:
            with uproot.open(world_dir / f["path"]) as h:
                tree = h[EVENTS_TREE]
                kept.append(tree.arrays(wanted + [b for b in tree.keys() if b.startswith("prov_")], library="ak"))
                kept.append(h["##Params"]["db_string"].array(library="ak"))
    return kept


def race(sides: dict, repeat: int) -> dict[str, float]:
    """Best seconds of each side, the sides interleaved and their order alternated between rounds."""
    best = {name: float("inf") for name in sides}
    names = list(sides)
    for i in range(repeat):
        for name in (names if i % 2 == 0 else names[::-1]):
            best[name] = min(best[name], timed(sides[name], 1))
    return best


def sides(jobs: list[tuple[str, list[Path]]], peer, seq) -> dict:
    return {"ours": lambda: ours(jobs, None), "written": lambda: ours(jobs, Path(f"{seq[0]}-{next(seq[1])}")),
            "peer": peer}


def row(label: str, events: int, files: int, best: dict[str, float]) -> str:
    o, w, p = (events / best[k] for k in ("ours", "written", "peer"))
    return (f"| {label} | {events:,} | {files:,} | {o:,.0f} | {o / p:.0%} | {w:,.0f} | {w / p:.0%} | {p:,.0f} | "
            f"{best['ours']:.2f} | {best['written']:.2f} | {best['peer']:.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=200, help="copies of the real xAOD file (40 events each)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for each side")
    ap.add_argument("--run3-events", type=int, default=100_000, help="events of the Run-3-layout file (0: no row)")
    ap.add_argument("--world-events", type=int, default=70_000,
                    help="events of the simulated world's data run for the second row (0: no second row)")
    ap.add_argument("--out", default="bench/results/xaod.md")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ei-bench-xaod-"))
    try:
        copies = []
        for i in range(args.copies):
            copies.append(work / "xaod" / f"DAOD_PHYSLITE.run2-mc16._{i + 1:06d}.pool.root")
            copies[-1].parent.mkdir(exist_ok=True)
            shutil.copyfile(SOURCE, copies[-1])
        with uproot.open(SOURCE) as h:
            per_file = h["CollectionTree"].num_entries
        world = simulate(work / "world", WorldConfig(runs=1, events_per_run=args.world_events)) \
            if args.world_events > 0 else None
        one_core()
        seq = (work / "staging", itertools.count())  # a fresh staging folder per round
        rows = []
        best = race(sides([(NAME, copies)], lambda: peer_xaod(copies), seq), args.repeat)
        rows.append(row("real xAOD (PHYSLITE mc16, with xTrigDecision + menu)", per_file * len(copies), len(copies),
                        best))
        shutil.rmtree(work / "xaod")
        if args.run3_events > 0:
            run3 = work / "run3" / "AOD.36000001._000001.pool.root.1"
            run3.parent.mkdir()
            write_run3_file(run3, args.run3_events)
            best = race(sides([(RUN3_NAME, [run3])], lambda: peer_run3(run3), seq), args.repeat)
            rows.append(row("Run-3-layout RNTuple (2,500-chain JSON menu, 80 HLT words)", args.run3_events, 1, best))
        if world is not None:
            jobs = [(ds["name"], [work / "world" / f["path"] for f in ds["files"]]) for ds in world["datasets"]]
            best = race(sides(jobs, lambda: peer_world(world, work / "world"), seq), args.repeat)
            rows.append(row(f"simulated world ({len(jobs)} datasets, our TTree `events`)", world["nevents"],
                            world["nfiles"], best))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    md = [
        f"Producer on xAOD files, one core, best of {args.repeat} (ours and peer interleaved). "
        "Ours: `index_file` per file (read and decode) and the records concatenated; then also written to one "
        "Parquet file per dataset with the producer's options (as one `produce` job). Peer: bare uproot read (`library=\"ak\"`, kept in memory) of the "
        "same branches. Target: ours >= 80% of the peer. Each file holds 40 events, so opening it (uproot reads the "
        "layout of 1,581 branches) is most of both sides' time.",
        "",
        f"`python -m bench.xaod --copies {args.copies} --repeat {args.repeat} --run3-events {args.run3_events} "
        f"--world-events {args.world_events}`",
        "",
        "| input | events | files | ours: read + decode, events/s | vs peer | ours + Parquet write, events/s | "
        "vs peer | peer: bare read, events/s | ours s | ours + write s | peer s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, uproot {uproot.__version__}, "
        f"{platform.platform()}",
    ]
    text = "\n".join(md)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
