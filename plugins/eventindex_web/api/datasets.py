"""Datasets and operations: the Supervisor's view (``eventindex datasets / show / obsolete / restore /
ingestion``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from eventindex import monitoring

from ..auth import INGEST_DAG, Reader, Writer
from ..runs import dataset_runs
from . import catalog

router = APIRouter(tags=["datasets"])


@router.get("/datasets", summary="the datasets in the catalogue (as `eventindex datasets --json`), filtered, paged")
def list_datasets(who: Reader, state: str | None = None, source: str | None = None, project: str | None = None,
                  type: str | None = None, offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)):
    return monitoring.dataset_list(catalog(), state=state, source=source, project=project, datatype=type,
                                   offset=offset, limit=limit)


@router.get("/datasets/{name}", summary="one dataset (as `eventindex show --json`) and the Airflow runs that "
                                        "touched it")
def show_dataset(name: str, who: Reader):
    detail = monitoring.dataset_detail(catalog(), name)
    return {**detail, "runs": dataset_runs(detail["name"])}


def _change(name: str, who, action: Literal["obsolete", "restore"]):
    who.require("PUT", INGEST_DAG, what=f"{'declare datasets obsolete' if action == 'obsolete' else 'restore datasets'}")
    cat = catalog()
    before = cat.show(name)["status"]  # an unknown dataset: 404 before anything is written
    cat.mark_obsolete(name) if action == "obsolete" else cat.restore(name)
    row = cat.show(name)
    return {"dataset": row["name"], "status": row["status"], "changed": row["status"] != before}


@router.post("/datasets/{name}/obsolete", summary="hide a dataset from queries, keeping its history "
                                                  "(`eventindex obsolete`); needs edit access")
def obsolete_dataset(name: str, who: Writer):
    return _change(name, who, "obsolete")


@router.post("/datasets/{name}/restore", summary="make an obsolete dataset visible again (`eventindex restore`); "
                                                 "needs edit access")
def restore_dataset(name: str, who: Writer):
    return _change(name, who, "restore")


@router.get("/operations", summary="datasets by state and source, what is in flight, stuck or failed, the latest "
                                   "validation and consistency reports")
def operations(who: Reader):
    return monitoring.operations(catalog())


@router.get("/rates", summary="datasets and events loaded per hour or day")
def rates(who: Reader, bucket: str = "hour"):
    return monitoring.ingestion_rates(catalog(), bucket=bucket)
