"""The trigger names a selection can use, from the catalogue's trigger menus: the answer of ``eventindex triggers
--json`` (the same use case, ``eventindex.trigger.trigger_names``); the Queries page offers them as suggestions."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from eventindex.trigger import trigger_names

from ..auth import Reader
from . import catalog

router = APIRouter(tags=["queries"])


class TriggerName(BaseModel):
    name: str = Field(description="the L1 item or HLT chain, as selections name it")
    level: Literal["L1", "HLT"]
    smks: list[int] = Field(description="the trigger menus (super master keys) that hold it")
    l1_seed: str | None = Field(None, description="an HLT chain's L1 seed")
    stream: str | None = Field(None, description="the stream an HLT chain feeds")


@router.get("/triggers", response_model=list[TriggerName],
            summary="the trigger names of the catalogue's menus, L1 then HLT, by name (`eventindex triggers --json`)")
def triggers(who: Reader, like: str | None = None, level: str | None = None) -> list[dict]:
    """``like``: names holding this text (case ignored), or a pattern with ``*`` and ``?``; ``level``: L1 or HLT.
    A bad value is a 400 naming it."""
    return trigger_names(catalog().menus(), like=like, level=level)
