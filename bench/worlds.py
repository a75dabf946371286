"""A simulated world, produced into a staging area and registered in the local data catalogue: the common start of
the ingestion and picking benchmarks."""

from __future__ import annotations

from pathlib import Path

from eventindex.ddm import LocalRucio, register_world
from eventindex.producer import ProducerResult, produce
from eventindex.sim.world import WorldConfig, simulate


def produced_world(home: Path, config: WorldConfig) -> tuple[dict, Path, LocalRucio, list[ProducerResult]]:
    """(world, staging folder, local Rucio, producer results) under ``home``."""
    world = simulate(home / "world", config)
    staging = home / "staging"
    results = [produce(d["name"], [str(home / "world" / f["path"]) for f in d["files"]], str(staging),
                       d["task_id"], 1) for d in world["datasets"]]
    ddm = LocalRucio(f"sqlite:///{home / 'rucio.sqlite'}")
    register_world(ddm, world, home / "world")
    return world, staging, ddm, results
