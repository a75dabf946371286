"""Operators of the event-picking DAG. Thin: each runs one step of ``eventindex.picking``; bulky intermediate
results (event lists, plans) go to the request's work folder, XComs carry only paths and counts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from eventindex import picking
from eventindex.metadata import make_engine

from .hooks import CatalogHook, RucioHook

MAX_CHUNKS = 200  # far below Airflow's max_map_length (1024), whatever the number of runs


def _workdir(context) -> Path:
    folder = CatalogHook().get_settings().home / "picks" / re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _engine():
    return make_engine(CatalogHook().get_settings().metadata_url)


class PickPlanOperator(BaseOperator):
    """Checks the request before any work, sorts and de-duplicates it, and splits it per run into chunks."""

    def execute(self, context) -> list[str]:
        p = context["params"]
        try:
            req = picking.make_request(p["events"], p["datatype"], p.get("project"), p.get("stream"),
                                       p.get("version"), p.get("output"), p.get("max_events"))
        except picking.BadRequest as exc:
            raise AirflowFailException(f"bad picking request: {exc}") from None
        folder = _workdir(context)
        paths = []
        for k, chunk in enumerate(picking.run_chunks(req.events, MAX_CHUNKS)):
            path = folder / f"chunk-{k:04d}.npy"
            np.save(path, chunk)
            paths.append(str(path))
        picking.record(_engine(), context["run_id"], "planned", {k: v for k, v in p.items() if k != "events"},
                       len(req.events))
        self.log.info("%d events (%d duplicates dropped) in %d chunks", len(req.events), req.duplicates_in_request,
                      len(paths))
        return paths


class PickLookupOperator(BaseOperator):
    """GUID lookup of one chunk of runs in the catalogue (vectorized)."""

    template_fields = ("chunk",)

    def __init__(self, *, chunk: str, **kwargs):
        super().__init__(**kwargs)
        self.chunk = chunk

    def execute(self, context) -> str:
        p = context["params"]
        req = picking.Request(np.load(self.chunk), p["datatype"], p.get("project"), p.get("stream"),
                              p.get("version") or None)
        found, missing = picking.lookup(CatalogHook().get_catalog(), req, req.events)
        out = Path(self.chunk).with_suffix(".found.json")
        out.write_text(json.dumps({"found": found, "missing": missing}))
        self.log.info("%s: %d found, %d missing", Path(self.chunk).name, len(found), len(missing))
        return str(out)


class PickResolveOperator(BaseOperator):
    """Dataset and replicas of each GUID from Rucio; groups the files into extraction jobs."""

    def execute(self, context) -> list[int]:
        folder = _workdir(context)
        found, missing = [], []
        for path in sorted(folder.glob("chunk-*.found.json")):
            data = json.loads(path.read_text())
            found += data["found"]
            missing += data["missing"]
        files, datasets, jobs = picking.resolve(RucioHook().get_client(), found)
        plan = picking.Plan(found, missing, files, datasets, jobs)
        (folder / "plan.json").write_text(json.dumps(plan.to_dict()))
        self.log.info("plan: %s", plan.summary())
        return list(range(len(jobs)))


class PickExtractOperator(BaseOperator):
    """One extraction job on this machine (the local backend): the requested entries into one output file."""

    template_fields = ("job",)

    def __init__(self, *, job: int, **kwargs):
        super().__init__(**kwargs)
        self.job = job

    def execute(self, context) -> str:
        folder = _workdir(context)
        plan = json.loads((folder / "plan.json").read_text())
        job = int(self.job)
        output = picking.extract(plan["files"], plan["jobs"][job], folder / "output", job)
        path = folder / f"output-{job:05d}.json"
        path.write_text(json.dumps(output))
        return str(path)


class PickFinishOperator(BaseOperator):
    """Verifies every found event is in the output exactly once, registers the output dataset, records the summary."""

    def execute(self, context) -> dict:
        p = context["params"]
        folder = _workdir(context)
        plan = json.loads((folder / "plan.json").read_text())
        outputs = [json.loads(path.read_text()) for path in sorted(folder.glob("output-*.json"))]
        try:
            checked = picking.verify(outputs, plan["found"])
        except picking.EventIndexError as exc:
            picking.record(_engine(), context["run_id"], "failed", {}, len(plan["found"]) + len(plan["missing"]),
                           {"error": str(exc)})
            raise AirflowFailException(str(exc)) from None
        name = p.get("output") or f"user.eventindex.{re.sub(r'[^A-Za-z0-9_]', '_', context['run_id'])}.{p['datatype']}"
        did = picking.register_output(RucioHook().get_client(), name, outputs) if outputs else None
        summary = {"found": len(plan["found"]), "missing": len(plan["missing"]), "duplicates": checked["duplicates"],
                   "output_dataset": did, "files": [o["lfn"] for o in outputs], "datasets": plan["datasets"],
                   "missing_events": plan["missing"][:1000]}
        picking.record(_engine(), context["run_id"], "done", {k: v for k, v in p.items() if k != "events"},
                       summary["found"] + summary["missing"], summary)
        self.log.info("found %d, missing %d, output %s", summary["found"], summary["missing"], did)
        for m in plan["missing"][:20]:
            self.log.info("missing: run %s event %s (%s)", m["run"], m["event"], m["reason"])
        return summary
