"""The ``eventindex`` command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich_argparse import RichHelpFormatter

from . import naming
from .errors import EventIndexError
from .settings import Settings, parse_stomp_url

out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err)


# --- name ------------------------------------------------------------------------------------------------------


def cmd_name_parse(args) -> int:
    print(json.dumps(naming.parse(args.name).to_dict(), indent=None if args.compact else 1))
    return 0


# --- simulate --------------------------------------------------------------------------------------------------


def _config(args):
    from .sim.world import WorldConfig

    config = WorldConfig(seed=args.seed)
    for key in ("runs", "events_per_run", "lumi_blocks", "mc_events"):
        if getattr(args, key, None) is not None:
            setattr(config, key, getattr(args, key))
    if config.runs < 1 or config.events_per_run < 1 or config.lumi_blocks < 1 or config.mc_events < 1:
        raise EventIndexError("--runs, --events-per-run, --lumi-blocks and --mc-events must be positive")
    return config


def _simulate(out_dir: Path, args) -> dict:
    from .sim.world import simulate

    config = _config(args)
    started = time.perf_counter()
    with _progress() as bar:
        tasks = {}

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


def _world_table(world: dict) -> Table:
    table = Table(title=f"world: {world['nevents']:,} events in {world['nfiles']} files, "
                        f"{len(world['datasets'])} datasets")
    for col in ("dataset", "files", "events"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for d in world["datasets"]:
        table.add_row(d["name"], str(len(d["files"])), f"{d['nevents']:,}")
    return table


def cmd_simulate(args) -> int:
    settings = Settings.from_env()
    out_dir = Path(args.out) if args.out else settings.world_dir
    world = _simulate(out_dir, args)
    out.print(_world_table(world))
    out.print(f"world written to {out_dir} in {world['_seconds']:.1f} s "
              f"({world['nevents'] / world['_seconds']:,.0f} events/s)")
    return 0


# --- produce ---------------------------------------------------------------------------------------------------


def cmd_produce(args) -> int:
    from .producer import produce

    settings = Settings.from_env()
    stomp_url = args.stomp or settings.stomp_url
    from .messaging import AnnounceError

    try:
        result = produce(args.dataset, args.files, args.staging or settings.staging, args.task_id, args.job_id,
                         parse_stomp_url(stomp_url) if stomp_url else None)
    except AnnounceError as exc:
        raise AnnounceError(f"{exc}. The index files are in the staging area; run the same command again to "
                            "announce them (the same task and job ids overwrite, never duplicate)") from None
    if args.json:
        print(json.dumps({k: v for k, v in result.__dict__.items() if k != "summary"}))
    else:
        out.print(f"indexed {result.nevents:,} events ({result.unique_events:,} unique) from {len(result.files)} "
                  f"files of {result.dataset} in {result.seconds:.2f} s ({result.events_per_s:,.0f} events/s)")
        out.print(f"  -> {result.parquet_uri}")
        out.print("  announced" if result.announced else "  not announced (no broker configured)")
    return 0


def _produce_dataset(args):
    from .producer import produce

    world_dir, dataset, staging, stomp_url = args
    files = [str(Path(world_dir) / f["path"]) for f in dataset["files"]]
    target = parse_stomp_url(stomp_url) if stomp_url else None
    return produce(dataset["name"], files, staging, dataset["task_id"], 1, target)


def produce_world(world: dict, world_dir: Path, staging: str, stomp_url: str | None, workers: int = 2):
    """One producer job per dataset of the world, two at a time, with a progress bar."""
    results = []
    with _progress() as bar, ProcessPoolExecutor(max_workers=workers) as pool:
        task = bar.add_task("indexing datasets", total=len(world["datasets"]))
        jobs = [(str(world_dir), d, staging, stomp_url) for d in world["datasets"]]
        for result in pool.map(_produce_dataset, jobs):
            results.append(result)
            bar.advance(task)
    return results


# --- demo ------------------------------------------------------------------------------------------------------


def cmd_demo(args) -> int:
    from dataclasses import asdict

    from .sim.world import load_world

    wanted = {k: v for k, v in asdict(_config(args)).items() if k != "workers"}
    settings = Settings.from_env()
    out.rule("[bold]EventIndex demo (embedded defaults)")
    out.print(f"EVENTINDEX_HOME = {settings.home}")
    world_dir = settings.world_dir
    world = None
    if not args.fresh:
        try:
            world = load_world(world_dir)
            if world.get("config") != wanted:
                world = None
        except FileNotFoundError:
            world = None
    if world is None:
        default_staging = Path(settings.staging) == settings.home / "staging"
        if default_staging and (settings.home / "staging").exists():  # index of an earlier world
            import shutil

            shutil.rmtree(settings.home / "staging")
        out.print(f"1. simulating the mini-ATLAS world (seed {args.seed}) into {world_dir}")
        world = _simulate(world_dir, args)
        out.print(f"   {world['nevents']:,} events in {world['nfiles']} ROOT files, {len(world['datasets'])} datasets, "
                  f"{world['_seconds']:.1f} s")
    else:
        out.print(f"1. reusing the world in {world_dir} ({world['nevents']:,} events; --fresh to regenerate)")
    from .ddm import LocalRucio, register_world

    n = register_world(LocalRucio(f"sqlite:///{settings.home / 'rucio.sqlite'}"), world, world_dir)
    out.print(f"   {n} datasets registered in the local data catalogue (Rucio interface) {settings.home / 'rucio.sqlite'}")
    out.print(f"2. producing index records into the staging area {settings.staging}")
    started = time.perf_counter()
    results = produce_world(world, world_dir, settings.staging, settings.stomp_url)
    seconds = time.perf_counter() - started
    table = Table(title="producer jobs")
    for col in ("dataset", "files", "events", "unique", "Parquet"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for r in results:
        table.add_row(r.dataset, str(len(r.files)), f"{r.nevents:,}", f"{r.unique_events:,}",
                      f"{r.summary['bytes'] / 1e6:.2f} MB")
    out.print(table)
    total = sum(r.nevents for r in results)
    size = sum(r.summary["bytes"] for r in results)
    out.print(f"   {total:,} events indexed in {seconds:.1f} s ({total / seconds:,.0f} events/s on 2 workers), "
              f"{size / total:.1f} bytes/event in Parquet")
    out.print("   announced over STOMP" if settings.stomp_url else
              "   no broker configured (EVENTINDEX_STOMP_URL): the staging area is the hand-over")
    _demo_catalog(settings, world, args.loader)
    return 0


def _demo_catalog(settings: Settings, world: dict, loader: str = "cli") -> None:
    import numpy as np

    from .catalog import make_selection
    from .catalog.loader import load_staged

    catalog = _catalog()
    _load_world_menus(catalog, None)
    if loader == "airflow":
        import subprocess

        out.print(f"3. ingesting every dataset through the eventindex_ingest DAG (Airflow dag.test), into the "
                  f"catalogue {settings.catalog_dir}")
        done = subprocess.run([sys.executable, "-m", "eventindex_airflow.demo", "--staging", settings.staging])
        if done.returncode != 0:
            raise EventIndexError("some ingestion runs failed (see above); the Airflow logs are in airflow_home/")
    else:
        out.print(f"3. loading the staging area into the catalogue {settings.catalog_dir} "
                  f"(metadata: {settings.metadata_url.split('@')[-1]})")
        started = time.perf_counter()
        with _progress() as bar:
            task = bar.add_task("loading datasets", total=len(world["datasets"]))
            results = load_staged(catalog, settings.staging, progress=lambda i, n: bar.update(task, completed=i))
        seconds = time.perf_counter() - started
        total = sum(r.nevents for r in results)
        out.print(f"   {len(results)} datasets, {total:,} events loaded in {seconds:.1f} s "
                  f"({total / seconds:,.0f} events/s)")

    out.print("4. queries")
    aod = next(d for d in world["datasets"] if d["datatype"] == "AOD" and d.get("stream") == "physics_Main")
    import pyarrow as pa

    keys = pa.Table.from_batches(list(catalog.select(make_selection(dataset=aod["name"]),
                                                     ["run_number", "event_number"])))
    for i in np.random.default_rng(1).choice(keys.num_rows, 3, replace=False):
        run, event = keys.column("run_number")[int(i)].as_py(), keys.column("event_number")[int(i)].as_py()
        started = time.perf_counter()
        matches = catalog.lookup(run, event)
        ms = (time.perf_counter() - started) * 1000
        formats = ", ".join(f"{m['datatype']} {m['version'] or '-'}" for m in matches)
        out.print(f"   lookup {run} {event}: {len(matches)} records ({formats}) in {ms:.2f} ms")
    queries = [
        ("all events", make_selection()),
        ("physics_Main AOD, latest version", make_selection(stream="physics_Main", datatype="AOD", version="latest")),
        ("RAW passing HLT_e26_lhtight_ivarloose_L1EM22VHI",
         make_selection(datatype="RAW", triggers=["HLT_e26_lhtight_ivarloose_L1EM22VHI"])),
        ("RAW, lumi blocks 10-20, HLT_mu26_ivarmedium_L1MU14FCH",
         make_selection(datatype="RAW", lumi_blocks=["10-20"], triggers=["HLT_mu26_ivarmedium_L1MU14FCH"])),
    ]
    for label, sel in queries:
        started = time.perf_counter()
        n = catalog.count(sel)
        out.print(f"   count {label}: {n:,} ({(time.perf_counter() - started) * 1000:.1f} ms)")
    labels, matrix = catalog.overlaps(make_selection(datatype="RAW"),
                                      streams=["physics_Main", "physics_MinBias", "express_express"])
    out.print(_matrix_table("RAW events shared between streams", labels, matrix))
    out.print("   try: .venv/bin/eventindex datasets | count --stream physics_Main --trigger HLT_j420_L1J100 | "
              "lookup RUN EVENT | overlaps --triggers A,B")
    _demo_pick(settings, catalog, keys, aod, loader)


def _demo_pick(settings: Settings, catalog, keys, aod: dict, loader: str) -> None:
    """Step 5: 1,000 random events of the physics_Main AOD plus 20 that do not exist, picked into a user dataset."""
    import numpy as np

    from . import picking

    rng = np.random.default_rng(7)
    idx = rng.choice(keys.num_rows, min(1000, keys.num_rows), replace=False)
    runs, events = keys.column("run_number").to_numpy(), keys.column("event_number").to_numpy()
    lines = [f"{runs[i]} {events[i]}" for i in idx] + [f"{runs[0]} {10**15 + k}" for k in range(20)]
    request = settings.home / "demo-pick.txt"
    request.write_text("\n".join(lines) + "\n")
    output = "user.demo.picked.AOD"
    out.print(f"5. event picking: {len(lines):,} events ({request}) from {aod['name']} -> {output}")
    if loader == "airflow":
        import subprocess

        done = subprocess.run([sys.executable, "-m", "eventindex_airflow.demo", "--pick", str(request), "--output",
                               output, "--version", aod["amitag"]])
        if done.returncode != 0:
            raise EventIndexError("the picking run failed (see above); the Airflow logs are in airflow_home/")
    else:
        from .ddm import LocalRucio
        from .metadata import make_engine

        ddm, engine = LocalRucio(f"sqlite:///{settings.home / 'rucio.sqlite'}"), make_engine(settings.metadata_url)
        req = picking.make_request(request.read_text(), "AOD", version=aod["amitag"], stream="physics_Main",
                                   output=output)
        started = time.perf_counter()
        summary = picking.run_in_process(catalog, ddm, engine, req, output, settings.home / "picks" / "demo",
                                         f"demo-{time.strftime('%Y%m%dT%H%M%S')}")
        if summary.get("rerun"):
            out.print(f"   already done by {summary['request_id']}: nothing changed (a rerun of a finished request)")
        out.print(f"   found {summary['found']:,}, missing {summary['missing']:,} -> {summary['output_dataset']} "
                  f"({len(summary['files'])} file(s), verified) in {time.perf_counter() - started:.1f} s")
    out.print(f"   try: .venv/bin/eventindex pick --dry-run --events {request} --type AOD | picks")


# --- catalogue -------------------------------------------------------------------------------------------------


def _catalog():
    from .catalog import open_catalog

    return open_catalog()


def _time(text: str | None) -> int | None:
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    from datetime import datetime, timezone

    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise EventIndexError(f"time {text!r} is neither seconds since the epoch nor an ISO date") from None
    return int((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp())


def _selection(args):
    from .catalog import make_selection

    since, until = _time(args.since), _time(args.until)
    time_range = None if since is None and until is None else (since or 0, until or 2**32 - 1)
    return make_selection(project=args.project, runs=args.run or (), lumi_blocks=args.lumi or (), stream=args.stream,
                          datatype=args.type, version=args.version, dataset=args.dataset, guid=args.guid,
                          triggers=[t for group in (args.trigger or []) for t in group.split(",") if t],
                          time_range=time_range, include_obsolete=args.include_obsolete)


def cmd_lookup(args) -> int:
    matches = _catalog().lookup(args.run, args.event, project=args.project, datatype=args.type, version=args.version)
    if args.json:
        print(json.dumps(matches))
        return 0 if matches else 3
    if not matches:
        err.print(f"event {args.run} {args.event} is not in the catalogue")
        return 3
    stages = sorted({s for m in matches for s in m["refs"]}, key=_stage_key)
    table = Table(title=f"run {args.run} event {args.event}: {len(matches)} records")
    for col in ("dataset", "lumi block", *stages):
        table.add_column(col)
    for m in matches:
        table.add_row(m["dataset"], str(m["lumi_block"]),
                      *[f"{m['refs'][s]['guid']} #{m['refs'][s]['oid']}" if s in m["refs"] else "" for s in stages])
    out.print(table)
    return 0


def _stage_key(stage):
    from .schema import stage_key

    return stage_key(stage)


def cmd_count(args) -> int:
    n = _catalog().count(_selection(args))
    print(json.dumps({"count": n}) if args.json else f"{n:,}")
    return 0


def cmd_select(args) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    catalog = _catalog()
    sel = _selection(args)
    columns = [c for group in (args.columns or []) for c in group.split(",") if c] or None
    fmt = args.output.rsplit(".", 1)[-1].lower()
    if fmt not in ("csv", "parquet", "json"):
        raise EventIndexError(f"output {args.output!r}: the name must end in .csv, .parquet or .json")
    total = catalog.count(sel)
    written = 0
    tmp = f"{args.output}.part"
    with _progress() as bar:
        task = bar.add_task("selecting", total=total)
        writer = None
        json_first = True
        fh = open(tmp, "w") if fmt == "json" else None
        try:
            for batch in catalog.select(sel, columns):
                batch = _printable(batch) if fmt != "parquet" else batch
                if fmt == "parquet":
                    writer = writer or pq.ParquetWriter(tmp, batch.schema, compression="zstd")
                    writer.write_batch(batch)
                elif fmt == "csv":
                    writer = writer or pacsv.CSVWriter(tmp, batch.schema)
                    writer.write_batch(batch)
                else:
                    for row in batch.to_pylist():
                        fh.write(("[" if json_first else ",\n") + json.dumps(row))
                        json_first = False
                written += batch.num_rows
                bar.update(task, completed=written)
            if fmt == "json":
                fh.write("[]" if json_first else "]\n")
            if writer is None and fmt != "json":
                empty = pa.table({c: pa.array([], pa.string()) for c in (columns or ["dataset"])})
                (pq.write_table(empty, tmp) if fmt == "parquet" else pacsv.write_csv(empty, tmp))
        finally:
            if writer is not None:
                writer.close()
            if fh is not None:
                fh.close()
    import os

    os.replace(tmp, args.output)
    if args.json:
        print(json.dumps({"count": written, "output": args.output}))
    else:
        out.print(f"{written:,} events written to {args.output}")
    return 0


def _printable(batch):
    """Masks as hex text for CSV and JSON."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for name, col in zip(batch.schema.names, batch.columns):
        if pa.types.is_binary(col.type) or pa.types.is_fixed_size_binary(col.type):
            col = pa.array([None if v is None else v.hex() for v in col.to_pylist()], pa.string())
        elif pa.types.is_dictionary(col.type):
            col = pc.cast(col, pa.string())
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def cmd_overlaps(args) -> int:
    catalog = _catalog()
    sel = _selection(args)
    triggers = [t for group in (args.triggers or []) for t in group.split(",") if t]
    streams = [s for group in (args.streams or []) for s in group.split(",") if s]
    if not triggers and not streams:
        streams = ["physics_Main", "physics_MinBias", "express_express"]
        if sel.datatype is None:
            sel = sel.with_(datatype="RAW")
    labels, matrix = catalog.overlaps(sel, streams=streams or None, triggers=triggers or None)
    if args.json:
        print(json.dumps({"labels": labels, "matrix": matrix.tolist()}))
        return 0
    out.print(_matrix_table("events shared (diagonal: events in each)", labels, matrix))
    return 0


