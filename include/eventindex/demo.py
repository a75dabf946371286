"""The library path of the demo, as step functions, so that the Airflow path (`make demo`, in the Airflow layer) can
run the same steps 1-2 and 4 around its own loading and picking, and both print the same story.

Each step prints what it does on the rich ``console`` it is given; nothing here starts Airflow or imports it.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import BadInput
from .settings import Settings, parse_stomp_url
from .sim.world import WorldConfig

# the demo picks as the service account: what a run nobody triggered (dag.test, the library path) acts as; an
# output goes only to the caller's user scope or a group scope it belongs to
PICK_CALLER = "eventindex"
PICK_OUTPUT = f"user.{PICK_CALLER}.demo.picked.AOD"
PICK_EVENTS, PICK_MISSING = 1000, 20


@dataclass(frozen=True)
class DemoPick:
    """What step 5 picks: the request file written by step 4 and the request's parameters."""

    events_file: Path
    output: str
    datatype: str
    stream: str
    version: str
    source: str

    def request(self):
        """Step 5 as a picking request (the same on both paths)."""
        from .picking import PickRequest, authorize

        return authorize(PickRequest.from_params({"events": self.events_file.read_text(), "datatype": self.datatype,
                                                  "version": self.version, "stream": self.stream,
                                                  "output": self.output}), PICK_CALLER)


def world_config(seed: int = 2018, runs: int | None = None, events_per_run: int | None = None,
                 lumi_blocks: int | None = None, mc_events: int | None = None) -> WorldConfig:
    """The world's defaults with the sizes given; refused before any work if a size is not positive."""
    config = WorldConfig(seed=seed)
    for key, value in (("runs", runs), ("events_per_run", events_per_run), ("lumi_blocks", lumi_blocks),
                       ("mc_events", mc_events)):
        if value is not None:
            setattr(config, key, value)
    if min(config.runs, config.events_per_run, config.lumi_blocks, config.mc_events) < 1:
        raise BadInput("--runs, --events-per-run, --lumi-blocks and --mc-events must be positive")
    return config


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def simulate_world(console: Console, out_dir: Path, config: WorldConfig) -> dict:
    """The simulator with a progress bar; the world dict gets ``_seconds`` (how long it took)."""
    from .sim.world import simulate

    started = time.perf_counter()
    with progress_bar(console) as bar:
        tasks: dict[str, int] = {}

        def progress(stage, done, total):
            label = {"events": "generating runs", "files": "writing ROOT files"}[stage]
            if stage not in tasks:
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        world = simulate(out_dir, config, progress=progress)
        if "events" in tasks:
            bar.update(tasks["events"], completed=config.runs)
    world["_seconds"] = time.perf_counter() - started
    return world


