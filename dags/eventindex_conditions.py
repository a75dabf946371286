"""Hourly, and after every catalogue update: copy new trigger menus and run periods from the conditions DB (COMA)
into the metadata DB, so that trigger names resolve for the data just loaded; with the ``files`` parameter, also the
menus that data files (real xAOD) carry in their own ``TriggerMenu`` metadata. Emits ``eventindex://conditions``
when something changed."""

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param

from eventindex_airflow.conditions import ConditionsChangedOperator, ConditionsSyncOperator

CONDITIONS_ASSET = Asset("eventindex://conditions", group="eventindex")

with DAG(
    dag_id="eventindex_conditions",
    description="Trigger menus and run periods: conditions DB -> metadata DB",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"),
                                 assets=[Asset("eventindex://catalog", group="eventindex")]),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["eventindex", "conditions"],
    params={"files": Param([], type="array", items={"type": "string"},
                           description="data files (xAOD) whose own TriggerMenu metadata to read as well")},
    render_template_as_native_obj=True,
) as dag:
    sync = ConditionsSyncOperator(task_id="sync", files="{{ params.files }}", retries=4, retry_delay=timedelta(seconds=30),
                                  retry_exponential_backoff=True, max_retry_delay=timedelta(minutes=10))
    ConditionsChangedOperator(task_id="changed", result=sync.output, outlets=[CONDITIONS_ASSET])
