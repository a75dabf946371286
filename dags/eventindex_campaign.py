"""Hourly: production-system tasks that finished in the data interval -> one ingestion run per output dataset.

Re-ingest a reprocessing campaign over past dates with:
    airflow backfill create --dag-id eventindex_campaign --from-date 2018-09-10 --to-date 2018-09-12
"""

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, CronTriggerTimetable

from eventindex_airflow.campaign import FinishedTasksOperator

with DAG(
    dag_id="eventindex_campaign",
    description="Index the outputs of production tasks finished in each hour",
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC", interval=timedelta(hours=1)),
    start_date=datetime(2018, 8, 1),
    catchup=False,
    max_active_runs=2,
    tags=["eventindex", "ingestion", "campaign"],
) as dag:
    tasks = FinishedTasksOperator(task_id="finished_tasks", retries=3)
    TriggerDagRunOperator.partial(
        task_id="start_ingestion", trigger_dag_id="eventindex_ingest", skip_when_already_exists=True,
    ).expand_kwargs(tasks.output)
