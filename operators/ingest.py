"""Operators of the ingestion DAG. Thin: each calls one step of ``eventindex.ingest`` and passes small XComs."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from eventindex import ingest
from eventindex.errors import BadLoad, EventIndexError, Problem, ValidationFailed

from .hooks import CatalogHook, RucioHook


class _IngestOperator(BaseOperator):
    template_fields = ("dataset", "staging_uri")

    def __init__(self, *, dataset: str, staging_uri: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.dataset, self.staging_uri = dataset, staging_uri

    def _workdir(self, context) -> Path:
        settings = CatalogHook().get_settings()
        return settings.home / "work" / context["run_id"].replace(":", "_").replace("+", "_")


class FetchIndexOperator(_IngestOperator):
    """Copies the dataset's producer outputs to the work area, checking sizes and checksums."""

    def execute(self, context) -> dict:
        hook = CatalogHook()
        staging = self.staging_uri or hook.get_settings().staging
        try:
            fetched = ingest.fetch(self.dataset, staging, self._workdir(context))
        except BadLoad as exc:  # a corrupt or partial copy in the staging area: bad data, no retries
            ingest.record_problems(hook.get_settings().metadata_url, [Problem(self.dataset, None, str(exc))])
            raise AirflowFailException(str(exc)) from None
        self.log.info("fetched %d index files of %s", len(fetched.parquet), fetched.dataset)
        return fetched.to_dict()


class ValidateIndexOperator(_IngestOperator):
    """Schema, duplicates, counts against the announcement and against Rucio. Bad data fails without retries."""

    template_fields = (*_IngestOperator.template_fields, "announcement")

    def __init__(self, *, announcement: dict | None = None, allow_duplicates: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.announcement, self.allow_duplicates = announcement, allow_duplicates

    def execute(self, context) -> dict:
        fetched = ingest.Fetched(**context["ti"].xcom_pull(task_ids="fetch"))
        hook = RucioHook()
        try:
            summary = ingest.validate(fetched, hook.get_client(), self.announcement or None, self.allow_duplicates)
        except ValidationFailed as exc:
            ingest.record_problems(hook.get_settings().metadata_url, exc.problems)
            for p in exc.problems:
                self.log.error("validation: %s | %s | %s", p.dataset, p.file or "-", p.what)
            raise AirflowFailException(str(exc)) from None
        self.log.info("valid: %s", summary)
        return summary


class LoadIndexOperator(_IngestOperator):
    """Loads the dataset into the catalogue, atomically (a rerun replaces it, never duplicates)."""

    def execute(self, context) -> dict:
        fetched = ingest.Fetched(**context["ti"].xcom_pull(task_ids="fetch"))
        try:
            result = ingest.load(CatalogHook().get_catalog(), fetched)
        except EventIndexError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("loaded %s: %d events in %.2f s", result.dataset, result.nevents, result.seconds)
        return {"dataset": result.dataset, "nevents": result.nevents, "load_id": result.load_id}


class PublishIndexOperator(_IngestOperator):
    """Records the dataset's state, retires older versions when asked, and emits the catalogue Asset event."""

    template_fields = (*_IngestOperator.template_fields, "obsolete_older")

    def __init__(self, *, obsolete_older: bool | str = False, **kwargs):
        super().__init__(**kwargs)
        self.obsolete_older = obsolete_older

    def execute(self, context) -> dict:
        published = ingest.publish(CatalogHook().get_catalog(), self.dataset, self.obsolete_older in (True, "True"))
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {"dataset": published["dataset"],
                                                      "project": published["project"],
                                                      "nevents": published["nevents"]}
        self.log.info("published %s", published)
        return published
