"""Operators of the event-picking DAG. Thin: each runs one step of ``eventindex.picking``; bulky intermediate
results (event lists, plans) go to the request's work folder, XComs carry only paths and counts."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from eventindex import panda, picking
from eventindex.metadata import make_engine

from .hooks import CatalogHook, PandaHook, RucioHook
from .triggers import PandaJobTrigger

MAX_CHUNKS = 200  # far below Airflow's max_map_length (1024), whatever the number of runs


def _workdir(context) -> Path:
    folder = CatalogHook().get_settings().home / "picks" / re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _engine():
    return make_engine(CatalogHook().get_settings().metadata_url)


def _output_name(context) -> str:
    p = context["params"]
    return p.get("output") or f"user.eventindex.{re.sub(r'[^A-Za-z0-9_]', '_', context['run_id'])}.{p['datatype']}"


def record_failure(context) -> None:
    """Task failure callback (after the last try): the request is listed as failed, with the task and the reason."""
    picking.record(_engine(), context["run_id"], "failed",
                   summary={"error": f"{context['ti'].task_id}: {context.get('exception')}"})


class PickPlanOperator(BaseOperator):
    """Checks the request before any work, sorts and de-duplicates it, and splits it per run into chunks.

    A request whose output dataset already holds its result (a finished run cleared, or the same request again)
    changes nothing: the earlier summary is logged and pushed as the XCom ``summary``, and the rest is skipped."""

    def execute(self, context) -> list[str]:
        p = context["params"]
        try:
            req = picking.make_request(p["events"], p["datatype"], p.get("project"), p.get("stream"),
                                       p.get("version"), p.get("output"), p.get("max_events"))
            if p.get("backend") == "panda":
                try:
                    PandaHook().get_config()
                except ValueError as exc:
                    raise picking.BadRequest(str(exc)) from None
            digest = picking.request_digest(req)
            previous = picking.previous_result(_engine(), RucioHook().get_client(), _output_name(context), digest)
        except picking.BadRequest as exc:
            raise AirflowFailException(f"bad picking request: {exc}") from None
        if previous is not None:
            self.log.info("already done by %s: found %d, missing %d, output %s; nothing to do",
                          previous["request_id"], previous["found"], previous["missing"], previous["output_dataset"])
            context["ti"].xcom_push(key="summary", value=previous)
            raise AirflowSkipException(f"the output {previous['output_dataset']} already holds this request's result")
        folder = _workdir(context)
        paths = []
        for k, chunk in enumerate(picking.run_chunks(req.events, MAX_CHUNKS)):
            path = folder / f"chunk-{k:04d}.npy"
            np.save(path, chunk)
            paths.append(str(path))
        params = {k: v for k, v in p.items() if k != "events"} | {"digest": digest}
        picking.record(_engine(), context["run_id"], "planned", params, len(req.events))
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
        files_per_job = int(context["params"].get("files_per_job") or 10)
        files, datasets, jobs = picking.resolve(RucioHook().get_client(), found, files_per_job)
        plan = picking.Plan(found, missing, files, datasets, jobs)
        (folder / "plan.json").write_text(json.dumps(plan.to_dict()))
        self.log.info("plan: %s", plan.summary())
        return list(range(len(jobs)))


class PickExtractOperator(BaseOperator):
    """One extraction job. ``local`` backend: runs here. ``panda`` backend: submitted through panda-client, then the
    task defers to :class:`PandaJobTrigger` (no worker slot while the job waits or runs); a job that fails, or is not
    finished within ``job_timeout_minutes`` (e.g. staging from tape), is killed and the task fails, to be retried
    with a new job."""

    template_fields = ("job",)

    def __init__(self, *, job: int, **kwargs):
        super().__init__(**kwargs)
        self.job = job

    def execute(self, context):
        folder = _workdir(context)
        plan = json.loads((folder / "plan.json").read_text())
        job = int(self.job)
        if (context["params"].get("backend") or "local") == "local":
            return self._save(folder, job, picking.extract(plan["files"], plan["jobs"][job], folder / "output", job))
        cfg = PandaHook().get_config()
        attempt = context["ti"].try_number
        spec = panda.job_spec(cfg, re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"]), job, attempt, plan["files"],
                              plan["jobs"][job], folder / "output", _output_name(context))
        [panda_id] = panda.PandaJobs(cfg).submit([spec])  # PandaError: the task fails and is retried
        self.log.info("job %d (%d input files): PanDA job %d, attempt %d", job, len(plan["jobs"][job]), panda_id,
                      attempt)
        timeout = float(context["params"].get("job_timeout_minutes") or 360) * 60
        self.defer(trigger=PandaJobTrigger.for_job(panda_id, cfg, timeout), method_name="execute_complete",
                   timeout=timedelta(seconds=timeout + 600))

    def execute_complete(self, context, event: dict) -> str:
        folder, job, panda_id = _workdir(context), int(self.job), event["panda_id"]
        if event["state"] == "finished":
            outputs = panda.job_outputs(event, folder / "output")
            if len(outputs) != 1:
                raise AirflowException(f"PanDA job {panda_id} finished with {len(outputs)} output files, not 1")
            self.log.info("PanDA job %d finished: %s, %d events", panda_id, outputs[0]["lfn"], outputs[0]["nevents"])
            return self._save(folder, job, outputs[0])
        if event["state"] == "timeout":
            try:
                panda.PandaJobs(PandaHook().get_config()).kill([panda_id])
            except panda.PandaError as exc:
                self.log.warning("could not kill PanDA job %d: %s", panda_id, exc)
            raise AirflowException(f"PanDA job {panda_id} {event['error']}: killed; the task is retried")
        raise AirflowException(f"PanDA job {panda_id} {event['state']}: {event.get('error') or 'no error given'}")

    @staticmethod
    def _save(folder: Path, job: int, output: dict) -> str:
        path = folder / f"output-{job:05d}.json"
        path.write_text(json.dumps(output))
        return str(path)


class PickFinishOperator(BaseOperator):
    """Verifies every found event is in the output exactly once, registers the output dataset, records the summary."""

    def execute(self, context) -> dict:
        p = context["params"]
        folder = _workdir(context)
        plan = json.loads((folder / "plan.json").read_text())
        outputs = [json.loads((folder / f"output-{job:05d}.json").read_text()) for job in range(len(plan["jobs"]))]
        try:
            checked = picking.verify(outputs, plan["found"])
        except picking.EventIndexError as exc:
            picking.record(_engine(), context["run_id"], "failed", summary={"error": str(exc)})
            raise AirflowFailException(str(exc)) from None
        did = picking.register_output(RucioHook().get_client(), _output_name(context), outputs) if outputs else None
        summary = picking.summarize(plan, outputs, checked, did, p.get("backend") or "local")
        picking.record(_engine(), context["run_id"], "done", summary=summary)
        self.log.info("found %d, missing %d, output %s", summary["found"], summary["missing"], did)
        for m in plan["missing"][:20]:
            self.log.info("missing: run %s event %s (%s)", m["run"], m["event"], m["reason"])
        return summary
