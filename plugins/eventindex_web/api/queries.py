"""Queries: where an event is, how many pass a selection, per run / lumi block, overlaps, the selection as a
download. A selection is the CLI's options as query parameters (``run``, ``lumi`` and ``trigger`` repeatable)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from eventindex import monitoring
from eventindex.catalog import make_selection
from eventindex.errors import BadRequest
from eventindex.export import stream_selection

from ..auth import Reader
from . import catalog

router = APIRouter(tags=["queries"])
MAX_ROWS = 1_000_000
MEDIA = {"csv": "text/csv", "json": "application/json", "parquet": "application/vnd.apache.parquet"}


def _split(values: list[str], name: str | None = None) -> list[str]:
    """Repeated and comma-separated values as one list. A parameter given empty (``trigger=``) is refused naming
    it: leaving it out means no cut, an empty value is more likely a form that lost its input."""
    out = []
    for value in values:
        parts = [v for v in value.split(",") if v.strip()]
        if name and not parts:
            raise BadRequest(f"{name} is empty: give a value, or leave the parameter out for no {name} cut")
        out += parts
    return out


def selection(project: str | None = None, run: Annotated[list[str], Query()] = [],
              lumi: Annotated[list[str], Query()] = [], stream: str | None = None, type: str | None = None,
              version: str | None = None, dataset: str | None = None, guid: str | None = None,
              trigger: Annotated[list[str], Query()] = [], since: int | None = None, until: int | None = None,
              include_obsolete: bool = False, period: Annotated[list[str], Query()] = [],
              bcid: Annotated[list[str], Query()] = []):
    """The checked selection (a bad value -> 400 naming it, as the CLI refuses it; an unknown period -> 400 when
    the catalogue resolves it)."""
    time_range = None if since is None and until is None else (since or 0, until or 2**32 - 1)
    return make_selection(project=project, runs=_split(run, "run"), lumi_blocks=_split(lumi, "lumi"), stream=stream,
                          datatype=type, version=version, dataset=dataset, guid=guid,
                          triggers=_split(trigger, "trigger"), time_range=time_range,
                          include_obsolete=include_obsolete, period=_split(period, "period"),
                          bcid=_split(bcid, "bcid"))


Selection = Annotated[object, Depends(selection)]


@router.get("/lookup", summary="where an event is: its records and references per format (`eventindex lookup "
                               "--json`)")
def lookup(who: Reader, run: Annotated[int, Query(ge=0)], event: Annotated[int, Query(ge=0)],
           project: str | None = None, type: str | None = None, version: str | None = None):
    return catalog().lookup(run, event, project=project, datatype=type, version=version)


@router.get("/count", summary="how many events pass a selection (`eventindex count --json`)")
def count(who: Reader, sel: Selection):
    return {"count": catalog().count(sel)}


@router.get("/events-per", summary="events per run or per lumi block (`eventindex count --by ... --json`)")
def events_per(who: Reader, sel: Selection, by: str = "run"):
    return monitoring.events_per(catalog(), sel, by=by)


@router.get("/overlaps", summary="events shared between streams or triggers (`eventindex overlaps --json`)")
def overlaps(who: Reader, sel: Selection, streams: str | None = None, triggers: str | None = None):
    return monitoring.overlaps(catalog(), sel, streams=_split([streams or ""]) or None,
                               triggers=_split([triggers or ""]) or None)


@router.get("/select", summary=f"the events passing a selection as CSV, Parquet or JSON, streamed; at most "
                               f"{MAX_ROWS:,} rows (the X-Row-Limit header)",
            response_class=StreamingResponse)
def select(who: Reader, sel: Selection, columns: str | None = None, format: str = "csv",
           limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = MAX_ROWS):
    if format not in MEDIA:
        raise BadRequest(f"format {format!r} is not one of {', '.join(MEDIA)}")
    cat = catalog()
    chunks = stream_selection(cat, sel, _split([columns or ""]) or None, format, limit)
    first = next(chunks, b"")  # a bad column is refused (400) before the download starts

    def body():
        yield first
        yield from chunks

    return StreamingResponse(body(), media_type=MEDIA[format], headers={
        "X-Row-Limit": str(limit), "Content-Disposition": f'attachment; filename="selection.{format}"'})
