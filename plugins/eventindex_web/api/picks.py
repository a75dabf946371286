"""Event picking, as the Event Picking Server offered it: submit a request (a file of 'run event' lines and the
request's parameters), list the requests, follow one. A request is checked here as every task of the DAG checks it
(:meth:`PickRequest.from_params`, then the caller's scopes), so a refused one changes nothing; an accepted one is
triggered through Airflow's REST API with the caller's own token, so Airflow records them as the run's triggerer and
the run acts as them (outputs in their scope)."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from fastapi.responses import StreamingResponse

from eventindex import picking
from eventindex.airflow_api import AirflowAPI
from eventindex.errors import BadRequest, NotFound

from ..auth import PICK_DAG, Reader, Writer
from ..runs import pick_run, run_url
from . import engine, settings

router = APIRouter(tags=["picks"])
MAX_UPLOAD = picking.MAX_REQUEST_BYTES  # bytes of one uploaded request file (over 1 MiB: to the requests area)
KINDS = {p.name: p.kind for p in picking.PARAMETERS}


def _typed(name: str, text: str | None):
    """A form field as the request's parameter: empty means not given; numbers parsed (400 naming the field)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        return {"integer": int, "number": float}.get(KINDS[name], str)(text)
    except ValueError:
        raise BadRequest(f"{name}: {text[:40]!r} is not a{'n integer' if KINDS[name] == 'integer' else ' number'}") \
            from None


async def _events_text(events: UploadFile) -> str:
    data = await events.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise BadRequest(f"events: the file is bigger than the upload cap of {MAX_UPLOAD >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("events: the file is not UTF-8 text of 'run event' lines") from None


def _airflow_url(request: Request) -> str:
    """Where this api-server answers (its configured base URL, else the one the caller reached)."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    return base.rstrip("/") if base.startswith("http") else f"{request.url.scheme}://{request.url.netloc}"


@router.post("/picks", status_code=status.HTTP_201_CREATED,
             summary="submit a picking request (multipart: the file of 'run event' lines and the parameters); "
                     "triggers eventindex_pick as the caller")
async def submit(request: Request, who: Writer, events: UploadFile = File(...),
                 datatype: str = Form(...), project: str | None = Form(None), stream: str | None = Form(None),
                 version: str | None = Form(None), output: str | None = Form(None),
                 max_events: str | None = Form(None), backend: str | None = Form(None),
                 files_per_job: str | None = Form(None), job_timeout_minutes: str | None = Form(None)):
    who.require("POST", PICK_DAG, "RUN", what="submit picking requests")
    fields = {"datatype": datatype, "project": project, "stream": stream, "version": version, "output": output,
              "max_events": max_events, "backend": backend, "files_per_job": files_per_job,
              "job_timeout_minutes": job_timeout_minutes}
    params = {name: _typed(name, value) for name, value in fields.items()}
    params = {k: v for k, v in params.items() if v is not None}
    text = await _events_text(events)
    s = settings()
    from starlette.concurrency import run_in_threadpool

    # the whole file is checked here; over MAX_INLINE_BYTES, submission_params uploads it to the requests area and
    # the run gets its events_uri (parsing and the upload off the event loop)
    parsed = await run_in_threadpool(picking.PickRequest.from_params, {**params, "events": text},
                                     inline_cap=MAX_UPLOAD)
    checked = picking.authorize(parsed, who.name, s.groups_of(who.name))
    api = AirflowAPI(_airflow_url(request), who.name, "", token=who.token)
    run_params = await run_in_threadpool(picking.submission_params, checked, s.requests_area)
    run_id = await run_in_threadpool(api.trigger, PICK_DAG, run_params)
    return {"request_id": run_id, "dag_id": PICK_DAG, "run_url": run_url(PICK_DAG, run_id), "state": "queued",
            "events": int(len(checked.events)), "duplicates": checked.duplicates_in_request}


@router.get("/picks", summary="the newest picking requests (as `eventindex picks --json`)")
def list_picks(who: Reader, limit: int = Query(50, ge=1, le=1000)):
    return [{**row, "run_url": run_url(PICK_DAG, row["request_id"])}
            for row in picking.listing(engine(), limit)]


@router.get("/picks/{request_id}", summary="one request: state, found / missing with reasons, its tasks (jobs) "
                                           "and their states, output dataset, the failed steps' errors")
def show_pick(request_id: str, who: Reader):
    from eventindex.picking.history import request as pick_request

    row = pick_request(engine(), request_id)
    run = pick_run(request_id)
    if row is None and run is None:
        raise NotFound(f"picking request {request_id} is not known")
    row = row or {"request_id": request_id, "state": run["state"], "params": {}, "summary": {}, "error": None}
    tasks = run["tasks"] if run else []
    error = row.get("error") or ""
    failed = [{"task_id": t["task_id"], "map_index": t["map_index"], "log_url": t["log_url"],
               "error": error.partition(": ")[2] if error.startswith(f"{t['task_id']}: ") else None}
              for t in tasks if t["state"] == "failed"]  # the steps that failed, not those that never ran for it
    return {**row, "run": {k: v for k, v in (run or {}).items() if k != "tasks"} or None,
            "run_url": run_url(PICK_DAG, request_id), "tasks": tasks, "failed_steps": failed}


@router.get("/picks/{request_id}/files/{name}", response_class=StreamingResponse,
            summary="download one output file of a finished request (one of its summary's `files`), streamed from "
                    "the output RSE's storage (a local folder or the object store)")
def download(request_id: str, name: str, who: Reader):
    """Only a file the request's own summary lists, from the request's own folder: the name is looked up in the
    summary, never used as a path (no traversal), and :func:`picking.outputs.read_output` refuses anything but a
    plain file name."""
    from eventindex.picking.history import request as pick_request
    from eventindex.picking.outputs import read_output

    row = pick_request(engine(), request_id)
    summary = (row or {}).get("summary")
    files = summary.get("files") if isinstance(summary, dict) else None
    if not isinstance(files, list) or name not in files:
        raise NotFound(f"picking request {request_id} has no output file {name}")
    size, chunks = read_output(settings().picks_area, request_id, name)
    return StreamingResponse(chunks, media_type="application/octet-stream", headers={
        "Content-Length": str(size), "Content-Disposition": f'attachment; filename="{name}"'})
