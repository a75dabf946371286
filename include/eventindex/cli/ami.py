"""``eventindex ami``: AMI's derived dataset quantities (production status, cross-section and filter efficiency)
brought up to date with the production system and Tier-0 (``eventindex.ami.derived``)."""

from __future__ import annotations

import json

from .args import add_command, add_noun
from .output import out, table


def register(sub) -> None:
    verbs = add_noun(sub, "ami", "AMI's derived dataset quantities",
                     ["eventindex ami sync", "eventindex ami sync --upstream sqlite:///path/upstream.sqlite --json"])
    s = add_command(verbs, "sync", "read the production system's tasks updated since the last read and the Tier-0 "
                                   "flags; recompute the quantities of what changed", ["eventindex ami sync"])
    s.add_argument("--upstream", metavar="URL", help="the production system's and Tier-0's DB (default: the "
                                                     "embedded world's upstream.sqlite)")
    s.add_argument("--json", action="store_true", help="the recomputed quantities as JSON")
    s.set_defaults(func=cmd_sync)


def cmd_sync(args) -> int:
    from ..ami import derived
    from ..catalog import open_catalog
    from ..errors import NotFound
    from ..settings import Settings

    url = args.upstream
    if url is None:
        path = Settings.from_env().world_dir / "upstream.sqlite"
        if not path.exists():
            raise NotFound(f"no upstream DB at {path}: give --upstream URL (or simulate a world first)")
        url = f"sqlite:///{path}"
    engine = open_catalog().engine
    done = derived.sync_tasks(engine, url) + derived.sync_tier0(engine, url)
    if args.json:
        print(json.dumps(done, default=str))
        return 0
    t = table(f"{len(done)} datasets recomputed", ["dataset", "status", "after", "cross-section pb (avg)"])
    for q in done:
        xs = q["cross_section_avg"]
        t.add_row(q["dataset"], q["production_status"], q["reason"], "" if xs is None else f"{xs:.6g}")
    out.print(t)
    return 0
