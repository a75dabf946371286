"""The catalogue's nouns: where an event is, how many pass a selection (in all, per run or lumi block), the
selection as a file, overlaps, and the datasets themselves (list, show, declare obsolete, restore). The answers
with ``--json`` are those of ``eventindex.monitoring``, the same as the web app's."""

from __future__ import annotations

import json

from .args import CommaList, add_command, add_selection_options, selection
from .output import err, matrix_table, out, progress, table

NOT_LOADED = "the catalogue is empty: run `eventindex demo`, or `eventindex load STAGING` after producing"


def _catalog():
    from ..catalog import open_catalog

    return open_catalog()


def register(sub) -> None:
    p = add_command(sub, "lookup", "where is an event: its records and references per format",
                    ["eventindex lookup 358031 1234567", "eventindex lookup 358031 1234567 --type AOD --json"])
    p.add_argument("run", type=int)
    p.add_argument("event", type=int)
    p.add_argument("--project", help="project tag, e.g. data18_13TeV")
    p.add_argument("--type", help="data type: RAW, AOD, DAOD_PHYS, ...")
    p.add_argument("--version", help="AMI tag chain, or 'latest'")
    p.add_argument("--json", action="store_true", help="the records as JSON (exit 3 when none)")
    p.set_defaults(func=cmd_lookup)

    p = add_command(sub, "count", "how many events pass a selection (records: add --type to count events once)",
                    ["eventindex count --stream physics_Main --type RAW",
                     "eventindex count --type AOD --version latest --trigger HLT_mu26_ivarmedium_L1MU14FCH --lumi 10-20",
                     "eventindex count --type RAW --stream physics_Main --by lumi_block --json"])
    add_selection_options(p)
    p.add_argument("--by", choices=["run", "lumi_block"], help="count per run or per lumi block (a table, or a JSON "
                                                                 "list with --json)")
    p.set_defaults(func=cmd_count)

    p = add_command(sub, "select", "write the events passing a selection to a CSV, Parquet or JSON file",
                    ["eventindex select --type AOD --stream physics_Main --lumi 1-5 --output events.csv",
                     "eventindex select --dataset NAME --columns run_number,event_number,AOD_guid --output e.parquet"])
    add_selection_options(p)
    p.add_argument("--columns", action=CommaList, metavar="A,B", help="column names; comma-separated or repeated")
    p.add_argument("--output", required=True, help="FILE.csv, FILE.parquet or FILE.json (in an existing folder)")
    p.set_defaults(func=cmd_select)

    p = add_command(sub, "overlaps", "events shared between streams or triggers",
                    ["eventindex overlaps", "eventindex overlaps --type AOD --triggers HLT_e26_lhtight_ivarloose_"
                     "L1EM22VHI,HLT_mu26_ivarmedium_L1MU14FCH"])
    add_selection_options(p)
    p.add_argument("--streams", action=CommaList, metavar="A,B",
                   help="streams to compare (default: the three streams, RAW)")
    p.add_argument("--triggers", action=CommaList, metavar="A,B",
                   help="triggers to compare (events of RAW unless --type, --dataset or --guid is given)")
    p.set_defaults(func=cmd_overlaps)

    p = add_command(sub, "datasets", "the datasets in the catalogue, sorted by name",
                    ["eventindex datasets", "eventindex datasets --all --json",
                     "eventindex datasets --state obsolete --source grid --type AOD --offset 100 --limit 50"])
    p.add_argument("--all", action="store_true", help="every status, not only loaded datasets")
    p.add_argument("--state", help="only datasets in this status: loaded, obsolete or erased")
    p.add_argument("--source", help="only datasets ingested by: tier0, grid, campaign or manual")
    p.add_argument("--project", help="project tag, e.g. data18_13TeV")
    p.add_argument("--type", help="data type: RAW, AOD, DAOD_PHYS, ...")
    p.add_argument("--offset", type=int, default=0, help="skip this many (default 0)")
    p.add_argument("--limit", type=int, default=1000, help="at most this many, up to 1000 (default 1000)")
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=cmd_datasets)

    p = add_command(sub, "show", "one dataset: counts, stages, load history, reports",
                    ["eventindex show data18_13TeV.00358031.physics_Main.daq.RAW"])
    p.add_argument("dataset")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_show)

    p = add_command(sub, "obsolete", "hide a dataset from queries (kept in its history)",
                    ["eventindex obsolete data18_13TeV.00358031.physics_Main.merge.AOD.r11969_r11784_p4072"])
    p.add_argument("dataset")
    p.set_defaults(func=cmd_obsolete)

    p = add_command(sub, "restore", "show an obsolete dataset in queries again (not an erased one)",
                    ["eventindex restore data18_13TeV.00358031.physics_Main.merge.AOD.r11969_r11784_p4072"])
    p.add_argument("dataset")
    p.set_defaults(func=cmd_restore)


