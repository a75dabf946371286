"""Event-picking benchmark: a 136k-event request (the size of the second ATLAS gamma-gamma -> WW picking round).

    python -m bench.picking [--catalog-events 20000000] [--request 136000]

1. Planning (lookup + GUID resolution through the data catalogue) over a catalogue of N synthetic AOD events
   (bench.catalog's generator), timed; the peer is the same plan done one event at a time with single lookups,
   measured on a 2,000-event sample and scaled (what a naive client of a lookup service would do).
2. End to end with the local backend on the demo world: plan, extract every found event into output ROOT
   files, verify.
3. The same request through the PanDA backend: jobs submitted with panda-client to the PanDA STAND-IN of
   harness/panda_standin.py on loopback (its pilot runs each job's transformation as a process), polled until finished,
   outputs verified: the cost of the PanDA path (serialisation, HTTP, one process per job, polling) next to local.
Parts 2 and 3 run the request with the one runner of its steps (``PickRunner.run``), as the demo and the tests do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog-events", type=int, default=20_000_000)
    ap.add_argument("--request", type=int, default=136_000)
    ap.add_argument("--out", default="bench/results/picking.json")
    ap.add_argument("--no-panda", action="store_true", help="skip part 3")
    args = ap.parse_args()
    from bench.catalog import make_dataset, trigger_pool
    from eventindex import picking
    from eventindex.catalog.embedded import EmbeddedCatalog
    from eventindex.catalog.loader import load_staged
    from eventindex.ddm import LocalRucio
    from eventindex.guid import format_guid
    from eventindex.sim.world import WorldConfig
    from eventindex.trigger import masks_from_arrow

    from .worlds import produced_world

    work = Path(tempfile.mkdtemp(prefix="ei-bench-pick-"))
    result = {}
    try:
        # 1. planning over a large synthetic catalogue
        rng = np.random.default_rng(11)
        menu, pool = trigger_pool(20_000)
        from eventindex.metadata import upgrade as db_upgrade

        db_upgrade(f"sqlite:///{work / 'meta.sqlite'}")  # opening never migrates
        cat = EmbeddedCatalog(work / "cat", f"sqlite:///{work / 'meta.sqlite'}")
        ddm = LocalRucio(f"sqlite:///{work / 'rucio.sqlite'}")
        per = 200_000
        sample = []
        runs = 350000 + np.cumsum(rng.integers(5, 50, max(1, args.catalog_events // per)))
        for k, run in enumerate(int(r) for r in runs):
            name, table, _ = make_dataset(rng, k, run, per, pool)
            cat.load(name, table)
            guids = np.unique(masks_from_arrow(table.column("AOD_guid")), axis=0)
            ddm.register_dataset("data18_13TeV", name, [
                {"scope": "data18_13TeV", "name": f"AOD.{k}._{i:06d}.pool.root",
                 "meta": {"guid": format_guid(g.tobytes()), "events": 10_000},
                 "pfn": f"file:///nonexistent/AOD.{k}._{i:06d}.pool.root"} for i, g in enumerate(guids)], "LOCAL_DISK")
            ev = table.column("event_number").to_numpy()
            sample += [(run, int(e)) for e in ev[rng.integers(0, per, args.request // len(runs) + 1)]]
        pairs = np.array(sample[: args.request], dtype=np.uint64)
        text = "\n".join(f"{r} {e}" for r, e in pairs.tolist())
        t = time.perf_counter()
        req = picking.PickRequest.from_params({"events": text, "datatype": "AOD"}, inline_cap=picking.MAX_REQUEST_BYTES)
        plan = picking.plan(cat, ddm, req)
        plan_s = time.perf_counter() - t
        probe = pairs[:2000]
        t = time.perf_counter()
        for r, e in probe.tolist():
            cat.lookup(r, e, datatype="AOD")
        naive_s = (time.perf_counter() - t) / len(probe) * len(pairs)
        result["planning"] = {"catalog_events": len(runs) * per, "request": len(pairs),
                              "found": len(plan.found), "files": len(plan.files), "jobs": len(plan.jobs),
                              "plan_s": round(plan_s, 2),
                              "peer_single_lookups_s_scaled": round(naive_s, 2)}
        del cat, pool
        # 2. end to end on the demo world (real ROOT files)
        home = work / "world-home"
        world, staging, ddm2, _ = produced_world(home, WorldConfig())
        from eventindex.metadata import upgrade as db_upgrade

        db_upgrade(f"sqlite:///{home / 'meta.sqlite'}")  # opening never migrates
        cat2 = EmbeddedCatalog(home / "cat", f"sqlite:///{home / 'meta.sqlite'}")
        load_staged(cat2, str(staging))
        from eventindex.catalog import make_selection

        keys = []
        for batch in cat2.select(make_selection(datatype="AOD", version="f961_m1831"), ["run_number", "event_number"]):
            keys += list(zip(batch.column("run_number").to_pylist(), batch.column("event_number").to_pylist()))
        keys = sorted(set(keys))
        chosen = [keys[i] for i in sorted(rng.choice(len(keys), min(args.request, len(keys)), replace=False))]
        text = "\n".join(f"{r} {e}" for r, e in chosen)
        from eventindex.metadata import make_engine

        engine = make_engine(f"sqlite:///{home / 'meta.sqlite'}")
        params = {"events": text, "datatype": "AOD", "version": "f961_m1831"}
        t = time.perf_counter()
        local = picking.PickRunner(cat2, ddm2, engine, str(work / "work"), home / "out", "bench-local").run(
            picking.PickRequest.from_params({**params, "output": "user.bench.local.AOD"},
                                            inline_cap=picking.MAX_REQUEST_BYTES))
        total = time.perf_counter() - t
        result["end_to_end_local"] = {"world_events": world["nevents"], "request": len(chosen),
                                      "found": local["found"], "files_in": local["input_files"],
                                      "files_out": len(local["files"]),
                                      "total_s": round(total, 2), "verified": {"duplicates": local["duplicates"]}}
        if not args.no_panda:
            request = picking.PickRequest.from_params({**params, "output": "user.bench.panda.AOD", "backend": "panda"},
                                                      inline_cap=picking.MAX_REQUEST_BYTES)
            result["end_to_end_panda_standin"] = _panda(picking.PickRunner(
                cat2, ddm2, engine, str(work / "work"), home / "panda-out", "bench-panda"), request, work / "grid")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    p, e = result["planning"], result["end_to_end_local"]
    md = "\n".join([
        "| measure | ours | peer |", "|---|---:|---:|",
        f"| plan {p['request']:,} events over {p['catalog_events']:,} (lookup + GUID resolution), s | {p['plan_s']} | "
        f"{p['peer_single_lookups_s_scaled']} (one lookup per event, scaled) |",
        f"| end to end, local backend, {e['request']:,} events of the demo world ({e['files_in']} input files -> "
        f"{e['files_out']} outputs, verified), s | {e['total_s']} | - |",
    ] + ([f"| the same through the PanDA backend (panda-client -> PanDA stand-in on loopback, {q['jobs']} jobs, poll "
          f"every {q['poll_s']} s, verified), s | {q['total_s']} | {e['total_s']} (local backend) |"]
         if (q := result.get("end_to_end_panda_standin")) else []))
    Path(args.out).with_suffix(".md").write_text(md + "\n")
    print(md)


def _panda(runner, request, grid: Path) -> dict:
    """The request through panda-client and the stand-in (jobs polled every 0.5 s), verified."""
    import secrets

    from eventindex import panda
    from eventindex_harness.panda_standin import PandaStandIn

    grid.mkdir(parents=True, exist_ok=True)
    standin = PandaStandIn(grid, token=secrets.token_urlsafe(24))
    url = standin.start()
    token = grid / "token"
    token.write_text(standin.token)
    cfg = panda.PandaConfig(url, auth="oidc", vo="atlas", poll_seconds=0.5, token_file=str(token))
    try:
        t = time.perf_counter()
        summary = runner.run(request, panda.PandaJobs(cfg))
        return {"jobs": len(summary["files"]), "poll_s": cfg.poll_seconds,
                "total_s": round(time.perf_counter() - t, 2), "verified": {"duplicates": summary["duplicates"]}}
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