def _matrix_table(title: str, labels, matrix) -> Table:
    table = Table(title=title)
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    for label, row in zip(labels, matrix):
        table.add_row(label, *[f"{v:,}" for v in row])
    return table


def cmd_datasets(args) -> int:
    rows = _catalog().datasets(include_obsolete=args.all)
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    table = Table(title=f"{len(rows)} datasets in the catalogue")
    for col in ("dataset", "status", "files", "events", "unique", "loaded"):
        table.add_column(col, justify="left" if col in ("dataset", "status", "loaded") else "right")
    for r in rows:
        table.add_row(r["name"], r["status"], str(r["nfiles"]), f"{r['nevents']:,}", f"{r['unique_events']:,}",
                      str(r["loaded_at"])[:19])
    out.print(table)
    return 0


def cmd_show(args) -> int:
    row = _catalog().show(args.dataset)
    if args.json:
        print(json.dumps(row, default=str))
        return 0
    for key in ("name", "status", "project", "run_number", "dsid", "stream", "datatype", "version", "nfiles",
                "nevents", "unique_events", "duplicates", "stages", "smks", "loaded_at", "obsolete_at"):
        if row.get(key) is not None:
            out.print(f"[bold]{key:>14}[/bold]  {row[key]}")
    table = Table(title="load history")
    for col in ("at", "action", "load id", "events"):
        table.add_column(col)
    for h in row["history"]:
        table.add_row(str(h["at"])[:19], h["action"], h["load_id"] or "", str(h["nevents"] or ""))
    out.print(table)
    return 0


