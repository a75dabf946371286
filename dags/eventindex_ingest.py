"""Ingest one produced dataset: wait until complete -> fetch -> validate -> load -> publish. One run per dataset
version (the set of producer jobs' parts it is made of).

Triggered from the UI form (a dataset name), by the STOMP and Tier-0 DAGs, or by production campaigns. The wait
holds no worker slot (reschedule mode); a dataset that stays incomplete is reported stuck after
``stuck_after_minutes``, one that Rucio does not know fails after ``unknown_to_rucio_minutes``.

One DAG per source, the same tasks, so that the sources share the workers "little and very often": each has its
own pool, priority weight and number of runs at a time, and a burst of thousands of finished production tasks
queues behind ``eventindex_ingest_campaign`` without delaying a Tier-0 dataset (``eventindex_ingest_tier0``).
The pools are created by ``make up`` (scripts/airflow.sh).
"""

from datetime import timedelta

from airflow.sdk import DAG, Asset, Param

from eventindex_airflow.ingest import (FetchIndexOperator, LoadIndexOperator, PublishIndexOperator,
                                       ValidateIndexOperator, WaitCompleteSensor)
from eventindex_airflow.notify import OperatorsNotifier

NAME_HELP = ("dataset name (ATLAS nomenclature) or Rucio DID: project.run.stream.prodstep.datatype.amitag, e.g. "
             "data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831 (RAW has no AMI tag). A malformed name fails "
             "the run at once, the rule it breaks in the run's note")
CATALOG_ASSET = Asset("eventindex://catalog", group="eventindex")
TRANSIENT = dict(retries=4, retry_delay=timedelta(seconds=10), retry_exponential_backoff=True,
                 max_retry_delay=timedelta(minutes=10))

# dag id -> (pool, priority weight of its tasks, runs at a time, what it ingests)
SOURCES = {
    "eventindex_ingest_tier0": ("eventindex_tier0", 100, 4, "Tier-0 datasets (READY flags)"),
    "eventindex_ingest": ("eventindex_grid", 10, 4, "grid datasets announced over STOMP, and manual requests"),
    "eventindex_ingest_campaign": ("eventindex_campaign", 1, 2, "outputs of production campaigns (backfills)"),
}

for dag_id, (pool, weight, runs, what) in SOURCES.items():
    with DAG(
        dag_id=dag_id,
        description=f"Index one dataset into the EventIndex catalogue: {what}",
        schedule=None,
        catchup=False,
        max_active_runs=runs,
        tags=["eventindex", "ingestion"],
        default_args={"pool": pool, "priority_weight": weight, "weight_rule": "absolute",
                      "on_failure_callback": OperatorsNotifier(kind="ingest")},  # failed or stuck: the operators
        params={
            # no JSON-schema pattern: Airflow would refuse a bad name with the whole regular expression ("Bad
            # Request" in the form); the first task checks it and the run fails at once, the rule broken as its note
            "dataset": Param("", type="string", maxLength=255, description=NAME_HELP),
            "staging_uri": Param(None, type=["null", "string"], description="staging area (default: the connection)"),
            "source": Param("manual", type="string", enum=["manual", "stomp", "tier0", "prodsys"]),
            "generation": Param(0, type="integer", minimum=0, description="which ingestion of the dataset (STOMP)"),
            "stuck_after_minutes": Param(360, type="number", minimum=0,
                                         description="report the dataset stuck if still incomplete after this long"),
            "unknown_to_rucio_minutes": Param(10, type="number", minimum=0,
                                              description="fail if Rucio still does not know the dataset after this "
                                                          "long (minutes)"),
            "reindex": Param(False, type="boolean", description="load again even if this version is loaded already"),
            "obsolete_older": Param(False, type="boolean", description="mark older AMI tags of this sample obsolete"),
        },
        render_template_as_native_obj=True,
    ) as dag:
        dataset = "{{ params.dataset }}"
        staging = "{{ params.staging_uri }}"
        complete = WaitCompleteSensor(task_id="wait_complete", dataset=dataset, staging_uri=staging, poke_interval=30,
                                      stuck_after_minutes="{{ params.stuck_after_minutes }}",
                                      unknown_to_rucio_minutes="{{ params.unknown_to_rucio_minutes }}", **TRANSIENT)
        fetch = FetchIndexOperator(task_id="fetch", dataset=dataset, staging_uri=staging, **TRANSIENT)
        validate = ValidateIndexOperator(task_id="validate", dataset=dataset, staging_uri=staging, fetched=fetch.output,
                                         **TRANSIENT)
        load = LoadIndexOperator(task_id="load", dataset=dataset, staging_uri=staging, fetched=fetch.output,
                                 reindex="{{ params.reindex }}", **TRANSIENT)
        publish = PublishIndexOperator(task_id="publish", dataset=dataset, staging_uri=staging,
                                       obsolete_older="{{ params.obsolete_older }}", outlets=[CATALOG_ASSET],
                                       **TRANSIENT)
        complete >> fetch >> validate >> load >> publish
    globals()[dag_id] = dag