def cmd_lookup(args) -> int:
    matches = _catalog().lookup(args.run, args.event, project=args.project, datatype=args.type, version=args.version)
    if args.json:
        print(json.dumps(matches))
        return 0 if matches else 3
    if not matches:
        err.print(f"event {args.run} {args.event} is not in the catalogue")
        if not _catalog().datasets():
            err.print(NOT_LOADED)
        return 3
    from ..schema import stage_key

    stages = sorted({s for m in matches for s in m["refs"]}, key=stage_key)
    t = table(f"run {args.run} event {args.event}: {len(matches)} records", ["dataset", "lumi block", *stages])
    for m in matches:
        t.add_row(m["dataset"], str(m["lumi_block"]),
                  *[f"{m['refs'][s]['guid']} #{m['refs'][s]['oid']}" if s in m["refs"] else "" for s in stages])
    out.print(t)
    return 0


def cmd_count(args) -> int:
    catalog = _catalog()
    sel = selection(args)
    if args.by:
        return _count_by(catalog, sel, args)
    n = catalog.count(sel)
    print(json.dumps({"count": n}) if args.json else f"{n:,}")
    formats = _formats_counted(catalog, sel)
    if n == 0 and not catalog.datasets():
        err.print(NOT_LOADED)
    if len(formats) > 1:
        err.print(f"note: counted records of {len(formats)} formats ({', '.join(formats)}): an event is counted once "
                  "per format; add --type to count events", highlight=False, soft_wrap=True)
    return 0


def _count_by(catalog, sel, args) -> int:
    from ..monitoring import events_per

    rows = events_per(catalog, sel, args.by)
    if args.json:
        print(json.dumps(rows))
        return 0
    keys = ["run_number", "lumi_block"] if args.by == "lumi_block" else ["run_number"]
    t = table(f"{sum(r['events'] for r in rows):,} events in {len(rows)} {args.by.replace('_', ' ')}s",
              [*keys, "events"], right=(*keys, "events"))
    for r in rows:
        t.add_row(*[str(r[k]) for k in keys], f"{r['events']:,}")
    out.print(t)
    return 0


def _formats_counted(catalog, sel) -> list[str]:
    """The data types of the datasets a selection may count, from the dataset list alone (no scan)."""
    if sel.datatype or sel.dataset or sel.guid:
        return []
    from ..schema import stage_key

    return sorted({d["datatype"] for d in catalog.matching(sel)}, key=stage_key)


