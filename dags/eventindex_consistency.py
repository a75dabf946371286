"""Catalogue consistency: daily, and after every catalogue update (the Asset the ingestion DAG emits)."""

from datetime import datetime

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable

from eventindex_airflow.consistency import ConsistencyCheckOperator
from eventindex_airflow.notify import OperatorsNotifier

with DAG(
    dag_id="eventindex_consistency",
    description="Catalogue vs Rucio, duplicates, RAW vs AOD completeness, stale datasets",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * *", timezone="UTC"),
                                 assets=[Asset("eventindex://catalog", group="eventindex")]),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["eventindex", "consistency"],
) as dag:
    ConsistencyCheckOperator(task_id="check", retries=2, on_failure_callback=OperatorsNotifier(kind="consistency"))
