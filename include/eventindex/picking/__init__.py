"""Event picking: "give me these events in this format".

request (:mod:`.request`: one type, its parameters spelled once) -> sort, de-duplicate, split per run -> GUID lookup
in the catalogue -> dataset and replicas of each GUID from Rucio (:mod:`.planner`) -> extraction jobs, local or
PanDA -> verify -> register the output dataset (:mod:`.extraction`) -> the requests table (:mod:`.history`).
:class:`.runner.PickRunner` is the one runner of these steps: the DAG's tasks call one step each, the demo, the
benchmarks and the tests run them all in one process.
"""

from __future__ import annotations

from ..errors import BadRequest
from .extraction import extract, output_did, register_output, verify
from .history import listing, previous_result, record, requests
from .planner import Plan, lookup, plan, resolve, run_chunks
from .request import (MAX_INLINE_BYTES, MAX_REQUEST_BYTES, PARAMETERS, SERVICE_ACCOUNT, PickRequest, authorize,
                      check_scope, parse_events, submission_params)
from .runner import MAX_CHUNKS, PickRunner


def runner_for(settings, request_id: str, catalog=None, ddm=None, engine=None) -> PickRunner:
    """A runner on the embedded defaults of ``settings`` (what is not given): the catalogue, the local data
    catalogue, the metadata DB, the work area, and the output RSE (``settings.picks``, ``settings.picks_rse``)."""
    if catalog is None:
        from ..catalog import open_catalog

        catalog = open_catalog(settings)
    if ddm is None:
        from ..ddm import LocalRucio

        ddm = LocalRucio(settings.local_rucio_url)
    if engine is None:
        from ..metadata import make_engine

        engine = make_engine(settings.metadata_url)
    return PickRunner(catalog, ddm, engine, settings.work_area, settings.picks_area, request_id, settings.picks_rse)


__all__ = ["BadRequest", "MAX_CHUNKS", "MAX_INLINE_BYTES", "MAX_REQUEST_BYTES", "PARAMETERS", "SERVICE_ACCOUNT",
           "PickRequest", "PickRunner", "Plan", "authorize", "check_scope", "extract", "listing", "lookup",
           "output_did", "parse_events", "plan", "previous_result", "record", "register_output", "requests",
           "resolve", "run_chunks", "runner_for", "submission_params", "verify"]
