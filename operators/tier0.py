"""The Tier-0 semaphore: READY datasets start an ingestion run; the flag turns DONE only once the dataset is in the
catalogue. Both tasks are idempotent, so a poll can be cleared and rerun at any time."""

from __future__ import annotations

from airflow.sdk import BaseOperator

from eventindex import upstream

from .hooks import CatalogHook, upstream_url


def tier0_url() -> str:
    return upstream_url("eventindex_tier0")


class Tier0MarkDoneOperator(BaseOperator):
    """Flips READY -> DONE for the READY datasets that are now loaded in the catalogue."""

    def execute(self, context) -> list[str]:
        url = tier0_url()
        loaded = {r["name"] for r in CatalogHook().get_catalog().datasets()}
        done = [name for name in upstream.ready_datasets(url, limit=10_000) if name in loaded]
        flipped = upstream.mark_done(url, done)
        self.log.info("%d Tier-0 datasets DONE", flipped)
        return done


class Tier0ReadyOperator(BaseOperator):
    """The READY datasets not loaded yet, as keyword sets for triggering one ingestion run each (capped per poll)."""

    def __init__(self, *, limit: int = 50, **kwargs):
        super().__init__(**kwargs)
        self.limit = limit

    def execute(self, context) -> list[dict]:
        loaded = {r["name"] for r in CatalogHook().get_catalog().datasets()}
        ready = [n for n in upstream.ready_datasets(tier0_url(), limit=self.limit + len(loaded)) if n not in loaded]
        ready = ready[: self.limit]
        self.log.info("%d READY datasets to ingest", len(ready))
        return [{"trigger_run_id": f"tier0__{name}", "conf": {"dataset": name, "source": "tier0"}} for name in ready]
