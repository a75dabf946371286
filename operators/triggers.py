"""Triggers (run by Airflow's triggerer, so a waiting task holds no worker slot). Each serializes connection ids and
job ids only: the configuration (server URL, token file) is read from the connection when the trigger runs."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent

from eventindex.errors import PandaError
from eventindex.panda import TERMINAL, PandaJobs

from .hooks import PandaHook


class PandaJobTrigger(BaseTrigger):
    """Polls one PanDA job until it ends, or until ``timeout_seconds`` after ``started`` (e.g. stuck staging from
    tape): the event then says ``timeout`` and the task kills the job and fails, to be retried. Failed polls are
    logged and polled again (PanDA being unreachable for a while is not the job's fault). A user who marks the
    deferred task failed or clears it kills the job (:meth:`on_kill`)."""

    def __init__(self, panda_id: int, panda_conn_id: str | None, timeout_seconds: float, started: float | None = None):
        super().__init__()
        self.panda_id, self.panda_conn_id, self.timeout_seconds = int(panda_id), panda_conn_id, float(timeout_seconds)
        self.started = time.time() if started is None else float(started)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("eventindex_airflow.triggers.PandaJobTrigger",
                {"panda_id": self.panda_id, "panda_conn_id": self.panda_conn_id,
                 "timeout_seconds": self.timeout_seconds, "started": self.started})

    async def _jobs(self) -> PandaJobs:
        cfg = await PandaHook(panda_conn_id=self.panda_conn_id).aget_config()
        return await asyncio.to_thread(PandaJobs, cfg)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        jobs = await self._jobs()
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
            await asyncio.sleep(jobs.cfg.poll_seconds)

    async def on_kill(self) -> None:
        jobs = await self._jobs()
        await asyncio.to_thread(jobs.kill, [self.panda_id])
        self.log.info("PanDA job %d killed", self.panda_id)
