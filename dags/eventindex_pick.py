"""Event picking as a DAG run with parameters: "give me these events in this format"."""

from datetime import timedelta

from airflow.sdk import DAG

from eventindex_airflow.pick import (PickExtractOperator, PickFinishOperator, PickLookupOperator, PickPlanOperator,
                                     PickResolveOperator, pick_params, record_failure, request_from_params)
from eventindex_airflow.notify import PickEndedNotifier

with DAG(
    dag_id="eventindex_pick",
    description="Pick events: lookup, GUIDs to datasets and replicas (Rucio), extraction jobs, verification",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    default_args={"on_failure_callback": record_failure},
    on_success_callback=PickEndedNotifier(),  # the requester's mail (the run's note: eventindex_airflow.listeners)
    on_failure_callback=PickEndedNotifier(),
    tags=["eventindex", "picking"],
    params=pick_params(),
    render_template_as_native_obj=True,
) as dag:
    plan = PickPlanOperator(task_id="plan", request=request_from_params(), retries=2,
                            retry_delay=timedelta(seconds=10))
    request = plan.output["request"]
    found = PickLookupOperator.partial(task_id="lookup", request=request, retries=3,
                                       retry_delay=timedelta(seconds=10)).expand(chunk_uri=plan.output)
    jobs = PickResolveOperator(task_id="resolve", request=request, found_uris=found.output, retries=3,
                               retry_delay=timedelta(seconds=10))
    outputs = PickExtractOperator.partial(task_id="extract", request=request, retries=2,
                                          retry_delay=timedelta(seconds=5),
                                          execution_timeout=timedelta(hours=2)).expand(job_uri=jobs.output)
    PickFinishOperator(task_id="verify_register_summary", request=request, plan_uri=jobs.output["plan_uri"],
                       outputs=outputs.output, retries=1)
