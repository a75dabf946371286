"""Operators of the ingestion DAG. Thin: each calls one step of ``eventindex.ingest``; the work copy of a dataset's
index files lives in the work area under the run's id, and XComs carry only its URIs and counts."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from eventindex import announcements, ingest, progress
from eventindex.errors import BadInput, BadLoad, NotFound, Problem, ValidationFailed
from eventindex.naming import parse
from eventindex.workarea import WorkArea

from .failures import fail_fast_on_bad_input
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
        engine = MetadataHook(self.metadata_conn_id).get_engine()
        ingest.record_problems(engine, problems)
        progress.mark(engine, problems[0].dataset, progress.FAILED, message[:500])
        for p in problems:
            self.log.error("validation: %s | %s | %s", p.dataset, p.file or "-", p.what)
        return AirflowFailException(message)


class WaitCompleteSensor(BaseSensorOperator):
    """Waits, in reschedule mode (no worker slot held between looks), until the dataset's staged job parts make the
    whole dataset; each look records "waiting for N of M files" in the metadata DB and the task log. Fails at once,
    without retries, for a malformed name, a malformed producer summary or a dataset that exists nowhere; fails when
    the dataset is still unknown to Rucio after ``unknown_to_rucio_minutes`` (a registration lag is short: hours of
    waiting would hide a typo or a dataset registered nowhere); reports it stuck after ``stuck_after_minutes``."""

    template_fields = ("dataset", "staging_uri", "stuck_after_minutes", "unknown_to_rucio_minutes")

    def __init__(self, *, dataset: str, staging_uri: str | None = None, stuck_after_minutes: float | str = 360,
                 unknown_to_rucio_minutes: float | str = 10, rucio_conn_id: str = "eventindex_rucio",
                 metadata_conn_id: str = "eventindex_metadata", **kwargs):
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 60)
        super().__init__(**kwargs)
        self.dataset, self.staging_uri, self.stuck_after_minutes = dataset, staging_uri, stuck_after_minutes
        self.unknown_to_rucio_minutes = unknown_to_rucio_minutes
        self.rucio_conn_id, self.metadata_conn_id = rucio_conn_id, metadata_conn_id

    @fail_fast_on_bad_input
    def poke(self, context) -> bool:
        hook = MetadataHook(self.metadata_conn_id)
        try:
            name = parse(self.dataset).name
            seen = ingest.wait_complete(hook.get_engine(), RucioHook(self.rucio_conn_id, metadata_conn_id=(
                self.metadata_conn_id)).get_client(), name, self.staging_uri or hook.settings.staging,
                timedelta(minutes=float(self.stuck_after_minutes)),
                timedelta(minutes=float(self.unknown_to_rucio_minutes)))
        except (BadInput, NotFound) as exc:  # waiting will not make a malformed name or summary valid, nor conjure
            # a dataset: fail without retries
            self.log.error("%s", exc)
            if isinstance(exc, BadLoad):  # a malformed summary: the operators see it where they see the others
                progress.mark(hook.get_engine(), name, progress.FAILED, str(exc)[:500])
            raise AirflowFailException(str(exc)) from None
        self.log.info("%s: %s", name, seen.detail)
        if seen.stuck:
            raise AirflowFailException(f"{name} is stuck: {seen.detail}")
        return seen.complete


class FetchIndexOperator(IngestOperator):
    """Copies the dataset's producer outputs to the run's work area, checking sizes and checksums."""

    @fail_fast_on_bad_input
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

    template_fields = (*IngestOperator.template_fields, "fetched")

    def __init__(self, *, fetched: dict, allow_duplicates: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.fetched, self.allow_duplicates = fetched, allow_duplicates

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        rucio = RucioHook(self.rucio_conn_id, metadata_conn_id=self.metadata_conn_id).get_client()
        fetched = ingest.Fetched(**self.fetched)
        engine = MetadataHook(self.metadata_conn_id).get_engine()
        told = announcements.for_dataset(engine, fetched.dataset)
        try:
            summary = ingest.validate(fetched, rucio, told, self.allow_duplicates, menus=ingest.known_menus(engine))
        except ValidationFailed as exc:
            raise self.report(exc.problems, str(exc)) from None
        except BadInput as exc:  # bad data the checks could not even start on: no retries either
            raise self.report([Problem(fetched.dataset, None, str(exc))], str(exc)) from None
        self.log.info("valid: %s", summary)
        return summary


class LoadIndexOperator(IngestOperator):
    """Loads the dataset into the catalogue, atomically (a rerun replaces it, never duplicates)."""

    template_fields = (*IngestOperator.template_fields, "fetched", "reindex")

    def __init__(self, *, fetched: dict, reindex: bool | str = False, **kwargs):
        super().__init__(**kwargs)
        self.fetched, self.reindex = fetched, reindex

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        fetched = ingest.Fetched(**self.fetched)
        try:
            asked = (getattr(context.get("dag_run"), "conf", None) or {}).get("source")  # what triggered the run
            source = ingest.source_of(self.dag_id, context.get("run_id"), asked)
            result = ingest.load(self.catalog(), fetched, reindex=self.reindex in (True, "True"), source=source)
        except BadInput as exc:
            raise AirflowFailException(str(exc)) from None
        if result is None:
            self.log.info("%s: this version (jobs %s) is in the catalogue already; nothing loaded", fetched.dataset,
                          fetched.parts)
            return {"dataset": fetched.dataset, "nevents": None, "load_id": None, "skipped": True}
        self.log.info("loaded %s: %d events in %.2f s", result.dataset, result.nevents, result.seconds)
        return {"dataset": result.dataset, "nevents": result.nevents, "load_id": result.load_id}


class PublishIndexOperator(IngestOperator):
    """Records the dataset's state, retires older versions when asked, and emits the catalogue Asset event."""

    template_fields = (*IngestOperator.template_fields, "obsolete_older")

    def __init__(self, *, obsolete_older: bool | str = False, **kwargs):
        super().__init__(**kwargs)
        self.obsolete_older = obsolete_older

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        published = ingest.publish(self.catalog(), self.dataset, self.obsolete_older in (True, "True"))
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {"dataset": published["dataset"],
                                                      "project": published["project"],
                                                      "nevents": published["nevents"]}
        self.log.info("published %s", published)
        return published
