"""Who is calling and what they may do, as Airflow decides it.

A plugin's FastAPI app is not behind Airflow's authentication (measured on 3.3), so each route depends on
:func:`caller` (reads) or :func:`writer` (every POST/PUT/PATCH/DELETE): the JWT checked by the auth manager. Reads
take it from ``Authorization: Bearer`` (what ``POST /auth/token`` returns) or from the ``_token`` cookie the Airflow
UI sets at login (the pages' GETs send it). Writes take it ONLY from the ``Authorization`` header, and refuse an
``Origin`` other than the app's own: a browser sends the cookie with a request another site's page makes (a form, a
no-cors fetch), but only a script of this origin can put the token into a header, so another origin's page cannot
write as the logged-in user (CSRF). The pages' scripts send ``Authorization`` on their writes. No token, an expired,
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


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None


async def caller(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """Who reads: the header's token, else the Airflow UI's cookie."""
    token = _bearer(credentials) or request.cookies.get(COOKIE)
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not authenticated: log in to Airflow, or send "
                            "Authorization: Bearer <token from POST /auth/token>",
                            headers={"WWW-Authenticate": "Bearer"})
    return await _user(token)


def _own_origins(request: Request) -> set[str]:
    """The origins this app answers at: the one the caller reached (Host) and Airflow's configured base URL."""
    from urllib.parse import urlsplit

    from airflow.configuration import conf

    origins = {f"{request.url.scheme}://{request.url.netloc}".lower()}
    base = urlsplit(conf.get("api", "base_url", fallback="") or "")
    if base.scheme in ("http", "https") and base.netloc:
        origins.add(f"{base.scheme}://{base.netloc}".lower())
    return origins


async def writer(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """Who writes: the ``Authorization`` header's token only, from no other origin (no CSRF); see the module's
    docstring."""
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() not in _own_origins(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"a write from another origin ({origin[:100]}) is refused")
    token = _bearer(credentials)
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a write needs Authorization: Bearer <token> (the "
                            "login cookie alone is not enough, so that another site's page cannot write as you)",
                            headers={"WWW-Authenticate": "Bearer"})
    return await _user(token)


async def _user(token: str) -> Caller:
    from airflow.api_fastapi.app import get_auth_manager

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
Writer = Annotated[Caller, Depends(writer)]  # every route that changes anything takes this
