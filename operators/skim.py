"""The operator of the skim DAG (``eventindex_skim``): one task that runs :func:`eventindex.tag.skim.skim_to_area`.

The run's params are the options of `eventindex skim` (the selection, the attributes, the formats, a limit) and the
output's file name; the file goes to the skims area (``EVENTINDEX_SKIMS``, a folder or an object-store URI), never
to a worker's own disk. The summary is the task's return value and its XCom ``summary``, and is stored next to the
file (``<name>.json``), where the notification reads it.
"""

from __future__ import annotations

from airflow.sdk import BaseOperator, Param
from airflow.sdk.exceptions import AirflowFailException

from eventindex.errors import BadInput
from eventindex.tag.skim import DAG_OPTIONS, DEFAULT_ATTRIBUTES, SELECTION_OPTIONS, record_failure, run_dag_skim

from .failures import fail_fast_on_bad_input
from .hooks import CatalogHook, MetadataHook

_LISTS = ("run", "lumi", "trigger", "bcid", "period")
_HELP = {"project": "project tag, e.g. data18_13TeV", "run": "runs or run ranges A-B",
         "lumi": "lumi blocks or ranges A-B", "stream": "trigger stream, e.g. physics_Main",
         "type": "data type: RAW, AOD, DAOD_PHYS, ...", "version": "AMI tag chain, or 'latest'",
         "dataset": "one dataset by name", "guid": "events of one file",
         "trigger": "trigger expressions that must hold (names, and/or/not), all of them",
         "bcid": "bunch crossing ids or ranges A-B", "period": "run periods (B, C, ...)", "since": "from this time (epoch seconds)",
         "until": "until this time (epoch seconds)", "include_obsolete": "also datasets declared obsolete"}


def skim_params() -> dict[str, Param]:
    """The DAG's form: the options of `eventindex skim`, and the output's file name."""
    params = {}
    for name in SELECTION_OPTIONS:
        if name in _LISTS:
            params[name] = Param([], type="array", items={"type": "string"}, description=_HELP[name])
        elif name in ("since", "until"):
            params[name] = Param(None, type=["null", "integer"], minimum=0, description=_HELP[name])
        elif name == "include_obsolete":
            params[name] = Param(False, type="boolean", description=_HELP[name])
        else:
            params[name] = Param(None, type=["null", "string"], description=_HELP[name])
    params.update(
        attributes=Param(list(DEFAULT_ATTRIBUTES), type="array", items={"type": "string"},
                         description="record attributes to write"),
        formats=Param([], type="array", items={"type": "string"},
                      description="formats whose references to write (default: the selection's type)"),
        limit=Param(None, type=["null", "integer"], minimum=0, description="at most this many events"),
        output=Param("skim.root", type="string", pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*\.root$",
                     description="the file name (no folder), written to the skims area"),
        overwrite=Param(False, type="boolean", description="replace a file of the same name another run wrote"),
    )
    return params


def options_from_params() -> dict[str, str]:
    """The operator's ``options`` argument: every param, templated from the run's params."""
    return {name: f"{{{{ params.{name} }}}}" for name in DAG_OPTIONS}


def record_skim_failure(context) -> None:
    """Task failure callback (after the last try): the error is kept in the skims area for the requester's mail."""
    conn_id = getattr(context["ti"].task, "metadata_conn_id", "eventindex_metadata")
    area = MetadataHook(metadata_conn_id=conn_id).settings.skims_area
    record_failure(area, context["run_id"], f"{context['ti'].task_id}: {context.get('exception')}")


class SkimOperator(BaseOperator):
    """Writes the skim to ``<skims area>/<output>``; bad options fail the task at once (a retry changes nothing)."""

    template_fields = ("options",)

    def __init__(self, *, options: dict, catalog_conn_id: str | None = "eventindex_catalog",
                 metadata_conn_id: str | None = "eventindex_metadata", **kwargs):
        super().__init__(**kwargs)
        self.options = options
        self.catalog_conn_id, self.metadata_conn_id = catalog_conn_id, metadata_conn_id

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        settings = MetadataHook(metadata_conn_id=self.metadata_conn_id).settings
        try:
            catalog = CatalogHook(self.catalog_conn_id, metadata_conn_id=self.metadata_conn_id).get_catalog()
            result = run_dag_skim(catalog, dict(self.options), settings.skims_area, context["run_id"])
        except BadInput as exc:
            raise AirflowFailException(f"bad skim: {exc}") from None
        summary = result.to_dict()
        self.log.info("%d events -> %s (%d bytes, %.1f s)", result.events, result.output, result.bytes,
                      result.seconds)
        self.log.info("to make it again: %s", result.command)
        context["ti"].xcom_push(key="summary", value=summary)
        return summary
