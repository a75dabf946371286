"""Hourly: production-system tasks finished since the last read -> one ingestion run per output dataset.

Scheduled runs read on from the persisted stop point (rows that arrive late are not lost); a read of more than
1,000 datasets continues in a follow-up run instead of failing. Backfill past dates (idempotent: datasets already
ingested start nothing new) with:
    airflow backfill create --dag-id eventindex_campaign --from-date 2018-09-10 --to-date 2018-09-12
and re-ingest a reprocessing campaign on purpose with --dag-run-conf '{"reindex": true}'.
"""

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param

from eventindex_airflow.campaign import FinishedTasksOperator, SaveStopPointOperator

with DAG(
    dag_id="eventindex_campaign",
    description="Index the outputs of production tasks finished in each hour",
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC", interval=timedelta(hours=1)),
    start_date=datetime(2018, 8, 1),
    catchup=False,
    max_active_runs=2,
    tags=["eventindex", "ingestion", "campaign"],
    params={"reindex": Param(False, type="boolean", description="re-ingest datasets that are indexed already")},
) as dag:
    tasks = FinishedTasksOperator(task_id="finished_tasks", retries=3)
    # the ingestion runs (eventindex_ingest_campaign) and, past 1,000 datasets, a run of this DAG that reads on
    started = TriggerDagRunOperator.partial(
        task_id="start_runs", skip_when_already_exists=True,
    ).expand_kwargs(tasks.output)
    saved = SaveStopPointOperator(task_id="save_stop_point", cursor=tasks.output["cursor"],
                                  trigger_rule="none_failed", retries=3)
    started >> saved
