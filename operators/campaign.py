"""Production campaigns: the tasks that finished inside a DAG run's data interval start one ingestion run per output
dataset. Backfilling the DAG over past dates re-ingests a reprocessing campaign."""

from __future__ import annotations

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from eventindex import upstream

from .hooks import UpstreamHook

MAX_PER_INTERVAL = 1000  # below Airflow's max_map_length (1024)


class FinishedTasksOperator(BaseOperator):
    def __init__(self, *, prodsys_conn_id: str = "eventindex_prodsys", **kwargs):
        super().__init__(**kwargs)
        self.prodsys_conn_id = prodsys_conn_id

    def execute(self, context) -> list[dict]:
        start = context["data_interval_start"].replace(tzinfo=None)
        end = context["data_interval_end"].replace(tzinfo=None)
        tasks = upstream.finished_tasks(UpstreamHook(self.prodsys_conn_id).get_url(), start, end)
        runs = [{"trigger_run_id": f"prodsys__{t['task_id']}__{name}",
                 "conf": {"dataset": name, "source": "prodsys", "obsolete_older": True}}
                for t in tasks for name in t["output_datasets"]]
        self.log.info("%d tasks finished in [%s, %s): %d output datasets", len(tasks), start, end, len(runs))
        if len(runs) > MAX_PER_INTERVAL:
            raise AirflowFailException(f"{len(runs)} datasets in one interval (limit {MAX_PER_INTERVAL}); "
                                       "backfill this period with shorter intervals")
        return runs