def world_table(world: dict) -> Table:
    table = Table(title=f"world: {world['nevents']:,} events in {world['nfiles']} files, "
                        f"{len(world['datasets'])} datasets")
    for col in ("dataset", "files", "events"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for d in world["datasets"]:
        table.add_row(d["name"], str(len(d["files"])), f"{d['nevents']:,}")
    return table


def _produce_dataset(job) -> list:
    """One dataset's producer jobs: one for a Tier-0 dataset; for a grid dataset of the production system one per
    file, as the jobs of a PanDA task write it (each stages and announces its own part)."""
    from .producer import produce

    world_dir, dataset, staging, stomp_url = job
    files = [str(Path(world_dir) / f["path"]) for f in dataset["files"]]
    target = parse_stomp_url(stomp_url) if stomp_url else None
    if dataset.get("source") != "prodsys" or len(files) < 2:
        return [produce(dataset["name"], files, staging, dataset["task_id"], 1, target)]
    return [produce(dataset["name"], [f], staging, dataset["task_id"], i, target, njobs=len(files))
            for i, f in enumerate(files, start=1)]


def produce_world(world: dict, world_dir: Path, staging: str, stomp_url: str | None, workers: int = 2,
                  progress: Callable[[int, int], None] | None = None) -> list[list]:
    """Every dataset of the world produced by its jobs, ``workers`` datasets at a time (a Tier-0 farm and a grid
    site in miniature); per dataset, the list of its jobs' results."""
    results = []
    jobs = [(str(world_dir), d, staging, stomp_url) for d in world["datasets"]]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(_produce_dataset, jobs):
            results.append(result)
            if progress:
                progress(len(results), len(jobs))
    return results


REAL_FILE = Path(__file__).resolve().parents[2] / "tests" / "data" / "atlas" / "DAOD_PHYSLITE.run2-mc16.pool.root"
REAL_DATASET = "mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYSLITE.e6337_s3126_r10201_p4172"


def produce_real_file(settings: Settings):
    """A real ATLAS xAOD file (Run 2 PHYSLITE, written by Athena) as a dataset of its own: registered in the local
    data catalogue with its GUID (its name does not carry it) and indexed by the same producer."""
    import zlib

    import uproot

    from .ddm import LocalRucio, split_did
    from .producer import produce
    from .rootfile import read_fid

    if not REAL_FILE.exists():
        return None
    with uproot.open(REAL_FILE) as handle:
        guid, events = read_fid(handle), handle["CollectionTree"].num_entries
    data = REAL_FILE.read_bytes()
    scope, name = split_did(REAL_DATASET)
    LocalRucio(settings.local_rucio_url).register_dataset(scope, name, [{
        "scope": scope, "name": REAL_FILE.name, "bytes": len(data), "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
        "meta": {"guid": guid, "events": events}, "pfn": f"file://{REAL_FILE}"}], rse="LOCAL_DISK")
    return produce(REAL_DATASET, [str(REAL_FILE)], settings.staging, 37233417, 52,
                   parse_stomp_url(settings.stomp_url) if settings.stomp_url else None)


def prepare(console: Console, settings: Settings, config: WorldConfig, fresh: bool = False) -> dict:
    """Steps 1-2: the world (reused when its config matches), registered in the local data catalogue, and produced
    into the staging area. The world's conditions (trigger menus, run periods) stay in its conditions source: the
    loader that follows syncs them (``sync_conditions`` here, the eventindex_conditions DAG on the Airflow path)."""
    from .ddm import LocalRucio, register_world
    from .sim.world import load_world

    # as the world's JSON holds it (tuples become lists), so that an unchanged config is recognised
    wanted = json.loads(json.dumps({k: v for k, v in asdict(config).items() if k != "workers"}))
    console.rule("[bold]EventIndex demo (embedded defaults)")
    console.print(f"EVENTINDEX_HOME = {settings.home}")
    from . import metadata

    # as `eventindex db upgrade` does: the demo sets up its home (nothing that merely opens the DB migrates it)
    console.print(f"0. metadata DB schema {metadata.upgrade(settings.metadata_url)} (eventindex db upgrade)")
    world_dir = settings.world_dir
    world = None
    if not fresh:
        try:
            world = load_world(world_dir)
        except FileNotFoundError:
            world = None
        if world is not None and world.get("config") != wanted:
            world = None
    if world is None:
        default_staging = Path(settings.staging) == settings.home / "staging"
        if default_staging and (settings.home / "staging").exists():  # the index of an earlier world
            shutil.rmtree(settings.home / "staging")
        console.print(f"1. simulating the mini-ATLAS world (seed {config.seed}) into {world_dir}")
        world = simulate_world(console, world_dir, config)
        console.print(f"   {world['nevents']:,} events in {world['nfiles']} ROOT files, {len(world['datasets'])} "
                      f"datasets, {world['_seconds']:.1f} s")
    else:
        console.print(f"1. reusing the world in {world_dir} ({world['nevents']:,} events; --fresh to regenerate)")
    n = register_world(LocalRucio(settings.local_rucio_url), world, world_dir)
    console.print(f"   {n} datasets registered in the local data catalogue (Rucio interface) "
                  f"{settings.home / 'rucio.sqlite'}")
    console.print(f"2. producing index records into the staging area {settings.staging}")
    started = time.perf_counter()
    with progress_bar(console) as bar:
        task = bar.add_task("indexing datasets", total=len(world["datasets"]))
        results = produce_world(world, world_dir, settings.staging, settings.stomp_url,
                                progress=lambda done, total: bar.update(task, completed=done))
    seconds = time.perf_counter() - started
    real = produce_real_file(settings)
    table = Table(title="producer jobs")
    for col in ("dataset", "jobs", "files", "events", "unique", "Parquet"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for jobs in results + ([[real]] if real else []):
        table.add_row(jobs[0].dataset, str(len(jobs)), str(sum(len(r.files) for r in jobs)),
                      f"{sum(r.nevents for r in jobs):,}", f"{sum(r.unique_events for r in jobs):,}",
                      f"{sum(r.summary['bytes'] for r in jobs) / 1e6:.2f} MB")
    console.print(table)
    total = sum(r.nevents for jobs in results for r in jobs)
    size = sum(r.summary["bytes"] for jobs in results for r in jobs)
    console.print(f"   {total:,} events indexed in {seconds:.1f} s ({total / seconds:,.0f} events/s on 2 workers), "
                  f"{size / total:.1f} bytes/event in Parquet; grid datasets written by several jobs, one part each")
    if real:
        console.print(f"   and a real ATLAS file: {REAL_FILE.name} ({real.nevents} events, GUID {real.files[0]['guid']}, "
                      "trigger decisions from its xTrigDecision, menu from its metadata)", highlight=False)
    console.print("   announced over STOMP" if settings.stomp_url else
                  "   no broker configured (EVENTINDEX_STOMP_URL): the staging area is the hand-over")
    return world


def conditions_held(settings: Settings, seconds: float) -> str:
    """What the metadata DB holds of the conditions after a sync, the same line on both paths."""
    from . import conditions
    from .catalog import open_catalog

    catalog = open_catalog(settings)
    smks = sorted(catalog.menus())
    periods = conditions.periods(catalog)
    named = ", ".join(f"{p['period']} ({p['first_run']}-{p['last_run']})" for p in periods[:6])
    return (f"   {len(smks)} trigger menus (SMK {', '.join(map(str, smks)) or '-'}) and {len(periods)} run periods"
            f"{' (' + named + ')' if named else ''} in the metadata DB, {seconds:.1f} s")


def sync_conditions(console: Console, settings: Settings) -> None:
    """The conditions (trigger menus, run periods) copied from the world's conditions source into the metadata DB,
    as the eventindex_conditions DAG does: without them trigger names could not be resolved."""
    from . import conditions
    from .catalog import open_catalog

    console.print("   conditions: trigger menus and run periods synced from the world's conditions DB")
    started = time.perf_counter()
    conditions.sync(conditions.world_source(settings.world_dir), open_catalog(settings))
    console.print(conditions_held(settings, time.perf_counter() - started))


def load_library(console: Console, settings: Settings, world: dict) -> None:
    """Step 3 without Airflow: every staged dataset loaded by this process."""
    from .catalog import open_catalog
    from .catalog.loader import load_staged

    console.print(f"3. loading the staging area into the catalogue {settings.catalog_dir} "
                  f"(metadata: {settings.metadata_url.split('@')[-1]})")
    sync_conditions(console, settings)
    started = time.perf_counter()
    with progress_bar(console) as bar:
        task = bar.add_task("loading datasets", total=len(world["datasets"]))
        results = load_staged(open_catalog(settings), settings.staging,
                              progress=lambda i, n: bar.update(task, completed=i, total=n))
    seconds = time.perf_counter() - started
    total = sum(r.nevents for r in results)
    console.print(f"   {len(results)} datasets, {total:,} events loaded in {seconds:.1f} s "
                  f"({total / seconds:,.0f} events/s)")


def queries(console: Console, settings: Settings, world: dict) -> DemoPick:
    """Step 4 (lookups, counts, overlaps) and the request file of step 5, whose header line it prints."""
    import numpy as np
    import pyarrow as pa

    from .catalog import make_selection, open_catalog

    catalog = open_catalog(settings)
    console.print("4. queries")
    aod = next(d for d in world["datasets"] if d["datatype"] == "AOD" and d.get("stream") == "physics_Main")
    keys = pa.Table.from_batches(list(catalog.select(make_selection(dataset=aod["name"]),
                                                     ["run_number", "event_number"])))
    for i in np.random.default_rng(1).choice(keys.num_rows, 3, replace=False):
        run, event = keys.column("run_number")[int(i)].as_py(), keys.column("event_number")[int(i)].as_py()
        started = time.perf_counter()
        matches = catalog.lookup(run, event)
        ms = (time.perf_counter() - started) * 1000
        formats = ", ".join(f"{m['datatype']} {m['version'] or '-'}" for m in matches)
        console.print(f"   lookup {run} {event}: {len(matches)} records ({formats}) in {ms:.2f} ms")
    counts = [
        ("all events", make_selection()),
        ("physics_Main AOD, latest version", make_selection(stream="physics_Main", datatype="AOD", version="latest")),
        ("RAW passing HLT_e26_lhtight_ivarloose_L1EM22VHI",
         make_selection(datatype="RAW", triggers=["HLT_e26_lhtight_ivarloose_L1EM22VHI"])),
        ("RAW, lumi blocks 10-20, HLT_mu26_ivarmedium_L1MU14FCH",
         make_selection(datatype="RAW", lumi_blocks=["10-20"], triggers=["HLT_mu26_ivarmedium_L1MU14FCH"])),
    ]
    for label, sel in counts:
        started = time.perf_counter()
        n = catalog.count(sel)
        console.print(f"   count {label}: {n:,} ({(time.perf_counter() - started) * 1000:.1f} ms)")
    real_file_queries(console, catalog)
    labels, matrix = catalog.overlaps(make_selection(datatype="RAW"),
                                      streams=["physics_Main", "physics_MinBias", "express_express"])
    console.print(matrix_table("RAW events shared between streams", labels, matrix))
    console.print("   try: .venv/bin/eventindex datasets | count --stream physics_Main --trigger HLT_j420_L1J100 | "
                  "lookup RUN EVENT | overlaps --triggers A,B")

    rng = np.random.default_rng(7)  # step 5's request: random events of the AOD plus some that do not exist
    idx = rng.choice(keys.num_rows, min(PICK_EVENTS, keys.num_rows), replace=False)
    runs, events = keys.column("run_number").to_numpy(), keys.column("event_number").to_numpy()
    lines = [f"{runs[i]} {events[i]}" for i in idx] + [f"{runs[0]} {10**15 + k}" for k in range(PICK_MISSING)]
    request = settings.home / "demo-pick.txt"
    request.write_text("\n".join(lines) + "\n")
    console.print(f"5. event picking: {len(lines):,} events ({request}) from {aod['name']} -> {PICK_OUTPUT}")
    return DemoPick(events_file=request, output=PICK_OUTPUT, datatype="AOD", stream="physics_Main",
                    version=aod["amitag"], source=aod["name"])


def tag_services(console: Console, settings: Settings) -> None:
    """Step 6: the TAG services on the catalogue: a histogram with a trigger cut, and a skim into a ROOT file."""
    from .catalog import make_selection, open_catalog
    from .tag.histogram import histogram
    from .tag.skim import skim

    catalog = open_catalog(settings)
    console.print("6. TAG services: a histogram and a skim")
    sel = make_selection(datatype="RAW", stream="physics_Main", triggers=["HLT_mu26_ivarmedium_L1MU14FCH"])
    started = time.perf_counter()
    h = histogram(catalog, sel, "lumi_block", 10).to_json()
    console.print(f"   histogram of lumi_block, RAW physics_Main passing HLT_mu26_ivarmedium_L1MU14FCH: "
                  f"{h['entries']:,} events in {(time.perf_counter() - started) * 1000:.0f} ms", highlight=False)
    top = max(h["counts"]) or 1
    for lo, hi, n in zip(h["edges"][0], h["edges"][0][1:], h["counts"]):
        console.print(f"   {lo:>6.0f}-{hi:<6.0f} {'#' * round(40 * n / top):<40} {n:>7,}", highlight=False)
    console.print(f"   try: {h['command'].replace(' --json', ' --png lumi.png')}", highlight=False, soft_wrap=True)
    result = skim(catalog, make_selection(datatype="AOD", stream="physics_Main", version="f961_m1831",
                                          lumi_blocks=["10-20"], triggers=["HLT_mu26_ivarmedium_L1MU14FCH"]),
                  ["run_number", "event_number", "lumi_block", "bcid"], ["AOD", "RAW"],
                  str(settings.home / "demo-skim.root"), overwrite=True)
    console.print(f"   skim: {result.events:,} events with their AOD and RAW references -> {result.output} "
                  f"({result.bytes:,} bytes, TTree events) in {result.seconds:.2f} s", highlight=False)
    console.print(f"   reproduce: {result.command}", highlight=False, soft_wrap=True)


REAL_TRIGGERS = ("HLT_e26_lhtight_nod0_ivarloose", "HLT_mu26_ivarmedium", "HLT_xe110_pufit_L1XE55", "L1_EM22VHI",
                 "L1_MU20")


def real_file_queries(console: Console, catalog) -> None:
    """Where an event of the real ATLAS file is, and what its own trigger decisions say, through its own menu."""
    from .catalog import make_selection

    if REAL_DATASET not in {d["name"] for d in catalog.datasets()}:
        return
    first = next(iter(catalog.select(make_selection(dataset=REAL_DATASET), ["run_number", "event_number"])))
    run, event = first.column("run_number")[0].as_py(), first.column("event_number")[0].as_py()
    refs = [m for m in catalog.lookup(run, event) if m["dataset"] == REAL_DATASET]
    console.print(f"   lookup {run} {event} (the real ATLAS file): " + ", ".join(
        f"{m['datatype']} file {m['refs'][m['datatype']]['guid']} entry {m['refs'][m['datatype']]['oid']}"
        for m in refs), highlight=False)
    smks = catalog.show(REAL_DATASET)["smks"]
    expression = f"{REAL_TRIGGERS[0]} or {REAL_TRIGGERS[1]}"
    n = catalog.count(make_selection(dataset=REAL_DATASET, triggers=[expression]))
    console.print(f"   the real file (SMK {', '.join(map(str, smks))}, its menu from its own metadata): "
                  f"{n} of 40 events pass {expression}", highlight=False)
    labels, matrix = catalog.overlaps(make_selection(dataset=REAL_DATASET), triggers=list(REAL_TRIGGERS))
    console.print(matrix_table("events of the real ATLAS file passing two triggers", labels, matrix))


def matrix_table(title: str, labels, matrix) -> Table:
    table = Table(title=title)
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    for label, row in zip(labels, matrix):
        table.add_row(label, *[f"{v:,}" for v in row])
    return table


def print_pick(console: Console, summary: dict, seconds: float) -> None:
    """Step 5's result, the same lines whichever path ran the request."""
    if summary.get("rerun"):
        console.print(f"   already done by {summary['request_id']}: nothing changed (a rerun of a finished request)")
    nfiles = len(summary.get("files") or [])
    console.print(f"   found {summary['found']:,}, missing {summary['missing']:,} -> {summary['output_dataset']} "
                  f"({nfiles} file{'' if nfiles == 1 else 's'}, verified) in {seconds:.1f} s")
    reasons: dict[str, int] = {}
    for m in summary.get("missing_events") or []:
        reasons[m["reason"]] = reasons.get(m["reason"], 0) + 1
    if reasons:
        console.print("   missing: " + ", ".join(f"{reason}: {n:,}" for reason, n in reasons.items()))


def run(console: Console, settings: Settings, config: WorldConfig, fresh: bool = False) -> int:
    """The whole demo without Airflow: steps 1-5 in this process."""
    from . import picking

    world = prepare(console, settings, config, fresh=fresh)
    load_library(console, settings, world)
    pick = queries(console, settings, world)
    started = time.perf_counter()
    summary = picking.runner_for(settings, f"demo-{time.strftime('%Y%m%dT%H%M%S')}").run(pick.request())
    print_pick(console, summary, time.perf_counter() - started)
    console.print(f"   try: .venv/bin/eventindex pick --dry-run --events {pick.events_file} --type AOD | picks")
    tag_services(console, settings)
    return 0
