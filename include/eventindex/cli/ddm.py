"""Data management: register the simulated world's datasets and replicas in Rucio or the local data catalogue."""

from __future__ import annotations

from pathlib import Path

from .args import add_command, add_noun
from .output import out


def register(sub) -> None:
    ddm_sub = add_noun(sub, "ddm", "data management (Rucio)", ["eventindex ddm register",
                                                               "eventindex ddm register --rucio --rse CERN-PROD_DATADISK"])
    p = add_command(ddm_sub, "register", "register the simulated world's datasets and replicas",
                    ["eventindex ddm register", "RUCIO_CONFIG=rucio.cfg eventindex ddm register --rucio"])
    p.add_argument("--world", help="world folder (default $EVENTINDEX_HOME/world)")
    p.add_argument("--rucio", action="store_true", help="a real Rucio server (RUCIO_CONFIG), not the local catalogue")
    p.add_argument("--rse", default="LOCAL_DISK", help="the storage element of the replicas (default LOCAL_DISK)")
    p.set_defaults(func=cmd_register)


def cmd_register(args) -> int:
    from ..ddm import LocalRucio, RealRucio, register_world
    from ..settings import Settings
    from ..sim.world import load_world

    settings = Settings.from_env()
    world_dir = Path(args.world) if args.world else settings.world_dir
    world = load_world(world_dir)
    if args.rucio:
        ddm, where = RealRucio(), f"the Rucio server of {settings.rucio_config or 'rucio.cfg'}"
    else:
        ddm, where = LocalRucio(settings.local_rucio_url), "the local data catalogue"
    n = register_world(ddm, world, world_dir, rse=args.rse)
    out.print(f"{n} datasets of {world_dir} registered in {where} (RSE {args.rse}, file:// replicas)")
    return 0
