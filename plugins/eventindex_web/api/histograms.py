"""The histogramming service over REST: one or two numeric columns over a selection, exactly the answer of
``eventindex histogram --json`` (the same use case, ``eventindex.tag.histogram``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from eventindex.tag.histogram import histogram as make_histogram

from ..auth import Reader
from . import catalog
from .queries import Selection

router = APIRouter(tags=["histograms"])


@router.get("/histogram", summary="histogram one or two numeric columns over a selection, optionally weighted by "
                                  "the MC event weight (`eventindex histogram --json`)")
def histogram(who: Reader, sel: Selection, column: Annotated[list[str], Query()],
              bins: Annotated[list[str], Query()], ranges: Annotated[list[str], Query(alias="range")] = [],
              weight: bool = False, limit: Annotated[int | None, Query(ge=1)] = None):
    return make_histogram(catalog(), sel, column, bins, ranges or None, weight=weight, limit=limit).to_json()
