"""``eventindex gc``: remove the event store's garbage (files of crashed loads, replaced versions) and, on request,
the Rucio CLOSE records of datasets nobody announced; what the daily maintenance DAG runs."""

from __future__ import annotations

import argparse
import re

from .args import add_command
from .output import err, out, print_json

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """Seconds, or a number with a unit: 90s, 30m, 1h, 2d."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m:
        raise argparse.ArgumentTypeError(f"age {text!r} is not a duration: seconds, or a number with s, m, h or d "
                                         "(e.g. 30m)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"retention {text!r} is not a number of days >= 0")
    return value


def register(sub) -> None:
    p = add_command(sub, "gc", "remove the catalogue's garbage: files of crashed loads and replaced versions",
                    ["eventindex gc --dry-run", "eventindex gc --min-age 30m --json",
                     "eventindex gc --close-retention 30"])
    p.add_argument("--min-age", type=duration, default=3600, metavar="AGE",
                   help="keep replaced versions this long after their replacement (for queries that resolved them "
                        "before), and files of crashed loads this long after their last write (default 1h; a load "
                        "in progress holds the file it writes and commits seconds after its last one: use 0 only "
                        "when no load runs)")
    p.add_argument("--close-retention", type=days, metavar="DAYS",
                   help="also forget the Rucio CLOSE records of datasets nobody announced, older than DAYS "
                        "(default: keep them)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.add_argument("--json", action="store_true", help="what was removed and kept, as JSON")
    p.set_defaults(func=cmd_gc)


def cmd_gc(args) -> int:
    from .. import maintenance
    from ..catalog import open_catalog

    catalog = open_catalog()
    result = maintenance.collect_garbage(catalog, args.min_age, dry_run=args.dry_run)
    pruned = None
    if args.close_retention is not None:
        pruned = maintenance.prune_rucio_closes(catalog.engine, args.close_retention, dry_run=args.dry_run)
    if args.json:
        answer = {"backend": catalog.backend, **result.to_json()}
        if pruned is not None:
            answer["rucio_closes_pruned"] = pruned
        print_json(answer)
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for r in result.removed:
        out.print(f"{verb} {r['path']} ({_size(r['bytes'])}, {r['reason']})", highlight=False, soft_wrap=True)
    if catalog.backend != "embedded":
        out.print(f"the {catalog.backend} catalogue keeps no files: nothing to collect", highlight=False)
    else:
        out.print(f"{verb} {len(result.removed)} files, {_size(result.bytes_freed)}"
                  + (" freed" if not args.dry_run else ""), highlight=False)
    if result.kept:
        kept = _size(sum(k["bytes"] for k in result.kept))
        err.print(f"kept for now {len(result.kept)} files that are not live ({kept}): "
                  + "; ".join(sorted({k["reason"] for k in result.kept})), highlight=False, soft_wrap=True)
    if pruned is not None:
        out.print(f"{'would forget' if args.dry_run else 'forgot'} the Rucio CLOSE records of {len(pruned)} datasets "
                  f"nobody announced in {args.close_retention:g} days", highlight=False)
    return 0


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n}"
