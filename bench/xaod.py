"""Producer on real ATLAS xAOD files with trigger decisions, beside a bare uproot read of the same branches.

    python -m bench.xaod [--copies 200] [--repeat 3] [--world-events 70000] [--out bench/results/xaod.md]

Volume: ``--copies`` copies of the real file ``tests/data/atlas/DAOD_PHYSLITE.run2-mc16.pool.root`` (40 events each,
all with the same FID) in a temporary directory, one MC dataset. On ONE core (CPU affinity and Arrow thread pools set
to 1), best of ``--repeat``, ours and the peer interleaved (alternating which goes first) so machine load hits both:

- ours: ``index_file`` on every copy, then the records concatenated and written to one Parquet file with the
  producer's options, as ``produce`` does for one job (``produce`` itself refuses the copies' duplicate GUIDs);
- peer: per copy, ``uproot.open`` and ``arrays(library="ak")`` of the branches the producer needs (EventInfo,
  ``xTrigDecisionAux.``, ``TrigConfKeys``, the ``MetaData`` trigger menu, ``##Params``), kept in memory, nothing else.

Second row (``--world-events 0`` skips it): the simulated world's own files (one data run plus MC), same two sides
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


def ours(jobs: list[tuple[str, list[Path]]], staging: Path) -> None:
    """One producer job per dataset: index every file, concatenate, write one Parquet file as ``produce`` does."""
    staging.mkdir(parents=True, exist_ok=True)
    for k, (name, paths) in enumerate(jobs):
        ds = naming.parse(name)
        tables = [index_file(p, ds).table for p in paths]
        pq.write_table(pa.concat_tables(tables), staging / f"job{k}.parquet", **PARQUET_OPTIONS)


def peer_xaod(paths: list[Path]) -> list:
    kept = []
    for p in paths:
        with uproot.open(p) as h:
            kept.append((h["CollectionTree"].arrays(EVENT_BRANCHES, library="ak"),
                         h["MetaData"].arrays(MENU_BRANCHES, library="ak"),
                         h["##Params"]["db_string"].array(library="ak")))
    return kept


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


def row(label: str, events: int, files: int, best: dict[str, float]) -> str:
    o, p = events / best["ours"], events / best["peer"]
    return (f"| {label} | {events:,} | {files:,} | {o:,.0f} | {p:,.0f} | {o / p:.0%} | "
            f"{best['ours']:.2f} | {best['peer']:.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=200, help="copies of the real xAOD file (40 events each)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for each side")
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
        seq = itertools.count()  # a fresh staging folder per round
        rows = []
        best = race({"ours": lambda: ours([(NAME, copies)], work / f"staging-{next(seq)}"),
                     "peer": lambda: peer_xaod(copies)}, args.repeat)
        rows.append(row("real xAOD (PHYSLITE mc16, with xTrigDecision + menu)", per_file * len(copies), len(copies),
                        best))
        shutil.rmtree(work / "xaod")
        if world is not None:
            jobs = [(ds["name"], [work / "world" / f["path"] for f in ds["files"]]) for ds in world["datasets"]]
            best = race({"ours": lambda: ours(jobs, work / f"staging-{next(seq)}"),
                         "peer": lambda: peer_world(world, work / "world")}, args.repeat)
            rows.append(row(f"simulated world ({len(jobs)} datasets, our TTree `events`)", world["nevents"],
                            world["nfiles"], best))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    md = [
        f"Producer on xAOD files, one core, best of {args.repeat} (ours and peer interleaved). "
        "Ours: `index_file` per file, records concatenated and written to one Parquet file per dataset with the "
        "producer's options (as one `produce` job). Peer: bare uproot read (`library=\"ak\"`, kept in memory) of the "
        "same branches. Target: ours >= 80% of the peer. Each file holds 40 events, so opening it (uproot reads the "
        "layout of 1,581 branches) is most of both sides' time.",
        "",
        f"`python -m bench.xaod --copies {args.copies} --repeat {args.repeat} --world-events {args.world_events}`",
        "",
        "| input | events | files | ours events/s | peer events/s | ours/peer | ours s | peer s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
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
