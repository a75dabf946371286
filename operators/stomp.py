"""STOMP sensing: drain the producers' queue into the metadata DB (ack after recording), then start one ingestion
run per announced dataset job. Redelivered or repeated messages map to the same run id and start nothing new."""

from __future__ import annotations

from airflow.sdk import BaseOperator

from eventindex import announcements
from eventindex.messaging import drain
from eventindex.metadata import make_engine, upgrade

from .hooks import CatalogHook, StompHook


def _engine():
    engine = make_engine(CatalogHook().get_settings().metadata_url)
    upgrade(engine)
    return engine


class StompDrainOperator(BaseOperator):
    def __init__(self, *, max_messages: int = 500, idle_s: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.max_messages, self.idle_s = max_messages, idle_s

    def execute(self, context) -> dict:
        target = StompHook().get_target()
        if target is None:
            self.log.info("no broker configured (connection eventindex_stomp): nothing to drain")
            return {"handled": 0, "poison": 0}
        engine = _engine()
        counts = drain(target, lambda body: announcements.record(engine, announcements.parse_announcement(body)),
                       self.max_messages, self.idle_s)
        for reason in counts.get("poison_reasons", []):
            self.log.error("poison message moved to %s.DLQ: %s", target.destination, reason)
        self.log.info("drained %s", counts)
        return {k: v for k, v in counts.items() if k != "poison_reasons"}


class PendingAnnouncementsOperator(BaseOperator):
    def __init__(self, *, limit: int = 500, **kwargs):
        super().__init__(**kwargs)
        self.limit = limit

    def execute(self, context) -> list[dict]:
        loaded = {r["name"] for r in CatalogHook().get_catalog().datasets()}
        msgs = announcements.pending(_engine(), loaded, self.limit)
        self.log.info("%d announced dataset jobs to ingest", len(msgs))
        return [{"trigger_run_id": f"stomp__{m['dataset']}__{m['task_id']}__{m['job_id']}",
                 "conf": {"dataset": m["dataset"], "source": "stomp", "announcement": m}} for m in msgs]
