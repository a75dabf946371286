"""The simulated world and the nomenclature: make a world, list it, read a dataset name."""

from __future__ import annotations

import json
from pathlib import Path

from .args import add_command, add_noun, add_world_options, world_config
from .output import err, out


def register(sub) -> None:
    p = add_command(sub, "simulate", "make the mini-ATLAS world of ROOT files",
                    ["eventindex simulate", "eventindex simulate --runs 1 --events-per-run 5000 --out /tmp/world"])
    p.add_argument("--out", help="world folder (default $EVENTINDEX_HOME/world)")
    add_world_options(p)
    p.set_defaults(func=cmd_simulate)

    p = add_command(sub, "world", "list the datasets of the simulated world",
                    ["eventindex world", "eventindex world --json"])
    p.add_argument("--world", help="world folder (default $EVENTINDEX_HOME/world)")
    p.add_argument("--json", action="store_true", help="the world's description as JSON")
    p.set_defaults(func=cmd_world)

    name_sub = add_noun(sub, "name", "dataset nomenclature",
                        ["eventindex name parse data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831"])
    p = add_command(name_sub, "parse", "print the fields of a dataset name or Rucio DID as JSON",
                    ["eventindex name parse data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831",
                     "eventindex name parse user.jdoe:user.jdoe.picked.AOD --compact"])
    p.add_argument("name")
    p.add_argument("--compact", action="store_true", help="one line of JSON")
    p.set_defaults(func=cmd_name_parse)


def cmd_name_parse(args) -> int:
    from .. import naming

    print(json.dumps(naming.parse(args.name).to_dict(), indent=None if args.compact else 1))
    return 0


def cmd_simulate(args) -> int:
    from ..demo import simulate_world, world_table
    from ..settings import Settings

    config = world_config(args)
    out_dir = Path(args.out) if args.out else Settings.from_env().world_dir
    world = simulate_world(err, out_dir, config)
    out.print(world_table(world))
    out.print(f"world written to {out_dir} in {world['_seconds']:.1f} s "
              f"({world['nevents'] / world['_seconds']:,.0f} events/s)")
    return 0


def cmd_world(args) -> int:
    from ..settings import Settings
    from ..sim.world import load_world

    world = load_world(Path(args.world) if args.world else Settings.from_env().world_dir)
    if args.json:
        print(json.dumps(world))
    else:
        from ..demo import world_table

        out.print(world_table(world))
    return 0
