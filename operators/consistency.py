"""The consistency operator: runs ``eventindex.consistency`` and fails the task when anything is inconsistent."""

from __future__ import annotations

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from eventindex import consistency

from .failures import fail_fast_on_bad_input
from .hooks import CatalogHook, RucioHook


class ConsistencyCheckOperator(BaseOperator):
    def __init__(self, *, catalog_conn_id: str = "eventindex_catalog", rucio_conn_id: str = "eventindex_rucio",
                 **kwargs):
        super().__init__(**kwargs)
        self.catalog_conn_id, self.rucio_conn_id = catalog_conn_id, rucio_conn_id

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        catalog = CatalogHook(self.catalog_conn_id).get_catalog()
        findings = consistency.check(catalog, RucioHook(self.rucio_conn_id).get_client())
        consistency.record(catalog.engine, findings)
        summary = {}
        for f in findings:
            summary[f.check_name] = summary.get(f.check_name, 0) + f.count
            self.log.warning("%-14s %s: %s", f.check_name, f.dataset or "-", f.detail)
        self.log.info("checked %d datasets: %s", len(catalog.datasets()), summary or "consistent")
        if findings:
            raise AirflowFailException(f"{len(findings)} inconsistencies: {summary}")
        return summary
