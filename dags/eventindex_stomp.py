"""Every minute: drain the producers' STOMP queue (ack only after recording) and Rucio's Hermes events (CLOSE:
a dataset is complete in Rucio; ERASE: it is gone), then start one ingestion run per dataset with new job parts.
Poison messages go to <queue>.DLQ with a log line."""

from datetime import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, CronTriggerTimetable

from eventindex_airflow.stomp import PendingAnnouncementsOperator, RucioEventsDrainOperator, StompDrainOperator

with DAG(
    dag_id="eventindex_stomp",
    description="Producer announcements (ActiveMQ) -> ingestion runs",
    schedule=CronTriggerTimetable("* * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["eventindex", "ingestion", "stomp"],
) as dag:
    drained = StompDrainOperator(task_id="drain", retries=5, retry_exponential_backoff=True)
    rucio_events = RucioEventsDrainOperator(task_id="drain_rucio_events", retries=5, retry_exponential_backoff=True)
    pending = PendingAnnouncementsOperator(task_id="pending", retries=3)
    TriggerDagRunOperator.partial(
        task_id="start_ingestion", trigger_dag_id="eventindex_ingest", skip_when_already_exists=True,
    ).expand_kwargs(pending.output)
    [drained, rucio_events] >> pending
