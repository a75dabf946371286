"""STOMP sensing: drain the producers' queue into the metadata DB (ack after recording), then start one ingestion
run per announced dataset job. Redelivered or repeated messages map to the same run id and start nothing new."""

from __future__ import annotations

from airflow.sdk import BaseOperator

from eventindex import announcements
from eventindex.messaging import drain

from .hooks import CatalogHook, MetadataHook, StompHook


class StompDrainOperator(BaseOperator):
    def __init__(self, *, max_messages: int = 500, idle_s: float = 2.0, stomp_conn_id: str = "eventindex_stomp",
                 metadata_conn_id: str = "eventindex_metadata", **kwargs):
        super().__init__(**kwargs)
        self.max_messages, self.idle_s = max_messages, idle_s
        self.stomp_conn_id, self.metadata_conn_id = stomp_conn_id, metadata_conn_id

    def execute(self, context) -> dict:
        target = StompHook(self.stomp_conn_id).get_target()
        if target is None:
            self.log.info("no broker configured (connection %s): nothing to drain", self.stomp_conn_id)
            return {"handled": 0, "poison": 0}
        engine = MetadataHook(self.metadata_conn_id).get_engine()
        counts = drain(target, lambda body: announcements.record(engine, announcements.parse_announcement(body)),
                       self.max_messages, self.idle_s)
        for reason in counts.get("poison_reasons", []):
            self.log.error("poison message moved to %s.DLQ: %s", target.destination, reason)
        self.log.info("drained %s", counts)
        return {k: v for k, v in counts.items() if k != "poison_reasons"}


class PendingAnnouncementsOperator(BaseOperator):
    def __init__(self, *, limit: int = 500, catalog_conn_id: str = "eventindex_catalog",
                 metadata_conn_id: str = "eventindex_metadata", **kwargs):
        super().__init__(**kwargs)
        self.limit, self.catalog_conn_id, self.metadata_conn_id = limit, catalog_conn_id, metadata_conn_id

    def execute(self, context) -> list[dict]:
        loaded = {r["name"] for r in CatalogHook(self.catalog_conn_id).get_catalog().datasets()}
        msgs = announcements.pending(MetadataHook(self.metadata_conn_id).get_engine(), loaded, self.limit)
        self.log.info("%d announced dataset jobs to ingest", len(msgs))
        return [{"trigger_run_id": f"stomp__{m['dataset']}__{m['task_id']}__{m['job_id']}",
                 "conf": {"dataset": m["dataset"], "source": "stomp", "announcement": m}} for m in msgs]