def cmd_load(args) -> int:
    from .catalog.loader import load_staged

    catalog = _catalog()
    _load_world_menus(catalog, args.menus)
    with _progress() as bar:
        task = bar.add_task("loading datasets", total=None)
        results = load_staged(catalog, args.staging, progress=lambda i, n: bar.update(task, completed=i, total=n))
    if args.json:
        print(json.dumps([r.__dict__ for r in results]))
    else:
        for r in results:
            out.print(f"{'reloaded' if r.replaced else 'loaded'} {r.dataset}: {r.nevents:,} events "
                      f"({r.duplicates} duplicates) in {r.seconds:.2f} s")
    return 0


def _load_world_menus(catalog, path: str | None) -> None:
    from .trigger import load_menus

    settings = Settings.from_env()
    menus_file = Path(path) if path else settings.world_dir / "menus.json"
    if menus_file.exists():
        menus, _ = load_menus(menus_file)
        catalog.save_menus(menus.values())
    elif path:
        raise EventIndexError(f"menus file {path} does not exist")


def cmd_ddm_register(args) -> int:
    import os

    from .ddm import LocalRucio, RealRucio, register_world
    from .sim.world import load_world

    settings = Settings.from_env()
    world_dir = Path(args.world) if args.world else settings.world_dir
    world = load_world(world_dir)
    if args.rucio:
        ddm, where = RealRucio(), f"the Rucio server of {os.environ.get('RUCIO_CONFIG', 'rucio.cfg')}"
    else:
        ddm, where = LocalRucio(f"sqlite:///{settings.home / 'rucio.sqlite'}"), "the local data catalogue"
    n = register_world(ddm, world, world_dir, rse=args.rse)
    out.print(f"{n} datasets of {world_dir} registered in {where} (RSE {args.rse}, file:// replicas)")
    return 0


