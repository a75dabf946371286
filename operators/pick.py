"""Operators of the event-picking DAG. Thin: each runs one step of :class:`eventindex.picking.PickRunner`.

The request's parameters arrive as the ``request`` argument (templated from the run's params for the first task, the
checked request's options from its XCom for the others); bulky intermediate results are objects in the work area
under the run's id, passed on as URIs through XCom, so any task may run on any worker. The picked files go to the
output RSE's storage (``EVENTINDEX_PICKS``, an object store in production), never to a worker's own disk.
"""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

from airflow.sdk import BaseOperator, Param
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from eventindex.errors import BadInput, ConfigurationError, NotFound, PandaError, ValidationFailed
from eventindex.picking import PARAMETERS, SERVICE_ACCOUNT, PickRequest, PickRunner, authorize, record
from eventindex.picking.outputs import without_credentials
from eventindex.picking.request import MAX_INLINE_BYTES

from .failures import fail_fast_on_bad_input
from .hooks import CatalogHook, MetadataHook, PandaHook, RucioHook
from .triggers import PandaJobTrigger


def pick_params() -> dict[str, Param]:
    """The DAG's form, from the one list of a request's parameters."""
    params = {}
    for p in PARAMETERS:
        extra = {"enum": list(p.choices)} if p.choices else {}
        if p.name == "events":  # empty when the request comes by events_uri; the plan enforces the byte cap
            extra.update(format="multiline", maxLength=MAX_INLINE_BYTES)
        if p.minimum is not None:
            extra["minimum"] = p.minimum
        if p.maximum is not None:
            extra["maximum"] = p.maximum
        params[p.name] = Param(p.default, type=["null", p.kind] if p.optional else p.kind, description=p.help,
                               **extra)
    return params


def as_list(values) -> list:
    """The values of a mapped task's XCom as a list. Reading them by index (their number is known) spares the
    failed look-up past the last one, which Airflow's client logs as an error when the sequence is iterated."""
    return [values[i] for i in range(len(values))] if values is not None else []


def caller_of(dag_run) -> str:
    """Who makes the request: the user who triggered the run (form, REST, CLI). A run nobody triggered (scheduled)
    or one started in-process by ``dag.test()`` (Airflow names its user ``dag_test``) acts as the service account."""
    user = getattr(dag_run, "triggering_user_name", None)
    return SERVICE_ACCOUNT if user in (None, "", "dag_test") else user


def request_from_params() -> dict[str, str]:
    """The first task's ``request`` argument: every parameter, templated from the run's params."""
    return {p.name: f"{{{{ params.{p.name} }}}}" for p in PARAMETERS}


class PickOperator(BaseOperator):
    """What the picking operators share: the request, the connections, and a runner of the request's steps."""

    template_fields = ("request",)

    def __init__(self, *, request: dict, catalog_conn_id: str | None = "eventindex_catalog",
                 rucio_conn_id: str | None = "eventindex_rucio", metadata_conn_id: str | None = "eventindex_metadata",
                 panda_conn_id: str | None = "eventindex_panda", **kwargs):
        super().__init__(**kwargs)
        self.request = request
        self.catalog_conn_id, self.rucio_conn_id = catalog_conn_id, rucio_conn_id
        self.metadata_conn_id, self.panda_conn_id = metadata_conn_id, panda_conn_id

    def runner(self, context, catalog: bool = False, ddm: bool = False) -> PickRunner:
        meta = MetadataHook(metadata_conn_id=self.metadata_conn_id)
        settings = meta.settings
        return PickRunner(CatalogHook(self.catalog_conn_id, metadata_conn_id=self.metadata_conn_id).get_catalog()
                          if catalog else None,
                          RucioHook(self.rucio_conn_id, metadata_conn_id=self.metadata_conn_id).get_client()
                          if ddm else None,
                          meta.get_engine(), settings.work_area, settings.picks_area, context["run_id"],
                          settings.picks_rse)

    def checked_request(self) -> PickRequest:
        return PickRequest.of(self.request)


REFUSED = "refused picking request"  # no work is done for it: only its row, failed with the reason


