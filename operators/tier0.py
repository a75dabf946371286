"""The Tier-0 semaphore: READY datasets start an ingestion run; the flag turns DONE only once the dataset is in the
catalogue. Both tasks are idempotent, so a poll can be cleared and rerun at any time."""

from __future__ import annotations

from airflow.sdk import BaseOperator

from eventindex import upstream
from eventindex.ami import derived

from .failures import fail_fast_on_bad_input
from .hooks import CatalogHook, UpstreamHook


class _Tier0Operator(BaseOperator):
    def __init__(self, *, tier0_conn_id: str = "eventindex_tier0", catalog_conn_id: str = "eventindex_catalog",
                 **kwargs):
        super().__init__(**kwargs)
        self.tier0_conn_id, self.catalog_conn_id = tier0_conn_id, catalog_conn_id

    def loaded(self) -> set[str]:
        return {r["name"] for r in CatalogHook(self.catalog_conn_id).get_catalog().datasets()}

    def tier0_url(self) -> str:
        return UpstreamHook(self.tier0_conn_id).get_url()


class Tier0MarkDoneOperator(_Tier0Operator):
    """Flips READY -> DONE for the READY datasets that are now loaded in the catalogue."""

    @fail_fast_on_bad_input
    def execute(self, context) -> list[str]:
        url, loaded = self.tier0_url(), self.loaded()
        done = [name for name in upstream.ready_datasets(url, limit=10_000) if name in loaded]
        flipped = upstream.mark_done(url, done)
        self.log.info("%d Tier-0 datasets DONE", flipped)
        return done


class Tier0ReadyOperator(_Tier0Operator):
    """The READY datasets not loaded yet, as keyword sets for triggering one ingestion run each (capped per poll)."""

    def __init__(self, *, limit: int = 50, **kwargs):
        super().__init__(**kwargs)
        self.limit = limit

    @fail_fast_on_bad_input
    def execute(self, context) -> list[dict]:
        news = derived.sync_tier0(CatalogHook(self.catalog_conn_id).get_catalog().engine, self.tier0_url())
        self.log.info("AMI quantities recomputed for %d datasets whose Tier-0 flag changed", len(news))
        loaded = self.loaded()
        ready = [n for n in upstream.ready_datasets(self.tier0_url(), limit=self.limit + len(loaded))
                 if n not in loaded]
        ready = ready[: self.limit]
        self.log.info("%d READY datasets to ingest", len(ready))
        return [{"trigger_run_id": f"tier0__{name}", "conf": {"dataset": name, "source": "tier0"}} for name in ready]
