"""Operators of the ingestion DAG. Thin: each calls one step of ``eventindex.ingest``; the work copy of a dataset's
index files lives in the work area under the run's id, and XComs carry only its URIs and counts."""

from __future__ import annotations

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from eventindex import ingest
from eventindex.errors import BadInput, NotFound, Problem, ValidationFailed
from eventindex.workarea import WorkArea

from .hooks import CatalogHook, MetadataHook, RucioHook


class IngestOperator(BaseOperator):
    """What the ingestion operators share: the dataset, the staging area, the connections."""

    template_fields = ("dataset", "staging_uri")

    def __init__(self, *, dataset: str, staging_uri: str | None = None, catalog_conn_id: str = "eventindex_catalog",
                 rucio_conn_id: str = "eventindex_rucio", metadata_conn_id: str = "eventindex_metadata", **kwargs):
        super().__init__(**kwargs)
        self.dataset, self.staging_uri = dataset, staging_uri
        self.catalog_conn_id, self.rucio_conn_id, self.metadata_conn_id = catalog_conn_id, rucio_conn_id, \
            metadata_conn_id

    def catalog(self):
        return CatalogHook(self.catalog_conn_id, metadata_conn_id=self.metadata_conn_id).get_catalog()

    def report(self, problems: list[Problem], message: str):
        """Bad data: recorded in ``validation_reports``, and the task fails without retries."""
        ingest.record_problems(MetadataHook(self.metadata_conn_id).get_engine(), problems)
        for p in problems:
            self.log.error("validation: %s | %s | %s", p.dataset, p.file or "-", p.what)
        return AirflowFailException(message)


class FetchIndexOperator(IngestOperator):
    """Copies the dataset's producer outputs to the run's work area, checking sizes and checksums."""

    def execute(self, context) -> dict:
        settings = MetadataHook(self.metadata_conn_id).settings
        try:
            fetched = ingest.fetch(self.dataset, self.staging_uri or settings.staging,
                                   WorkArea(settings.work_area, context["run_id"]))
        except (BadInput, NotFound) as exc:  # a corrupt or partial copy, or nothing staged: no retries
            raise self.report([Problem(self.dataset, None, str(exc))], str(exc)) from None
        self.log.info("fetched %d index files of %s into %s", len(fetched.parquet), fetched.dataset, fetched.folder)
        return fetched.to_dict()


class ValidateIndexOperator(IngestOperator):
    """Schema, duplicates, counts against the announcement and against Rucio. Bad data fails without retries."""

    template_fields = (*IngestOperator.template_fields, "announcement", "fetched")

    def __init__(self, *, fetched: dict, announcement: dict | None = None, allow_duplicates: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.fetched, self.announcement, self.allow_duplicates = fetched, announcement, allow_duplicates

    def execute(self, context) -> dict:
        rucio = RucioHook(self.rucio_conn_id, metadata_conn_id=self.metadata_conn_id).get_client()
        try:
            summary = ingest.validate(ingest.Fetched(**self.fetched), rucio, self.announcement or None,
                                      self.allow_duplicates)
        except ValidationFailed as exc:
            raise self.report(exc.problems, str(exc)) from None
        self.log.info("valid: %s", summary)
        return summary


class LoadIndexOperator(IngestOperator):
    """Loads the dataset into the catalogue, atomically (a rerun replaces it, never duplicates)."""

    template_fields = (*IngestOperator.template_fields, "fetched")

    def __init__(self, *, fetched: dict, **kwargs):
        super().__init__(**kwargs)
        self.fetched = fetched

    def execute(self, context) -> dict:
        try:
            result = ingest.load(self.catalog(), ingest.Fetched(**self.fetched))
        except BadInput as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("loaded %s: %d events in %.2f s", result.dataset, result.nevents, result.seconds)
        return {"dataset": result.dataset, "nevents": result.nevents, "load_id": result.load_id}


class PublishIndexOperator(IngestOperator):
    """Records the dataset's state, retires older versions when asked, and emits the catalogue Asset event."""

    template_fields = (*IngestOperator.template_fields, "obsolete_older")

    def __init__(self, *, obsolete_older: bool | str = False, **kwargs):
        super().__init__(**kwargs)
        self.obsolete_older = obsolete_older

    def execute(self, context) -> dict:
        published = ingest.publish(self.catalog(), self.dataset, self.obsolete_older in (True, "True"))
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {"dataset": published["dataset"],
                                                      "project": published["project"],
                                                      "nevents": published["nevents"]}
        self.log.info("published %s", published)
        return published
