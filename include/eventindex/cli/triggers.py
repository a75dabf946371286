"""``eventindex triggers``: the L1 items and HLT chains a selection's ``--trigger`` can name, from the trigger menus
the catalogue holds (``eventindex.trigger.trigger_names``, the answer of the REST API's ``GET /triggers``)."""

from __future__ import annotations

from .args import add_command
from .output import err, out, print_json, table


def register(sub) -> None:
    p = add_command(sub, "triggers", "the trigger names (L1 items, HLT chains) of the catalogue's menus",
                    ["eventindex triggers --like mu26", "eventindex triggers --level L1 --json",
                     "eventindex triggers --like 'HLT_mu*_L1MU14FCH'"])
    p.add_argument("--like", metavar="PATTERN", help="names holding this text (case ignored), or matching a pattern "
                                                     "with * (any characters) and ? (one)")
    p.add_argument("--level", type=str.upper, choices=["L1", "HLT"], help="only L1 items or only HLT chains")
    p.add_argument("--json", action="store_true", help="one JSON list: name, level, smks, l1_seed, stream")
    p.set_defaults(func=cmd_triggers)


def cmd_triggers(args) -> int:
    from ..catalog import open_catalog
    from ..trigger import trigger_names

    menus = open_catalog().menus()
    names = trigger_names(menus, like=args.like, level=args.level)
    if args.json:
        print_json(names)
    else:
        title = f"{len(names)} trigger name{'' if len(names) == 1 else 's'}"
        t = table(title, ["name", "level", "L1 seed", "stream", "menus (SMK)"])
        for n in names:
            t.add_row(n["name"], n["level"], n["l1_seed"] or "", n["stream"] or "", ", ".join(map(str, n["smks"])))
        out.print(t if names else "no trigger name" + (f" like {args.like!r}" if args.like else ""))
    if not menus:
        err.print("no trigger menu is loaded: `eventindex load STAGING --menus menus.json`, or `eventindex demo`")
    return 0
