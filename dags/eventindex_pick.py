"""Event picking as a DAG run with parameters: "give me these events in this format"."""

from datetime import timedelta

from airflow.sdk import DAG, Param

from eventindex_airflow.pick import (PickExtractOperator, PickFinishOperator, PickLookupOperator, PickPlanOperator,
                                     PickResolveOperator, record_failure)

with DAG(
    dag_id="eventindex_pick",
    description="Pick events: lookup, GUIDs to datasets and replicas (Rucio), extraction jobs, verification",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    default_args={"on_failure_callback": record_failure},
    tags=["eventindex", "picking"],
    params={
        "events": Param("", type="string", format="multiline", minLength=3,
                        description="'run event' pairs, one per line, or the path of a file of them"),
        "datatype": Param("AOD", type="string", enum=["RAW", "ESD", "AOD", "DAOD_PHYS", "DAOD_PHYSLITE"]),
        "project": Param(None, type=["null", "string"], description="e.g. data18_13TeV"),
        "stream": Param(None, type=["null", "string"], description="e.g. physics_Main"),
        "version": Param(None, type=["null", "string"], description="AMI tag; default: the newest loaded"),
        "output": Param(None, type=["null", "string"], description="output dataset, e.g. user.jdoe.picked.AOD"),
        "max_events": Param(None, type=["null", "integer"], minimum=1),
        "backend": Param("local", type="string", enum=["local", "panda"],
                         description="where extraction jobs run: this machine, or PanDA (connection eventindex_panda)"),
        "files_per_job": Param(10, type="integer", minimum=1, maximum=1000, description="input files per extraction job"),
        "job_timeout_minutes": Param(360, type="number", exclusiveMinimum=0,
                                     description="PanDA: a job not finished by then (e.g. staging from tape) is "
                                                 "killed and retried"),
    },
) as dag:
    chunks = PickPlanOperator(task_id="plan", retries=2, retry_delay=timedelta(seconds=10))
    found = PickLookupOperator.partial(task_id="lookup", retries=3,
                                       retry_delay=timedelta(seconds=10)).expand(chunk=chunks.output)
    jobs = PickResolveOperator(task_id="resolve", retries=3, retry_delay=timedelta(seconds=10))
    outputs = PickExtractOperator.partial(task_id="extract", retries=2, retry_delay=timedelta(seconds=5),
                                          execution_timeout=timedelta(hours=2)).expand(job=jobs.output)
    finish = PickFinishOperator(task_id="verify_register_summary", retries=1)
    found >> jobs
    outputs >> finish
