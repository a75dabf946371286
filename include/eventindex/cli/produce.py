"""Producing and loading index records: what a production job runs, and loading a staging area without Airflow."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import AnnounceError, NotFound
from .args import add_command
from .output import err, out, progress


def register(sub) -> None:
    p = add_command(sub, "produce", "index data files into the staging area (what a production job runs)",
                    ["eventindex produce --dataset data18_13TeV.00358031.physics_Main.daq.RAW world/RAW/*.root",
                     "eventindex produce --dataset NAME --stomp stomp://127.0.0.1:61613/queue/eventindex.producer "
                     "FILE.root",
                     "eventindex produce --dataset mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv."
                     "DAOD_PHYSLITE.e6337_s3126_r10201_p4172 DAOD_PHYSLITE.37233417._000052.pool.root.1"])
    p.add_argument("--dataset", required=True, help="dataset name (ATLAS nomenclature) or Rucio DID")
    p.add_argument("--staging", help="staging folder or URI (default $EVENTINDEX_STAGING or "
                                     "$EVENTINDEX_HOME/staging)")
    p.add_argument("--task-id", type=int, default=0, help="the production task (default 0)")
    p.add_argument("--job-id", type=int, default=0, help="the job within the task (default 0)")
    p.add_argument("--attempt", type=int, default=0, help="the job's attempt: a re-run replaces the earlier part")
    p.add_argument("--task-jobs", type=int, help="the task's number of jobs, when known (ingestion waits for all)")
    p.add_argument("--stomp", help="announce to stomp://host:port/queue/NAME (default $EVENTINDEX_STOMP_URL)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("files", nargs="+", help="ROOT data files: the simulator's, or real ATLAS xAOD (TTree "
                                            "CollectionTree, Run 2, or RNTuple EventData, Run 3)")
    p.set_defaults(func=cmd_produce)

    p = add_command(sub, "load", "load produced index files from a staging area into the catalogue (without "
                                 "Airflow)",
                    ["eventindex load .eventindex/staging",
                     "eventindex load s3://bucket/staging/data18_13TeV.00358031.physics_Main.daq.RAW --json"])
    p.add_argument("staging", help="staging area or one dataset folder in it (folder or URI)")
    p.add_argument("--menus", help="trigger menus JSON (default: the menus of the world's conditions source, when "
                                   "there is one)")
    p.add_argument("--allow-duplicates", action="store_true",
                   help="load a dataset that records one event more than once (refused by default, as in the DAG)")
    p.add_argument("--json", action="store_true", help="one JSON list of the loads")
    p.set_defaults(func=cmd_load)


def cmd_produce(args) -> int:
    from ..producer import produce
    from ..settings import Settings, parse_stomp_url

    settings = Settings.from_env()
    stomp_url = args.stomp or settings.stomp_url
    try:
        result = produce(args.dataset, args.files, args.staging or settings.staging, args.task_id, args.job_id,
                         parse_stomp_url(stomp_url) if stomp_url else None, attempt=args.attempt,
                         njobs=args.task_jobs)
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


def cmd_load(args) -> int:
    """Each dataset is checked as the ingestion DAG checks it before it is loaded. A dataset that fails (a malformed
    summary, a corrupt copy, counts that disagree with the summary or Rucio) is reported in one line and skipped;
    the others are loaded; the exit status is then 1."""
    from ..catalog import open_catalog
    from ..catalog.loader import load_staged
    from ..settings import Settings

    catalog = open_catalog()
    _save_menus(catalog, args.menus)
    ddm, skipped = _data_catalogue(Settings.from_env())
    refused: list = []
    try:
        with progress() as bar:
            task = bar.add_task("loading datasets", total=None)
            results = load_staged(catalog, args.staging, progress=lambda i, n: bar.update(task, completed=i, total=n),
                                  ddm=ddm, allow_duplicates=args.allow_duplicates, refused=refused)
    finally:  # a full disk or a service down stops the command (exit 75): the refusals so far are reported too
        _report_refused(refused)
    if skipped:
        err.print(f"note: {skipped}", highlight=False, soft_wrap=True)
    if args.json:
        print(json.dumps([r.__dict__ for r in results]))
    else:
        for r in results:
            out.print(f"{'reloaded' if r.replaced else 'loaded'} {r.dataset}: {r.nevents:,} events "
                      f"({r.duplicates} duplicates) in {r.seconds:.2f} s")
        if not results and not refused:
            out.print(f"nothing to load in {args.staging} (no produced dataset folders)")
    return 1 if refused else 0


def _report_refused(refused: list) -> None:
    from rich.text import Text

    for _, exc in refused:
        err.print(Text.assemble(("error: ", "red"), f"not loaded: {exc}"), highlight=False, soft_wrap=True)


def _data_catalogue(settings):
    """The data catalogue staged datasets are checked against, as the DAG's Rucio connection does: the Rucio server
    of RUCIO_CONFIG, else the local data catalogue when one exists (``eventindex ddm register``, ``make demo``).
    With neither, ``(None, why)``: the checks against Rucio are skipped, and the command says so."""
    from ..ddm import LocalRucio, RealRucio

    if settings.rucio_config:
        return RealRucio(config=settings.rucio_config), None
    if (settings.home / "rucio.sqlite").exists():
        return LocalRucio(settings.local_rucio_url), None
    return None, ("no data catalogue configured (RUCIO_CONFIG, or the local one `eventindex ddm register` makes): "
                  "the datasets were not checked against Rucio")


def _save_menus(catalog, path: str | None) -> None:
    """The trigger menus the records' bits refer to: the menus file given, else whatever the simulated world's
    conditions source holds that the catalogue lacks (menus and run periods, as the eventindex_conditions DAG
    copies them)."""
    from ..conditions import sync, world_source
    from ..settings import Settings
    from ..trigger import load_menus

    if path:
        if not Path(path).exists():
            raise NotFound(f"menus file {path} does not exist")
        menus, _ = load_menus(path)
        catalog.save_menus(menus.values())
        return
    world_dir = Settings.from_env().world_dir
    if (world_dir / "upstream.sqlite").exists():
        sync(world_source(world_dir), catalog)