def record_failure(context) -> None:
    """Task failure callback (after the last try): the request is listed as failed, with the task and the reason."""
    conn_id = getattr(context["ti"].task, "metadata_conn_id", "eventindex_metadata")
    record(MetadataHook(metadata_conn_id=conn_id).get_engine(), context["run_id"], "failed",
           summary={"error": f"{context['ti'].task_id}: {context.get('exception')}"})


class PickPlanOperator(PickOperator):
    """Checks the request before any work, sorts and de-duplicates it, and splits it per run into chunks (their
    URIs are the XCom; the checked request's options go to the XCom ``request``).

    A request whose output dataset already holds its result (a finished run cleared, or the same request again)
    changes nothing: the earlier summary is logged and pushed as the XCom ``summary``, and the rest is skipped."""

    @fail_fast_on_bad_input
    def execute(self, context) -> list[str]:
        try:
            settings, caller = MetadataHook(self.metadata_conn_id).settings, caller_of(context["dag_run"])
            req = authorize(PickRequest.from_params(self.request, settings.requests_area), caller,
                            settings.groups_of(caller), context["run_id"])
        except BadInput as exc:  # before any work
            self._refuse(context, f"{REFUSED}: {exc}")
        except ConfigurationError as exc:
            self._refuse(context, f"bad picking request: {exc}")
        try:
            if req.backend == "panda":
                PandaHook(self.panda_conn_id).get_config()
            runner = self.runner(context, catalog=True, ddm=True)
            previous = runner.begin(req)
        except (BadInput, ConfigurationError) as exc:
            self._refuse(context, f"bad picking request: {exc}")
        if previous is not None:
            self.log.info("already done by %s: found %d, missing %d, output %s; nothing to do",
                          previous["request_id"], previous["found"], previous["missing"], previous["output_dataset"])
            context["ti"].xcom_push(key="summary", value=previous)
            raise AirflowSkipException(f"the output {previous['output_dataset']} already holds this request's result")
        chunks = runner.split(req)
        context["ti"].xcom_push(key="request", value=req.options())
        self.log.info("%d events (%d duplicates dropped) in %d chunks", len(req.events), req.duplicates_in_request,
                      len(chunks))
        return chunks

    def _refuse(self, context, reason: str) -> NoReturn:
        """The request's row, failed with the reason (one line), written before the task fails: the Picking page
        and ``eventindex picks`` list the refusal, and the run's note (written by the listener as the run ends,
        which may be before this task's failure callback has run) gives it. Nothing else is written."""
        try:
            record(MetadataHook(metadata_conn_id=self.metadata_conn_id).get_engine(), context["run_id"], "failed",
                   summary={"error": f"{self.task_id}: {reason}"})
        except Exception as exc:  # the refusal stands; its row is retried by the failure callback
            self.log.warning("could not record the refusal: %s", exc)
        raise AirflowFailException(reason) from None


class PickLookupOperator(PickOperator):
    """GUID lookup of one chunk of runs in the catalogue (vectorized); returns the URI of what it found."""

    template_fields = (*PickOperator.template_fields, "chunk_uri")

    def __init__(self, *, chunk_uri: str, **kwargs):
        super().__init__(**kwargs)
        self.chunk_uri = chunk_uri

    @fail_fast_on_bad_input
    def execute(self, context) -> str:
        try:
            return self.runner(context, catalog=True).lookup(self.checked_request(), self.chunk_uri)
        except BadInput as exc:  # retrying changes nothing
            raise AirflowFailException(str(exc)) from None


class PickResolveOperator(PickOperator):
    """Dataset and replicas of each GUID from Rucio; groups the files into extraction jobs. Returns the jobs' URIs
    (mapped over by the extraction) and pushes the plan's URI as the XCom ``plan_uri``."""

    template_fields = (*PickOperator.template_fields, "found_uris")

    def __init__(self, *, found_uris: list[str], **kwargs):
        super().__init__(**kwargs)
        self.found_uris = found_uris

    @fail_fast_on_bad_input
    def execute(self, context) -> list[str]:
        try:
            plan_uri, jobs = self.runner(context, ddm=True).resolve(self.checked_request(), as_list(self.found_uris))
        except NotFound as exc:  # a GUID no dataset holds, a file without replica: retrying changes nothing
            raise AirflowFailException(str(exc)) from None
        context["ti"].xcom_push(key="plan_uri", value=plan_uri)
        self.log.info("plan %s: %d extraction jobs", plan_uri, len(jobs))
        return jobs


