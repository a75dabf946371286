"""Production campaigns: the tasks the production system finished start one ingestion run per output dataset
(``eventindex.campaign``). Scheduled reads go on from the persisted stop point; a backfill reads its own interval,
and re-ingests only with the ``reindex`` parameter."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import BaseOperator

from eventindex import campaign

from .failures import fail_fast_on_bad_input
from .hooks import MetadataHook, UpstreamHook


def _follows_stop_point(context) -> bool:
    """Scheduled reads (and their continuations) follow the stop point; backfills and manual runs read a window."""
    dag_run = context["dag_run"]
    conf = dag_run.conf or {}
    if "follow_stop_point" in conf:
        return bool(conf["follow_stop_point"])
    return str(getattr(dag_run.run_type, "value", dag_run.run_type)) == "scheduled"


class FinishedTasksOperator(BaseOperator):
    """Reads the finished tasks; returns the DAG runs to start: the ingestion runs (at most ``campaign.MAX_PER_READ``)
    and, when the window holds more, a run of this DAG that reads on from where this one stopped. Pushes ``cursor``
    (where the read stopped) for the stop point."""

    def __init__(self, *, ingest_dag_id: str = "eventindex_ingest_campaign", prodsys_conn_id: str = "eventindex_prodsys",
                 metadata_conn_id: str = "eventindex_metadata", **kwargs):
        super().__init__(**kwargs)
        self.ingest_dag_id, self.prodsys_conn_id, self.metadata_conn_id = ingest_dag_id, prodsys_conn_id, \
            metadata_conn_id

    @fail_fast_on_bad_input
    def execute(self, context) -> list[dict]:
        """A re-indexing read names its ingestion runs after this run and when it started, so that re-running the
        same backfill dates to re-index again starts new ingestion runs, while a retry of this task does not."""
        conf = context["dag_run"].conf or {}
        params = context["params"]
        start = datetime.fromisoformat(conf["start"]) if conf.get("start") else \
            context["data_interval_start"].replace(tzinfo=None)
        end = datetime.fromisoformat(conf["end"]) if conf.get("end") else \
            context["data_interval_end"].replace(tzinfo=None)
        follow = _follows_stop_point(context)
        result = campaign.read(UpstreamHook(self.prodsys_conn_id).get_url(),
                               MetadataHook(self.metadata_conn_id).get_engine(), start, end,
                               follow_stop_point=follow, after=conf.get("after"),
                               reindex=bool(conf.get("reindex", params.get("reindex", False))),
                               run_key=f"{context['run_id']}@{context['dag_run'].start_date}")
        self.log.info("%d tasks read (%s, until %s; from %s): %d output datasets%s", result["ntasks"],
                      "from the stop point" if follow else "window", end, conf.get("after") or start,
                      len(result["runs"]), "; more to read: a continuation run follows" if result["continuation"]
                      else "")
        context["ti"].xcom_push(key="cursor", value=result["cursor"])
        runs = [{**r, "trigger_dag_id": self.ingest_dag_id} for r in result["runs"]]
        if result["continuation"]:
            runs.append({"trigger_dag_id": context["dag"].dag_id, "trigger_run_id": f"{context['run_id']}__more",
                         "conf": result["continuation"]})
        return runs


class SaveStopPointOperator(BaseOperator):
    """After the ingestion runs were started: a scheduled read moves the stop point to where it stopped."""

    template_fields = ("cursor",)

    def __init__(self, *, cursor, metadata_conn_id: str = "eventindex_metadata", **kwargs):
        super().__init__(**kwargs)
        self.cursor, self.metadata_conn_id = cursor, metadata_conn_id

    @fail_fast_on_bad_input
    def execute(self, context) -> bool:
        moved = campaign.commit(MetadataHook(self.metadata_conn_id).get_engine(), {"cursor": self.cursor},
                                _follows_stop_point(context))
        self.log.info("stop point %s", f"moved to {self.cursor}" if moved else "unchanged")
        return moved
