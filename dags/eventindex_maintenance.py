"""Daily housekeeping: the catalogue's garbage files (crashed loads, replaced versions) and the Rucio CLOSE records
of datasets nobody announced. Params: how old garbage must be, how long CLOSE records are kept, and a dry run."""

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param

from eventindex.maintenance import DEFAULT_CLOSE_RETENTION_DAYS, DEFAULT_MIN_AGE_S
from eventindex_airflow.maintenance import CatalogGarbageOperator, PruneRucioClosesOperator

with DAG(
    dag_id="eventindex_maintenance",
    description="Remove the catalogue's garbage files; forget old Rucio CLOSE records nobody announced",
    schedule=CronTriggerTimetable("30 4 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["eventindex", "maintenance"],
    params={
        "min_age_minutes": Param(DEFAULT_MIN_AGE_S // 60, type="integer", minimum=0,
                                 description="replaced versions stay this long after their replacement, files of "
                                             "crashed loads this long after their last write"),
        "close_retention_days": Param(DEFAULT_CLOSE_RETENTION_DAYS, type="integer", minimum=0,
                                      description="forget Rucio CLOSE records of datasets nobody announced after this"),
        "dry_run": Param(False, type="boolean", description="only log what would be removed"),
    },
    render_template_as_native_obj=True,
) as dag:
    retry = dict(retries=3, retry_delay=timedelta(minutes=1), retry_exponential_backoff=True,
                 max_retry_delay=timedelta(minutes=30))
    CatalogGarbageOperator(task_id="collect_garbage", min_age_s="{{ params.min_age_minutes * 60 }}",
                           dry_run="{{ params.dry_run }}", **retry)
    PruneRucioClosesOperator(task_id="prune_rucio_closes", retention_days="{{ params.close_retention_days }}",
                             dry_run="{{ params.dry_run }}", **retry)
