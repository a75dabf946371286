"""Event picking: submit a request to Airflow (or plan it here with --dry-run), list requests, and run one
extraction job (what a PanDA job runs). The request is checked here first (``PickRequest.from_params``, as every
task of the DAG checks it), so a bad line or parameter is refused before anything is submitted."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .args import add_command, read_text_file
from .output import err, out, progress, table

NO_OPTIONS = "\x00"  # a prefix no argument starts with: extract-job hands every argument, dashes included, on


def register(sub) -> None:
    p = add_command(sub, "pick", "event picking: submit a request to Airflow, or plan it here (--dry-run)",
                    ["eventindex pick --events events.txt --type AOD --out user.jdoe.picked.AOD",
                     "eventindex pick --dry-run --events events.txt --type RAW --json"])
    p.add_argument("--events", required=True, help="file of 'run event' pairs, one per line ('-' for stdin)")
    p.add_argument("--type", required=True, help="data type: RAW, AOD, DAOD_PHYS, ...")
    p.add_argument("--project", help="project tag, e.g. data18_13TeV")
    p.add_argument("--stream", help="trigger stream, e.g. physics_Main")
    p.add_argument("--version", help="AMI tag (default: the newest loaded)")
    p.add_argument("--out", help="output dataset, e.g. user.jdoe.picked.AOD")
    p.add_argument("--max", type=int, help="refuse requests with more events")
    p.add_argument("--backend", choices=["local", "panda"], default="local",
                   help="where extraction jobs run: this machine (default) or PanDA")
    p.add_argument("--files-per-job", type=int, default=10, help="input files per extraction job (default 10)")
    p.add_argument("--job-timeout", type=float, default=360,
                   help="PanDA: minutes after which a job is killed and retried (default 360)")
    p.add_argument("--dry-run", action="store_true", help="plan only (found/missing, datasets, files, jobs); "
                                                          "needs no Airflow")
    p.add_argument("--rucio", action="store_true", help="with --dry-run: a real Rucio (RUCIO_CONFIG)")
    p.add_argument("--json", action="store_true", help="the result as JSON")
    p.set_defaults(func=cmd_pick)

    p = add_command(sub, "picks", "picking requests and their state",
                    ["eventindex picks", "eventindex picks --limit 5 --json"])
    p.add_argument("--limit", type=int, default=50, help="the newest N requests (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON list, parameters and summary as objects")
    p.set_defaults(func=cmd_picks)

    p = add_command(sub, "extract-job", "one extraction job (what a PanDA job runs); its options are the "
                                        "transformation's: eventindex extract-job --help",
                    ["eventindex extract-job --output-uri s3://picks/req1?endpoint_override=host:8333 --job 1 "
                     "--lfn user.jdoe.picked.AOD._000001.pool.root --input file:///data/f1.root GUID 0,5,9"],
                    add_help=False, prefix_chars=NO_OPTIONS)
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="--output-uri DIR|URI --job N --lfn LFN "
                                                              "--input PFN GUID ENTRIES ...")
    p.set_defaults(func=cmd_extract_job)


def cmd_pick(args) -> int:
    from .. import picking
    from ..settings import Settings

    settings = Settings.from_env()
    # the whole file is checked here (up to MAX_REQUEST_BYTES), planned here with --dry-run, and otherwise sent
    # inline or, over MAX_INLINE_BYTES, uploaded to the requests area and passed by events_uri (submission_params)
    request = picking.PickRequest.from_params({
        "events": read_text_file(args.events, "a file of 'run event' lines"), "datatype": args.type,
        "project": args.project, "stream": args.stream, "version": args.version, "output": args.out,
        "max_events": args.max, "backend": args.backend, "files_per_job": args.files_per_job,
        "job_timeout_minutes": args.job_timeout}, inline_cap=picking.MAX_REQUEST_BYTES)
    if args.dry_run:
        return _dry_run(args, settings, request)
    from ..airflow_api import AirflowAPI

    api = AirflowAPI.from_env(settings)  # the run's caller is the user the CLI logs in as: its scopes, checked here
    request = picking.authorize(request, api.user, settings.groups_of(api.user))
    run_id = api.trigger("eventindex_pick", picking.submission_params(request, settings.requests_area))
    err.print(f"submitted {run_id} to {api.url}")
    with progress() as bar:
        task = bar.add_task("picking", total=None)
        state = api.wait("eventindex_pick", run_id, lambda done, total: bar.update(task, completed=done, total=total))
    summary = api.run_xcom("eventindex_pick", run_id, "summary") if state == "success" else None
    if summary and summary.get("rerun"):
        err.print(f"already done by {summary['request_id']}: nothing changed")
    if args.json:
        print(json.dumps({"run_id": run_id, "state": state, **(summary or {})}))
    elif summary:
        out.print(f"{state}: {summary['found']:,} found, {summary['missing']:,} missing -> {summary['output_dataset']}")
        if summary.get("output_uri"):
            nfiles = len(summary.get("files") or [])
            out.print(f"  {nfiles} file{'' if nfiles == 1 else 's'} in {summary['output_uri']} "
                      f"(RSE {summary.get('output_rse')})", highlight=False, markup=False, soft_wrap=True)
    else:
        failed = api.failed_tasks("eventindex_pick", run_id)
        out.print(f"{state}: {'failed step(s) ' + ', '.join(failed) + '; ' if failed else ''}see the run {run_id} "
                  f"in the Airflow UI ({api.url})")
    return 0 if state == "success" else 1


def _dry_run(args, settings, request) -> int:
    from .. import picking
    from ..catalog import open_catalog
    from ..ddm import LocalRucio, RealRucio

    ddm = RealRucio(config=settings.rucio_config) if args.rucio else LocalRucio(settings.local_rucio_url)
    started = time.perf_counter()
    plan = picking.plan(open_catalog(settings), ddm, request)
    summary = {**plan.summary(), "requested": len(request.events), "duplicates": request.duplicates_in_request,
               "plan_seconds": round(time.perf_counter() - started, 3)}
    if args.json:
        print(json.dumps({**summary, "missing_events": plan.missing[:1000]}))
        return 0
    out.print(f"{summary['found']:,} found, {summary['missing']:,} missing, in {len(plan.datasets)} datasets, "
              f"{summary['files']} files, {summary['jobs']} extraction jobs (planned in {summary['plan_seconds']} s)")
    for m in plan.missing[:10]:
        out.print(f"  missing {m['run']} {m['event']}: {m['reason']}")
    return 0


def cmd_picks(args) -> int:
    from .. import picking
    from ..metadata import make_engine
    from ..settings import Settings

    settings = Settings.from_env()
    if settings.metadata_url.startswith("sqlite:///") and not Path(settings.metadata_url[10:]).exists():
        rows = []  # a fresh home: nothing was ever requested (and reading must not create the DB)
    else:
        rows = picking.history.listing(make_engine(settings.metadata_url), args.limit)
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        err.print("no picking requests yet: submit one with `eventindex pick --events FILE --type AOD`")
        return 0
    t = table(f"{len(rows)} picking requests",
              ["request", "created", "state", "requested", "found", "missing", "output", "error"])
    for r in rows:
        t.add_row(r["request_id"], str(r["created"])[:19], r["state"], str(r["requested"]), str(r["found"] or ""),
                  str(r["missing"] or ""), r["output_dataset"] or "", r["error"] or "")
    out.print(t)
    return 0


def cmd_extract_job(args) -> int:
    from ..panda import run_job_command
    from ..picking.outputs import without_credentials

    result = run_job_command(args.job_args)
    out.print(f"{result['nevents']} events -> {without_credentials(result['uri'])}", highlight=False, markup=False,
              soft_wrap=True)
    return 0
