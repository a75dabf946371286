"""Ingest one produced dataset: fetch -> validate -> load -> publish. One run per dataset.

Triggered from the UI form (a dataset name), by the STOMP and Tier-0 DAGs, or by production campaigns.
"""

from datetime import timedelta

from airflow.sdk import DAG, Asset, Param

from eventindex_airflow.ingest import (FetchIndexOperator, LoadIndexOperator, PublishIndexOperator,
                                       ValidateIndexOperator)

CATALOG_ASSET = Asset("eventindex://catalog", group="eventindex")
TRANSIENT = dict(retries=4, retry_delay=timedelta(seconds=10), retry_exponential_backoff=True,
                 max_retry_delay=timedelta(minutes=10))

with DAG(
    dag_id="eventindex_ingest",
    description="Index one dataset into the EventIndex catalogue",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    tags=["eventindex", "ingestion"],
    params={
        "dataset": Param("", type="string", minLength=10, maxLength=255,
                         pattern=r"^[A-Za-z0-9_.:\-]+$", description="dataset name or Rucio DID"),
        "staging_uri": Param(None, type=["null", "string"], description="staging area (default: the connection)"),
        "source": Param("manual", type="string", enum=["manual", "stomp", "tier0", "prodsys"]),
        "announcement": Param(None, type=["null", "object"], description="the producer's STOMP message"),
        "obsolete_older": Param(False, type="boolean", description="mark older AMI tags of this sample obsolete"),
    },
    render_template_as_native_obj=True,
) as dag:
    dataset = "{{ params.dataset }}"
    staging = "{{ params.staging_uri }}"
    fetch = FetchIndexOperator(task_id="fetch", dataset=dataset, staging_uri=staging, **TRANSIENT)
    validate = ValidateIndexOperator(task_id="validate", dataset=dataset, staging_uri=staging, fetched=fetch.output,
                                     announcement="{{ params.announcement }}", **TRANSIENT)
    load = LoadIndexOperator(task_id="load", dataset=dataset, staging_uri=staging, fetched=fetch.output, **TRANSIENT)
    publish = PublishIndexOperator(task_id="publish", dataset=dataset, staging_uri=staging,
                                   obsolete_older="{{ params.obsolete_older }}", outlets=[CATALOG_ASSET],
                                   **TRANSIENT)
    fetch >> validate >> load >> publish
