"""The one runner of a picking request's steps. The DAG's tasks call one step each (any step on any worker, retried
on another), the demo, the benchmarks and the tests call :meth:`PickRunner.run` for all of them in one process.

Steps hand bulky results to each other as objects in the work area under the request's id (chunks of runs, what
each lookup found, the plan) and pass only their URIs; extraction jobs store their output file in the output RSE
(``<picks>/<request>/<lfn>``, :mod:`.outputs`) and return small dicts (its LFN, GUID, URI, size and event count).
Every step can be rerun: it overwrites its own objects and nothing else.
"""

from __future__ import annotations

from ..errors import PandaError
from ..staging import uri_of
from ..workarea import WorkArea, read_array, read_json, run_folder
from .extraction import extract, register_output, summarize, verify
from .history import previous_result, record
from .planner import Plan, lookup, resolve, run_chunks
from .request import PickRequest

MAX_CHUNKS = 200  # far below Airflow's max_map_length (1024), whatever the number of runs


class PickRunner:
    """The steps of one request (``request_id``: the DAG run's id), over a catalogue, a data catalogue (Rucio) and
    the metadata DB. The outputs go to ``<output_base>/<request>/`` (``output_base``: the output RSE's storage, a
    folder or an object-store URI) and are registered in Rucio at ``output_rse``."""

    def __init__(self, catalog, ddm, engine, work_base: str, output_base: str, request_id: str,
                 output_rse: str = "LOCAL_DISK"):
        self.catalog, self.ddm, self.engine, self.request_id = catalog, ddm, engine, request_id
        self.work = WorkArea(work_base, request_id)
        self.output_uri = uri_of(str(output_base), run_folder(request_id))
        self.output_rse = output_rse

    # --- the steps, one DAG task each -------------------------------------------------------------------------

    def begin(self, request: PickRequest) -> dict | None:
        """The rerun rule, then the request's row. Returns the earlier summary when the output dataset already holds
        this request's result (nothing to do); refuses an output dataset that exists for anything else."""
        if self.catalog is not None:  # a format, stream or version the catalogue does not hold: refused with the
            from ..catalog import make_selection  # names it does hold, before any work

            self.catalog.count(make_selection(project=request.project, stream=request.stream,
                                              datatype=request.datatype, version=request.version or "latest"))
        digest = request.digest()
        previous = previous_result(self.engine, self.ddm, request.output_name(self.request_id), digest)
        if previous is None:
            record(self.engine, self.request_id, "planned", {**request.options(), "digest": digest},
                   len(request.events))
        return previous

    def split(self, request: PickRequest, max_chunks: int = MAX_CHUNKS) -> list[str]:
        """The events in chunks of whole runs (at most ``max_chunks``), one object each."""
        return [self.work.put_array(f"chunks/{k:04d}.npy", chunk)
                for k, chunk in enumerate(run_chunks(request.events, max_chunks))]

    def lookup(self, request: PickRequest, chunk_uri: str) -> str:
        """One chunk's events in the catalogue: what was found where, and why the others were not."""
        found, missing = lookup(self.catalog, request, read_array(chunk_uri))
        name = chunk_uri.rsplit("/", 1)[-1].split("?")[0].replace(".npy", ".json")
        return self.work.put_json(f"found/{name}", {"found": found, "missing": missing})

    def resolve(self, request: PickRequest, found_uris: list[str]) -> tuple[str, list[str]]:
        """Datasets and replicas of the found GUIDs (Rucio), grouped into extraction jobs: the plan's URI (for the
        verification) and one small object per job (its input files only, what an extraction reads)."""
        found, missing = [], []
        for uri in found_uris:
            part = read_json(uri)
            found += part["found"]
            missing += part["missing"]
        files, datasets, jobs = resolve(self.ddm, found, request.files_per_job)
        plan = Plan(found, missing, files, datasets, jobs)
        job_uris = [self.work.put_json(f"jobs/{k:05d}.json", {"job": k, "guids": guids,
                                                               "files": {g: files[g] for g in guids}})
                    for k, guids in enumerate(jobs)]
        return self.work.put_json("plan.json", plan.to_dict()), job_uris

    def extract(self, job_uri: str) -> dict:
        """One extraction job on this worker (the local backend)."""
        job = read_json(job_uri)
        return extract(job["files"], job["guids"], self.output_uri, job["job"])

    def panda_job(self, cfg, request: PickRequest, job_uri: str, attempt: int):
        """The PanDA JobSpec of one extraction job (the panda backend); ``attempt`` names a retry's new job."""
        from ..panda import job_spec

        job = read_json(job_uri)
        return job_spec(cfg, run_folder(self.request_id), job["job"], attempt, job["files"], job["guids"],
                        self.output_uri, request.output_name(self.request_id))

    def panda_output(self, state: dict) -> dict:
        """The output of a finished PanDA job, in the shape :meth:`extract` returns."""
        from ..panda import job_outputs

        outputs = job_outputs(state, self.output_uri)
        if len(outputs) != 1:
            raise PandaError(f"PanDA job {state.get('panda_id')} finished with {len(outputs)} output files, not 1")
        return outputs[0]

    def finish(self, request: PickRequest, plan_uri: str, outputs: list[dict]) -> dict:
        """Verify every found event is in the outputs exactly once, register the output dataset, record the summary."""
        plan = read_json(plan_uri)
        outputs = sorted(outputs, key=lambda o: o["lfn"])
        checked = verify(outputs, plan["found"])
        did = (register_output(self.ddm, request.output_name(self.request_id), outputs, self.output_rse)
               if outputs else None)
        summary = summarize(plan, outputs, checked, did, request.backend, self.output_uri, self.output_rse)
        record(self.engine, self.request_id, "done", summary=summary)
        return {**summary, "request_id": self.request_id}

    # --- all steps in this process --------------------------------------------------------------------------

    def run(self, request: PickRequest, panda_jobs=None) -> dict:
        """The whole request here (no Airflow): the rerun rule, plan, extraction with the request's backend (PanDA
        through ``panda_jobs``, a :class:`eventindex.panda.PandaJobs`), verify, register, record. Returns the summary;
        ``rerun`` is set when the output already held it."""
        previous = self.begin(request)
        if previous is not None:
            return previous
        try:
            found = [self.lookup(request, uri) for uri in self.split(request)]
            plan_uri, job_uris = self.resolve(request, found)
            if request.backend == "panda":
                outputs = self._run_panda(panda_jobs, request, job_uris)
            else:
                outputs = [self.extract(uri) for uri in job_uris]
            return self.finish(request, plan_uri, outputs)
        except Exception as exc:  # listed as failed, with the reason
            record(self.engine, self.request_id, "failed", summary={"error": str(exc)})
            raise
        finally:
            self.work.clear()

    def _run_panda(self, jobs, request: PickRequest, job_uris: list[str]) -> list[dict]:
        if jobs is None:
            raise PandaError("backend panda: no PanDA server given")
        ids = jobs.submit([self.panda_job(jobs.cfg, request, uri, 1) for uri in job_uris])
        states = jobs.wait(ids, request.job_timeout_minutes * 60)
        bad = {i: s for i, s in states.items() if s["state"] != "finished"}
        if bad:
            raise PandaError("; ".join(f"PanDA job {i} {s['state']}: {s.get('error') or 'no error given'}"
                                       for i, s in bad.items()))
        return [self.panda_output({**states[i], "panda_id": i}) for i in ids]

