"""STOMP sensing: drain the producers' queue into the metadata DB (recorded in batches, acked after recording),
then start one ingestion run per dataset that has new job parts. Announcements accumulate per dataset; the run
waits until the parts make the whole dataset. Redelivered or repeated messages change nothing and start nothing."""

from __future__ import annotations

from dataclasses import replace

from airflow.sdk import BaseOperator

from eventindex import announcements, progress
from eventindex.messaging import drain_batches
from eventindex.rucio_events import handle_rucio_event, parse_rucio_event

from .failures import fail_fast_on_bad_input
from .hooks import CatalogHook, MetadataHook, StompHook


class StompDrainOperator(BaseOperator):
    def __init__(self, *, max_messages: int = 20000, idle_s: float = 2.0, batch_size: int = 500,
                 stomp_conn_id: str = "eventindex_stomp", metadata_conn_id: str = "eventindex_metadata", **kwargs):
        super().__init__(**kwargs)
        self.max_messages, self.idle_s, self.batch_size = max_messages, idle_s, batch_size
        self.stomp_conn_id, self.metadata_conn_id = stomp_conn_id, metadata_conn_id

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        target = StompHook(self.stomp_conn_id).get_target()
        if target is None:
            self.log.info("no broker configured (connection %s): nothing to drain", self.stomp_conn_id)
            return {"handled": 0, "poison": 0}
        engine = MetadataHook(self.metadata_conn_id).get_engine()
        counts = drain_batches(target, lambda msgs: announcements.record_many(engine, msgs),
                               announcements.parse_announcement, self.max_messages, self.idle_s,
                               batch_size=self.batch_size)
        for reason in counts.get("poison_reasons", []):
            self.log.error("poison message moved to %s.DLQ: %s", target.destination, reason)
        self.log.info("drained %s", counts)
        return {k: v for k, v in counts.items() if k != "poison_reasons"}


class RucioEventsDrainOperator(BaseOperator):
    """Rucio's Hermes events from our queue of ``VirtualTopic.rucio.events``: CLOSE is a completeness signal for
    the waiting ingestions (``progress``), ERASE marks the dataset erased in the catalogue."""

    def __init__(self, *, max_messages: int = 5000, idle_s: float = 2.0, stomp_conn_id: str = "eventindex_stomp",
                 metadata_conn_id: str = "eventindex_metadata", catalog_conn_id: str = "eventindex_catalog",
                 **kwargs):
        super().__init__(**kwargs)
        self.max_messages, self.idle_s = max_messages, idle_s
        self.stomp_conn_id, self.metadata_conn_id, self.catalog_conn_id = stomp_conn_id, metadata_conn_id, \
            catalog_conn_id

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        hook = StompHook(self.stomp_conn_id)
        target = hook.get_target()
        if target is None:
            self.log.info("no broker configured (connection %s): no Rucio events to drain", self.stomp_conn_id)
            return {"handled": 0, "poison": 0}
        target = replace(target, destination=hook.settings.rucio_events_destination)
        engine = MetadataHook(self.metadata_conn_id).get_engine()
        catalog = CatalogHook(self.catalog_conn_id).get_catalog()

        def record(events: list[dict | None]) -> None:  # each idempotent: a redelivered batch changes nothing
            for event in events:
                done = handle_rucio_event(engine, catalog, event)
                if done and done.get("note"):
                    self.log.info("%s", done["note"])

        counts = drain_batches(target, record, parse_rucio_event, self.max_messages, self.idle_s)
        for reason in counts.get("poison_reasons", []):
            self.log.error("poison message moved to %s.DLQ: %s", target.destination, reason)
        self.log.info("Rucio events drained: %s", {k: v for k, v in counts.items() if k != "poison_reasons"})
        return {k: v for k, v in counts.items() if k != "poison_reasons"}


class PendingAnnouncementsOperator(BaseOperator):
    """One ingestion run per dataset with job parts not yet in the catalogue (``progress.claim_runs``)."""

    def __init__(self, *, limit: int = 500, metadata_conn_id: str = "eventindex_metadata", **kwargs):
        super().__init__(**kwargs)
        self.limit, self.metadata_conn_id = limit, metadata_conn_id

    @fail_fast_on_bad_input
    def execute(self, context) -> list[dict]:
        runs = progress.claim_runs(MetadataHook(self.metadata_conn_id).get_engine(), self.limit)
        self.log.info("%d datasets with new job parts to ingest", len(runs))
        return [{"trigger_run_id": r["run_id"],
                 "conf": {"dataset": r["dataset"], "source": "stomp", "generation": r["generation"]}} for r in runs]