def cmd_pick(args) -> int:
    from . import picking
    from .ddm import LocalRucio, RealRucio

    events = Path(args.events).read_text() if args.events != "-" else sys.stdin.read()
    req = picking.make_request(events, args.type, args.project, args.stream, args.version, args.out, args.max)
    if args.dry_run:
        settings = Settings.from_env()
        ddm = RealRucio() if args.rucio else LocalRucio(f"sqlite:///{settings.home / 'rucio.sqlite'}")
        started = time.perf_counter()
        plan = picking.plan(_catalog(), ddm, req, args.files_per_job)
        summary = {**plan.summary(), "requested": len(req.events), "duplicates": req.duplicates_in_request,
                   "plan_seconds": round(time.perf_counter() - started, 3)}
        if args.json:
            print(json.dumps({**summary, "missing_events": plan.missing[:1000]}))
        else:
            out.print(f"{summary['found']:,} found, {summary['missing']:,} missing, in {len(plan.datasets)} datasets, "
                      f"{summary['files']} files, {summary['jobs']} extraction jobs (planned in "
                      f"{summary['plan_seconds']} s)")
            for m in plan.missing[:10]:
                out.print(f"  missing {m['run']} {m['event']}: {m['reason']}")
        return 0
    from .airflow_api import AirflowAPI

    api = AirflowAPI.from_env()
    conf = {"events": events, "datatype": args.type, "project": args.project, "stream": args.stream,
            "version": args.version, "output": args.out, "max_events": args.max, "backend": args.backend,
            "files_per_job": args.files_per_job, "job_timeout_minutes": args.job_timeout}
    run_id = api.trigger("eventindex_pick", conf)
    err.print(f"submitted {run_id} to {api.url}")
    with _progress() as bar:
        task = bar.add_task("picking", total=None)
        state = api.wait("eventindex_pick", run_id, lambda done, total: bar.update(task, completed=done, total=total))
    summary = None
    if state == "success":
        try:
            summary = api.xcom("eventindex_pick", run_id, "verify_register_summary")
        except EventIndexError:  # skipped: the output already held this request's result (a rerun changes nothing)
            summary = api.xcom("eventindex_pick", run_id, "plan", key="summary")
            err.print(f"already done by {summary['request_id']}: nothing changed")
    if args.json:
        print(json.dumps({"run_id": run_id, "state": state, **(summary or {})}))
    elif summary:
        out.print(f"{state}: {summary['found']:,} found, {summary['missing']:,} missing -> {summary['output_dataset']}")
    else:
        out.print(f"{state}: see the run {run_id} in the Airflow UI")
    return 0 if state == "success" else 1


