"""Who is calling and what they may do, as Airflow decides it.

A plugin's FastAPI app is not behind Airflow's authentication (measured on 3.3), so each route depends on
:func:`caller`: the JWT from ``Authorization: Bearer`` (what ``POST /auth/token`` returns) or from the ``_token``
cookie the Airflow UI sets at login (the pages' fetches send it), checked by the auth manager. No token, an expired,
revoked or forged one -> 401. Permissions are Airflow's own: reading the catalogue needs read access to the DAGs,
declaring a dataset obsolete or restoring it edit access to the ingestion DAG, submitting a pick the right to
trigger ``eventindex_pick`` -> 403 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

COOKIE = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN
INGEST_DAG, PICK_DAG = "eventindex_ingest", "eventindex_pick"
bearer = HTTPBearer(auto_error=False, description="the JWT of POST /auth/token (or the Airflow UI's _token cookie)")


@dataclass(frozen=True)
class Caller:
    """An authenticated user: their name (the Rucio account their outputs are scoped to) and the token they came
    with (forwarded when the app triggers a DAG run on their behalf, so Airflow records them as its triggerer)."""

    name: str
    user: object
    token: str

    def may(self, method: str, dag_id: str, entity: str | None = None) -> bool:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

        return get_auth_manager().is_authorized_dag(
            method=method, user=self.user, access_entity=DagAccessEntity[entity] if entity else None,
            details=DagDetails(id=dag_id))

    def require(self, method: str, dag_id: str, entity: str | None = None, what: str = "this") -> None:
        if not self.may(method, dag_id, entity):
            access = "read" if method == "GET" else "edit"
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"{self.name} may not {what}: it needs {access} access to the DAG {dag_id}")


async def caller(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    from airflow.api_fastapi.app import get_auth_manager

    token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else \
        request.cookies.get(COOKIE)
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not authenticated: log in to Airflow, or send "
                            "Authorization: Bearer <token from POST /auth/token>",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        user = await get_auth_manager().get_user_from_token(token)
    except Exception:  # expired, revoked, forged, malformed: all the same to the caller
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "the token is not valid (expired, revoked or not "
                            "Airflow's): log in again", headers={"WWW-Authenticate": "Bearer"}) from None
    return Caller(user.get_name(), user, token)


def reader(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """A caller who may read the catalogue (read access to the DAGs)."""
    who.require("GET", INGEST_DAG, what="read the catalogue")
    return who


Reader = Annotated[Caller, Depends(reader)]
Authenticated = Annotated[Caller, Depends(caller)]
