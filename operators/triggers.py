"""Triggers (run by Airflow's triggerer, so a waiting task holds no worker slot)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent

from eventindex.panda import TERMINAL, PandaConfig, PandaError, PandaJobs


class PandaJobTrigger(BaseTrigger):
    """Polls one PanDA job until it ends, or until ``timeout_seconds`` after ``started`` (e.g. stuck staging from
    tape): the event then says ``timeout`` and the task kills the job and fails, to be retried. Failed polls are
    logged and polled again (PanDA being unreachable for a while is not the job's fault)."""

    def __init__(self, panda_id: int, config: dict, timeout_seconds: float, started: float | None = None):
        super().__init__()
        self.panda_id, self.config, self.timeout_seconds = int(panda_id), dict(config), float(timeout_seconds)
        self.started = time.time() if started is None else float(started)

    @classmethod
    def for_job(cls, panda_id: int, cfg: PandaConfig, timeout_seconds: float) -> "PandaJobTrigger":
        return cls(panda_id, asdict(cfg), timeout_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("eventindex_airflow.triggers.PandaJobTrigger",
                {"panda_id": self.panda_id, "config": self.config, "timeout_seconds": self.timeout_seconds,
                 "started": self.started})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        cfg = PandaConfig(**self.config)
        jobs = await asyncio.to_thread(PandaJobs, cfg)
        last = None
        while True:
            try:
                state = (await asyncio.to_thread(jobs.status, [self.panda_id]))[self.panda_id]
            except PandaError as exc:
                self.log.warning("PanDA job %d: %s (polling again)", self.panda_id, exc)
                state = None
            if state is not None:
                if state["state"] != last:
                    self.log.info("PanDA job %d: %s", self.panda_id, state["state"])
                last = state["state"]
                if last in TERMINAL:
                    yield TriggerEvent({"panda_id": self.panda_id, **state})
                    return
            if time.time() - self.started > self.timeout_seconds:
                yield TriggerEvent({"panda_id": self.panda_id, "state": "timeout", "last": last,
                                    "error": f"still {last or 'unknown'} after {self.timeout_seconds:.0f} s"})
                return
            await asyncio.sleep(cfg.poll_seconds)
