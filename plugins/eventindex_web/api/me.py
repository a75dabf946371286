"""Who the caller is and what they may do here, so that the pages offer only the actions the server would accept
(a viewer sees no "Declare obsolete" or "Submit request" button) instead of showing them and refusing."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ..auth import INGEST_DAG, PICK_DAG, Authenticated

router = APIRouter(tags=["me"])


class Rights(BaseModel):
    """What the caller may do, as Airflow's auth manager decides it (the same checks the routes make)."""

    read: bool = Field(description="read the catalogue, the operations and the picking requests (read access to "
                                   f"the DAG {INGEST_DAG})")
    change_datasets: bool = Field(description="declare datasets obsolete and restore them (edit access to the DAG "
                                              f"{INGEST_DAG})")
    submit_picks: bool = Field(description=f"submit picking requests (the right to trigger {PICK_DAG})")


class Me(BaseModel):
    name: str = Field(description="the Airflow user name (the Rucio account the caller's outputs are scoped to)")
    role: str | None = Field(None, description="the user's role, when the auth manager has roles (the simple auth "
                                               "manager: viewer, user, op, admin)")
    may: Rights


@router.get("/me", response_model=Me, summary="who the caller is and what they may do (the pages hide the actions "
                                                "they may not use)")
def me(who: Authenticated) -> Me:
    role = getattr(who.user, "role", None)
    return Me(name=who.name, role=str(role) if role is not None else None,
              may=Rights(read=who.may("GET", INGEST_DAG), change_datasets=who.may("PUT", INGEST_DAG),
                         submit_picks=who.may("POST", PICK_DAG, "RUN")))
