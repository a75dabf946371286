"""Poll the Tier-0 table every minute: READY datasets start one ingestion run each; DONE once loaded."""

from datetime import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, CronTriggerTimetable

from eventindex_airflow.tier0 import Tier0MarkDoneOperator, Tier0ReadyOperator

with DAG(
    dag_id="eventindex_tier0",
    description="Tier-0 READY flags -> ingestion runs; READY -> DONE after success",
    schedule=CronTriggerTimetable("* * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["eventindex", "ingestion", "tier0"],
) as dag:
    done = Tier0MarkDoneOperator(task_id="mark_done", retries=3)
    ready = Tier0ReadyOperator(task_id="find_ready", retries=3)
    ingest = TriggerDagRunOperator.partial(
        task_id="start_ingestion", trigger_dag_id="eventindex_ingest_tier0", skip_when_already_exists=True,
    ).expand_kwargs(ready.output)
    done >> ready