def cmd_picks(args) -> int:
    from . import picking
    from .metadata import make_engine

    rows = picking.requests(make_engine(Settings.from_env().metadata_url), args.limit)
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    table = Table(title=f"{len(rows)} picking requests")
    for col in ("request", "created", "state", "requested", "found", "missing", "output"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["request_id"], str(r["created"])[:19], r["state"], str(r["requested"]), str(r["found"] or ""),
                      str(r["missing"] or ""), r["output_dataset"] or "")
    out.print(table)
    return 0


def cmd_obsolete(args) -> int:
    _catalog().mark_obsolete(args.dataset)
    out.print(f"{args.dataset} marked obsolete (kept in the history, hidden from queries)")
    return 0


def cmd_db(args) -> int:
    from . import metadata as md

    if args.db_command == "ddl":
        print(md.ddl(args.dialect), end="")
    else:
        url = Settings.from_env().metadata_url
        out.print(f"metadata DB {url.split('@')[-1]}: schema version {md.upgrade(md.make_engine(url))}")
    return 0


# --- world -----------------------------------------------------------------------------------------------------


def cmd_world(args) -> int:
    from .sim.world import load_world

    settings = Settings.from_env()
    world = load_world(Path(args.world) if args.world else settings.world_dir)
    if args.json:
        print(json.dumps(world))
    else:
        out.print(_world_table(world))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventindex", formatter_class=RichHelpFormatter,
                                description="EventIndex: an event catalogue for particle-physics experiments.")
    sub = p.add_subparsers(dest="command", required=True)

    name = sub.add_parser("name", help="dataset nomenclature", formatter_class=RichHelpFormatter)
    name_sub = name.add_subparsers(dest="name_command", required=True)
    parse = name_sub.add_parser("parse", help="print the fields of a dataset name or Rucio DID as JSON")
    parse.add_argument("name")
    parse.add_argument("--compact", action="store_true", help="one line of JSON")
    parse.set_defaults(func=cmd_name_parse)

    def world_options(sp):
        sp.add_argument("--seed", type=int, default=2018, help="random seed (default 2018)")
        sp.add_argument("--runs", type=int, help="number of runs (default 3)")
        sp.add_argument("--events-per-run", type=int, help="recorded events per run (default 70000)")
        sp.add_argument("--lumi-blocks", type=int, help="lumi blocks per run (default 200)")
        sp.add_argument("--mc-events", type=int, help="events per simulation sample (default 10000)")

    sim = sub.add_parser("simulate", help="make the mini-ATLAS world of ROOT files", formatter_class=RichHelpFormatter)
    sim.add_argument("--out", help="world folder (default $EVENTINDEX_HOME/world)")
    world_options(sim)
    sim.set_defaults(func=cmd_simulate)

    prod = sub.add_parser("produce", help="index data files into the staging area", formatter_class=RichHelpFormatter)
    prod.add_argument("--dataset", required=True, help="dataset name (ATLAS nomenclature) or Rucio DID")
    prod.add_argument("--staging", help="staging folder or URI (default $EVENTINDEX_STAGING or $EVENTINDEX_HOME/staging)")
    prod.add_argument("--task-id", type=int, default=0)
    prod.add_argument("--job-id", type=int, default=0)
    prod.add_argument("--stomp", help="announce to stomp://host:port/queue/NAME (default $EVENTINDEX_STOMP_URL)")
    prod.add_argument("--json", action="store_true", help="print the result as JSON")
    prod.add_argument("files", nargs="+", help="ROOT data files")
    prod.set_defaults(func=cmd_produce)

    demo = sub.add_parser("demo", help="simulate the world and index it, on the embedded defaults")
    world_options(demo)
    demo.add_argument("--fresh", action="store_true", help="regenerate the world even if one exists")
    demo.add_argument("--loader", choices=["cli", "airflow"], default="cli",
                      help="load with the library (cli) or through the ingestion DAG run by Airflow (airflow)")
    demo.set_defaults(func=cmd_demo)

    world = sub.add_parser("world", help="list the datasets of the simulated world")
    world.add_argument("--world", help="world folder (default $EVENTINDEX_HOME/world)")
    world.add_argument("--json", action="store_true")
    world.set_defaults(func=cmd_world)

    def selection_options(sp):
        sp.add_argument("--project", help="project tag, e.g. data18_13TeV")
        sp.add_argument("--run", action="append", help="run or run range (a-b); repeatable")
        sp.add_argument("--lumi", action="append", help="lumi block or range (a-b); repeatable")
        sp.add_argument("--stream", help="trigger stream, e.g. physics_Main")
        sp.add_argument("--type", help="data type: RAW, AOD, DAOD_PHYS, ...")
        sp.add_argument("--version", help="AMI tag chain, or 'latest'")
        sp.add_argument("--dataset", help="one dataset by name")
        sp.add_argument("--guid", help="events of one file")
        sp.add_argument("--trigger", action="append", help="L1 item or HLT chain that passed; repeatable, AND")
        sp.add_argument("--since", help="from this time (epoch seconds or ISO date)")
        sp.add_argument("--until", help="until this time")
        sp.add_argument("--include-obsolete", action="store_true")
        sp.add_argument("--json", action="store_true", help="machine-readable output")

    look = sub.add_parser("lookup", help="where is an event: its records and references per format")
    look.add_argument("run", type=int)
    look.add_argument("event", type=int)
    look.add_argument("--project")
    look.add_argument("--type")
    look.add_argument("--version")
    look.add_argument("--json", action="store_true")
    look.set_defaults(func=cmd_lookup)

    count = sub.add_parser("count", help="how many events pass a selection")
    selection_options(count)
    count.set_defaults(func=cmd_count)

    select = sub.add_parser("select", help="write the events passing a selection to a file")
    selection_options(select)
    select.add_argument("--columns", action="append", help="comma-separated column names")
    select.add_argument("--output", required=True, help="FILE.csv, FILE.parquet or FILE.json")
    select.set_defaults(func=cmd_select)

    ov = sub.add_parser("overlaps", help="events shared between streams or triggers")
    selection_options(ov)
    ov.add_argument("--streams", action="append", help="streams to compare (default: the three streams, RAW)")
    ov.add_argument("--triggers", action="append", help="triggers to compare, comma-separated")
    ov.set_defaults(func=cmd_overlaps)

    dsl = sub.add_parser("datasets", help="the datasets in the catalogue")
    dsl.add_argument("--all", action="store_true", help="include obsolete datasets")
    dsl.add_argument("--json", action="store_true")
    dsl.set_defaults(func=cmd_datasets)

    show = sub.add_parser("show", help="one dataset: counts, stages, load history")
    show.add_argument("dataset")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    load = sub.add_parser("load", help="load produced index files from a staging area (without Airflow)")
    load.add_argument("staging", help="staging area or one dataset folder in it (folder or URI)")
    load.add_argument("--menus", help="trigger menus JSON (default: the world's menus.json when present)")
    load.add_argument("--json", action="store_true")
    load.set_defaults(func=cmd_load)

    obs = sub.add_parser("obsolete", help="hide a dataset from queries (kept in history)")
    obs.add_argument("dataset")
    obs.set_defaults(func=cmd_obsolete)

    pick = sub.add_parser("pick", help="event picking: submit a request to Airflow, or plan it (--dry-run)")
    pick.add_argument("--events", required=True, help="file of 'run event' pairs, one per line ('-' for stdin)")
    pick.add_argument("--type", required=True, help="data type: RAW, AOD, DAOD_PHYS, ...")
    pick.add_argument("--project")
    pick.add_argument("--stream")
    pick.add_argument("--version", help="AMI tag (default: the newest loaded)")
    pick.add_argument("--out", help="output dataset, e.g. user.jdoe.picked.AOD")
    pick.add_argument("--max", type=int, help="refuse requests with more events")
    pick.add_argument("--backend", choices=["local", "panda"], default="local",
                      help="where extraction jobs run: this machine (default) or PanDA")
    pick.add_argument("--files-per-job", type=int, default=10, help="input files per extraction job (default 10)")
    pick.add_argument("--job-timeout", type=float, default=360,
                      help="PanDA: minutes after which a job is killed and retried (default 360)")
    pick.add_argument("--dry-run", action="store_true", help="plan only (found/missing, datasets, files, jobs); "
                                                           "needs no Airflow")
    pick.add_argument("--rucio", action="store_true", help="with --dry-run: a real Rucio (RUCIO_CONFIG)")
    pick.add_argument("--json", action="store_true")
    pick.set_defaults(func=cmd_pick)

    sub.add_parser("extract-job", help="one extraction job (what a PanDA job runs): --out-dir DIR --job N --lfn LFN "
                                      "--input PFN GUID ENTRIES ...", add_help=False)

    picks = sub.add_parser("picks", help="picking requests and their state")
    picks.add_argument("--limit", type=int, default=50)
    picks.add_argument("--json", action="store_true")
    picks.set_defaults(func=cmd_picks)

    ddm = sub.add_parser("ddm", help="data management (Rucio)")
    ddm_sub = ddm.add_subparsers(dest="ddm_command", required=True)
    reg = ddm_sub.add_parser("register", help="register the simulated world's datasets and replicas")
    reg.add_argument("--world", help="world folder (default $EVENTINDEX_HOME/world)")
    reg.add_argument("--rucio", action="store_true", help="a real Rucio server (RUCIO_CONFIG), not the local catalogue")
    reg.add_argument("--rse", default="LOCAL_DISK")
    reg.set_defaults(func=cmd_ddm_register)

    db = sub.add_parser("db", help="the metadata DB")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="create or migrate the schema").set_defaults(func=cmd_db)
    ddl = db_sub.add_parser("ddl", help="print the DDL")
    ddl.add_argument("--dialect", choices=["sqlite", "postgresql"], default="postgresql")
    ddl.set_defaults(func=cmd_db)
    return p


def cmd_extract_job(args) -> int:
    from .panda import run_job_command

    result = run_job_command(args.job_args)
    out.print(f"{result['nevents']} events -> {result['path']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["extract-job"]:  # the PanDA transformation: its own options, parsed by eventindex.panda
        args = argparse.Namespace(func=cmd_extract_job, job_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EventIndexError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 1
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
