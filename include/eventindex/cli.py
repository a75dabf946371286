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
    demo.set_defaults(func=cmd_demo)

    world = sub.add_parser("world", help="list the datasets of the simulated world")
    world.add_argument("--world", help="world folder (default $EVENTINDEX_HOME/world)")
    world.add_argument("--json", action="store_true")
    world.set_defaults(func=cmd_world)
    return p


def main(argv: list[str] | None = None) -> int:
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
