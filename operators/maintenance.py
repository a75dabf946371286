"""The maintenance operators: the catalogue's garbage files (``eventindex.maintenance.collect_garbage``) and the
Rucio CLOSE records nobody announced (``prune_rucio_closes``). Both are idempotent: a rerun finds nothing more."""

from __future__ import annotations

from airflow.sdk import BaseOperator

from eventindex import maintenance
from eventindex.errors import BadInput

from .failures import fail_fast_on_bad_input
from .hooks import CatalogHook, MetadataHook


class CatalogGarbageOperator(BaseOperator):
    """Removes the files of crashed loads and replaced versions older than ``min_age_s`` (none for Phoenix); returns
    the counts. A bad age fails without retries."""

    template_fields = ("catalog_conn_id", "min_age_s", "dry_run")

    def __init__(self, *, catalog_conn_id: str = "eventindex_catalog",
                 min_age_s: float | str = maintenance.DEFAULT_MIN_AGE_S, dry_run: bool | str = False, **kwargs):
        super().__init__(**kwargs)
        self.catalog_conn_id, self.min_age_s, self.dry_run = catalog_conn_id, min_age_s, dry_run

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        catalog = CatalogHook(self.catalog_conn_id).get_catalog()
        result = maintenance.collect_garbage(catalog, _number(self.min_age_s, "min age"), dry_run=_flag(self.dry_run))
        for r in result.removed:
            self.log.info("%s %s (%d bytes, %s)", "would remove" if result.dry_run else "removed", r["path"],
                          r["bytes"], r["reason"])
        for k in result.kept:
            self.log.info("kept %s for now (%s)", k["path"], k["reason"])
        self.log.info("%s catalogue: %d files, %d bytes %s; %d kept for now", catalog.backend, len(result.removed),
                      result.bytes_freed, "to free" if result.dry_run else "freed", len(result.kept))
        return {"backend": catalog.backend, "removed": len(result.removed), "bytes_freed": result.bytes_freed,
                "kept": len(result.kept), "dry_run": result.dry_run}


class PruneRucioClosesOperator(BaseOperator):
    """Forgets the Rucio CLOSE records of datasets nobody announced within ``retention_days``; returns their number.
    A bad retention fails without retries."""

    template_fields = ("metadata_conn_id", "retention_days", "dry_run")

    def __init__(self, *, metadata_conn_id: str = "eventindex_metadata",
                 retention_days: float | str = maintenance.DEFAULT_CLOSE_RETENTION_DAYS, dry_run: bool | str = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.metadata_conn_id, self.retention_days, self.dry_run = metadata_conn_id, retention_days, dry_run

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        engine = MetadataHook(self.metadata_conn_id).get_engine()
        names = maintenance.prune_rucio_closes(engine, _number(self.retention_days, "retention"),
                                               dry_run=_flag(self.dry_run))
        self.log.info("%s the Rucio CLOSE records of %d datasets nobody announced: %s",
                      "would forget" if _flag(self.dry_run) else "forgot", len(names), ", ".join(names[:50]) or "-")
        return {"pruned": len(names), "dry_run": _flag(self.dry_run)}


def _number(value, what: str) -> float:
    """A templated number (a string unless the DAG renders native objects)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{what} {value!r} is not a number") from None  # fails the task at once (failures.py)


def _flag(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")