class PickExtractOperator(PickOperator):
    """One extraction job. ``local`` backend: runs here. ``panda`` backend: submitted through panda-client, then the
    task defers to :class:`PandaJobTrigger` (no worker slot while the job waits or runs); a job that fails, or is not
    finished within ``job_timeout_minutes`` (e.g. staging from tape), is killed and the task fails, to be retried
    with a new job. Killing the task kills its PanDA job."""

    template_fields = (*PickOperator.template_fields, "job_uri")

    def __init__(self, *, job_uri: str, **kwargs):
        super().__init__(**kwargs)
        self.job_uri = job_uri
        self.panda_id: int | None = None

    @fail_fast_on_bad_input
    def execute(self, context):
        req, runner = self.checked_request(), self.runner(context)
        if req.backend == "local":
            output = runner.extract(self.job_uri)
            self.log.info("%d events -> %s", output["nevents"], without_credentials(output["uri"]))
            return output
        jobs = PandaHook(self.panda_conn_id).get_jobs()
        spec = runner.panda_job(jobs.cfg, req, self.job_uri, context["ti"].try_number)
        [self.panda_id] = jobs.submit([spec])  # PandaError: the task fails and is retried
        self.log.info("%s (%d input files): PanDA job %d, attempt %d", spec.jobName, spec.nInputFiles, self.panda_id,
                      context["ti"].try_number)
        timeout = req.job_timeout_minutes * 60
        self.defer(trigger=PandaJobTrigger(self.panda_id, self.panda_conn_id, timeout), method_name="execute_complete",
                   timeout=timedelta(seconds=timeout + 600))

    @fail_fast_on_bad_input
    def execute_complete(self, context, event: dict) -> dict:
        panda_id = event["panda_id"]
        if event["state"] == "finished":
            output = self.runner(context).panda_output(event)
            self.log.info("PanDA job %d finished: %d events -> %s", panda_id, output["nevents"],
                          without_credentials(output["uri"]))
            return output
        if event["state"] == "timeout":
            self._kill(panda_id)
            raise AirflowException(f"PanDA job {panda_id} {event['error']}: killed; the task is retried")
        raise AirflowException(f"PanDA job {panda_id} {event['state']}: {event.get('error') or 'no error given'}")

    def on_kill(self) -> None:
        if self.panda_id is not None:
            self._kill(self.panda_id)

    def _kill(self, panda_id: int) -> None:
        try:
            PandaHook(self.panda_conn_id).get_jobs().kill([panda_id])
        except PandaError as exc:
            self.log.warning("could not kill PanDA job %d: %s", panda_id, exc)


class PickFinishOperator(PickOperator):
    """Verifies every found event is in the output exactly once, registers the output dataset, records the summary
    (the return value and the XCom ``summary``)."""

    template_fields = (*PickOperator.template_fields, "plan_uri", "outputs")

    def __init__(self, *, plan_uri: str, outputs: list[dict], **kwargs):
        super().__init__(**kwargs)
        self.plan_uri, self.outputs = plan_uri, outputs

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        runner = self.runner(context, ddm=True)
        try:
            summary = runner.finish(self.checked_request(), self.plan_uri, as_list(self.outputs))
        except ValidationFailed as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("found %d, missing %d, output %s in %s (RSE %s)", summary["found"], summary["missing"],
                      summary["output_dataset"], summary["output_uri"], summary["output_rse"])
        for m in summary["missing_events"][:20]:
            self.log.info("missing: run %s event %s (%s)", m["run"], m["event"], m["reason"])
        context["ti"].xcom_push(key="summary", value=summary)
        return summary