def cmd_select(args) -> int:
    from ..export import output_format, write_selection

    output_format(args.output)  # a wrong name or folder is refused before the catalogue is opened
    catalog = _catalog()
    sel = selection(args)
    with progress() as bar:
        task = bar.add_task("selecting", total=None)
        written = write_selection(catalog, sel, args.columns or None, args.output,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    if args.json:
        print(json.dumps({"count": written, "output": args.output}))
    else:
        out.print(f"{written:,} events written to {args.output}")
    return 0


def cmd_overlaps(args) -> int:
    from ..monitoring import overlaps

    answer = overlaps(_catalog(), selection(args), streams=args.streams or None, triggers=args.triggers or None)
    if args.json:
        print(json.dumps(answer))
        return 0
    out.print(matrix_table("events shared (diagonal: events in each)", answer["labels"], answer["matrix"]))
    return 0


def cmd_datasets(args) -> int:
    from ..monitoring import dataset_list

    catalog = _catalog()
    state = args.state or (None if args.all else "loaded")
    listed = dataset_list(catalog, state=state, source=args.source, project=args.project, datatype=args.type,
                          offset=args.offset, limit=args.limit)
    rows, total, first = listed["datasets"], listed["total"], listed["offset"] + 1
    if args.json:
        print(json.dumps(rows))
        return 0
    if rows:
        title = f"{total} datasets" if len(rows) == total else f"datasets {first}-{first + len(rows) - 1} of {total}"
        t = table(title, ["dataset", "status", "source", "files", "events", "unique", "loaded"],
                  right=("files", "events", "unique"))
        for r in rows:
            t.add_row(r["name"], r["status"], r["source"] or "", str(r["nfiles"]), f"{r['nevents']:,}",
                      f"{r['unique_events']:,}", (r["loaded_at"] or "")[:19].replace("T", " "))
        out.print(t)
    elif not catalog.datasets(include_obsolete=True):
        err.print(NOT_LOADED)
    else:
        err.print(f"no datasets to show ({total} match these options)", highlight=False)
    if total > first - 1 + len(rows):
        err.print(f"showing {first}-{first - 1 + len(rows)} of {total}: use --offset and --limit for the rest",
                  highlight=False)
    return 0


def cmd_show(args) -> int:
    from ..monitoring import dataset_detail

    row = dataset_detail(_catalog(), args.dataset)
    if args.json:
        print(json.dumps(row))
        return 0
    for key in ("name", "status", "source", "project", "run_number", "dsid", "stream", "datatype", "version",
                "nfiles", "nevents", "unique_events", "duplicates", "stages", "smks", "loaded_at", "obsolete_at"):
        if row.get(key) is not None:
            out.print(f"[bold]{key:>14}[/bold]  {row[key]}")
    if not row["trigger_information"]:
        out.print(f"[bold]{'triggers':>14}[/bold]  none: its events carry no trigger decisions")
    elif row["menu_missing"]:
        out.print(f"[bold]{'menu missing':>14}[/bold]  SMK {', '.join(map(str, row['menu_missing']))}: not selectable "
                  "by trigger name until the conditions are synced", highlight=False)
    ami = row.get("ami")
    if ami:
        out.print(f"[bold]{'production':>14}[/bold]  {ami['production_status']} (as of {ami['computed_at']}, "
                  f"after: {ami['reason']})", highlight=False)
        if ami["cross_section_avg"] is not None:
            out.print(f"[bold]{'cross-section':>14}[/bold]  {ami['cross_section_avg']:.6g} pb (min "
                      f"{ami['cross_section_min']:.6g}, max {ami['cross_section_max']:.6g}; "
                      f"{len(ami['generation_tasks'])} generation tasks)", highlight=False)
        if ami["filter_efficiency_avg"] is not None:
            out.print(f"[bold]{'filter eff.':>14}[/bold]  {ami['filter_efficiency_avg']:.6g} (min "
                      f"{ami['filter_efficiency_min']:.6g}, max {ami['filter_efficiency_max']:.6g})", highlight=False)
    for run, lbs in (row["lost_lumi_blocks"] or {}).items():
        out.print(f"[bold]{'lost lumi':>14}[/bold]  run {run}: {len(lbs)} lumi blocks of its RAW are not in it "
                  f"({', '.join(map(str, lbs))})", highlight=False)
    t = table("load history", ["at", "action", "load id", "events"])
    for h in row["history"]:
        t.add_row(h["at"][:19].replace("T", " "), h["action"], h["load_id"] or "", str(h["nevents"] or ""))
    out.print(t)
    if row["validation_reports"]:
        t = table("validation reports", ["created", "file", "problem"])
        for v in row["validation_reports"]:
            t.add_row(v["created"][:19].replace("T", " "), v["file"] or "", v["problem"])
        out.print(t)
    if row["progress"] and row["progress"]["state"] != "loaded":
        p = row["progress"]
        out.print(f"[bold]{'ingestion':>14}[/bold]  {p['state']}" + (f": {p['detail']}" if p["detail"] else ""),
                  highlight=False)
    return 0


def cmd_obsolete(args) -> int:
    if _catalog().mark_obsolete(args.dataset):
        out.print(f"{args.dataset} marked obsolete (kept in the history, hidden from queries)")
    else:
        out.print(f"{args.dataset} was not loaded (already obsolete or erased): nothing changed")
    return 0


def cmd_restore(args) -> int:
    if _catalog().restore(args.dataset):
        out.print(f"{args.dataset} restored: visible to queries again")
    else:
        out.print(f"{args.dataset} is loaded already: nothing changed")
    return 0
