"""`eventindex demo`: the whole demo on the library path (the Airflow path is `make demo`, in the Airflow layer)."""

from __future__ import annotations

from .args import add_command, add_world_options, world_config
from .output import out


def register(sub) -> None:
    p = add_command(sub, "demo", "simulate the world, index, load, query and pick it, on the embedded defaults",
                    ["eventindex demo", "EVENTINDEX_HOME=$(mktemp -d) eventindex demo --runs 1 --events-per-run 2000"])
    add_world_options(p)
    p.add_argument("--fresh", action="store_true", help="regenerate the world even if one exists")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from .. import demo
    from ..settings import Settings

    return demo.run(out, Settings.from_env(), world_config(args), fresh=args.fresh)
