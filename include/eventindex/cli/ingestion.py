"""Where datasets are on their way into the catalogue: waiting for jobs' parts, stuck, loaded, failed."""

from __future__ import annotations

from ..errors import BadRequest
from .args import CommaList, add_command
from .output import out, print_json, table

STATES = ("closed", "queued", "waiting", "complete", "loaded", "stuck", "failed")


def register(sub) -> None:
    p = add_command(sub, "ingestion", "datasets on their way into the catalogue (grid datasets wait for their jobs' "
                                      "parts; past a time they are stuck)",
                    ["eventindex ingestion", "eventindex ingestion --state waiting,stuck",
                     "eventindex ingestion --state stuck --json"])
    p.add_argument("--state", action=CommaList, help=f"only these states ({', '.join(STATES)})")
    p.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50, newest first)")
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=cmd_ingestion)


def cmd_ingestion(args) -> int:
    from .. import metadata as md
    from .. import progress
    from ..settings import Settings

    unknown = sorted(set(args.state) - set(STATES))
    if unknown:
        raise BadRequest(f"unknown state {', '.join(unknown)}: the states are {', '.join(STATES)}")
    engine = md.make_engine(Settings.from_env().metadata_url)
    rows = progress.listing(engine, tuple(args.state) if args.state else None)[: args.limit]
    if args.json:
        print_json(rows)
        return 0
    t = table("datasets on their way in", ["dataset", "state", "detail", "files", "run", "since", "updated"],
              right=("files", "run"))
    for r in rows:
        files = f"{r['files_staged'] or 0}/{r['files_expected']}" if r["files_expected"] is not None else "-"
        t.add_row(r["dataset"], r["state"], r["detail"] or "", files, str(r["generation"] or "-"),
                  f"{r['first_seen']:%Y-%m-%d %H:%M}", f"{r['updated']:%Y-%m-%d %H:%M}")
    out.print(t if rows else "no dataset on its way in" + (f" with state {','.join(args.state)}" if args.state else ""))
    return 0
