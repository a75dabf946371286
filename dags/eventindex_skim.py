"""Skims as DAG runs with parameters: the events passing a selection, with the attributes and references asked
for, as a ROOT file in the skims area; the requester is mailed the summary (or the error) when the run ends."""

from datetime import timedelta

from airflow.sdk import DAG

from eventindex_airflow.notify import SkimEndedNotifier
from eventindex_airflow.skim import SkimOperator, options_from_params, record_skim_failure, skim_params

with DAG(
    dag_id="eventindex_skim",
    description="Skim: the events passing a selection, their attributes and references, as a ROOT file",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    default_args={"on_failure_callback": record_skim_failure},  # the error, kept for the requester's mail
    on_success_callback=SkimEndedNotifier(),  # the requester's mail
    on_failure_callback=SkimEndedNotifier(),
    tags=["eventindex", "tag"],
    params=skim_params(),
    render_template_as_native_obj=True,
) as dag:
    SkimOperator(task_id="skim", options=options_from_params(), retries=2, retry_delay=timedelta(seconds=10),
                 execution_timeout=timedelta(hours=6))
