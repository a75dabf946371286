"""The web app's writes take their credentials only from the Authorization header (no CSRF): every route that
changes anything, found by walking the app's routes (a route added later is covered too), refuses the login cookie
alone and a foreign Origin. Without Airflow: the token check is replaced by one that accepts any token, so what is
refused is refused for where the token came from, not for the token."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class _NoRights:
    """A caller the fake token check returns: authenticated, allowed nothing (a 403 shows it got past 401)."""

    name = "alice"
    token = "t"

    def require(self, *args, **kwargs):
        from fastapi import HTTPException

        raise HTTPException(403, "alice may not do this")


@pytest.fixture
def client(monkeypatch):
    from eventindex_web import auth
    from eventindex_web.app import create_app

    async def any_token(token: str):
        return _NoRights()

    monkeypatch.setattr(auth, "_user", any_token)
    app = create_app()
    return app, TestClient(app)


def _writes(app) -> list[tuple[str, str]]:
    return sorted((method, re.sub(r"\{[^}]+\}", "x", r.path)) for r in app.routes if isinstance(r, APIRoute)
                  for method in r.methods & WRITES)


def _depends_on(dependant, call) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def test_every_write_route_depends_on_the_header_only_writer(client):
    from eventindex_web.auth import writer

    app, _ = client
    writes = [r for r in app.routes if isinstance(r, APIRoute) and r.methods & WRITES]
    assert {r.path for r in writes} >= {"/api/v1/datasets/{name}/obsolete", "/api/v1/datasets/{name}/restore",
                                        "/api/v1/picks"}
    assert [r.path for r in writes if not _depends_on(r.dependant, writer)] == []


def test_every_write_refuses_the_login_cookie_alone_and_takes_the_header(client):
    app, http = client
    writes = _writes(app)
    assert len(writes) >= 3
    for method, path in writes:
        http.cookies.set("_token", "a-valid-token")
        cookie_only = http.request(method, path)
        assert cookie_only.status_code == 401, (method, path, cookie_only.text)
        assert "Authorization" in cookie_only.json()["detail"]
        http.cookies.clear()
        header = http.request(method, path, headers={"Authorization": "Bearer a-valid-token"},
                              files={"events": ("e.txt", b"1 2\n")}, data={"datatype": "AOD"})
        assert header.status_code == 403 and "alice may not" in header.json()["detail"], (method, path, header.text)


def test_a_write_from_another_origin_is_refused_even_with_the_token(client):
    app, http = client
    for method, path in _writes(app):
        foreign = http.request(method, path, headers={"Authorization": "Bearer a-valid-token",
                                                      "Origin": "http://127.0.0.1:1"})
        assert foreign.status_code == 403 and "another origin" in foreign.json()["detail"], (method, path)
        own = http.request(method, path, headers={"Authorization": "Bearer a-valid-token",
                                                  "Origin": "http://testserver"},
                           files={"events": ("e.txt", b"1 2\n")}, data={"datatype": "AOD"})
        assert own.status_code == 403 and "alice may not" in own.json()["detail"], (method, path)


def test_reads_still_take_the_login_cookie(client):
    _, http = client
    # past authentication with the cookie alone: the reader's permission check is what answers
    http.cookies.set("_token", "a-valid-token")
    assert http.get("/api/v1/datasets").json()["detail"] == "alice may not do this"
