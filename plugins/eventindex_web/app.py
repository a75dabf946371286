"""The FastAPI app Airflow mounts at ``/eventindex``: the REST API (``/api/v1``), the pages (``/ui/...``) and their
static files. Errors of the core map to HTTP statuses in one place: bad input 400 (the message names the parameter),
not found 404, a service down 503."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from eventindex.errors import BadInput, ConfigurationError, EventIndexError, NotFound, TransientError

from .api import datasets, histograms, me, picks, queries, triggers

HERE = Path(__file__).parent
PAGES = ("operations", "queries", "picking")
TITLES = {"operations": "Operations", "queries": "Queries", "picking": "Event picking"}
SCRIPTS = {"operations": ["operations.js"], "queries": ["queries.js", "histogram.js"], "picking": ["picking.js"]}
CHARTS = ("operations", "queries")  # the pages that load Vega-Lite
VENDOR = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")
HEADER_MARK = "<!-- in the header above, the page below -->"


def _status(exc: EventIndexError) -> int:
    if isinstance(exc, NotFound):  # before BadInput: an unknown dataset is both
        return 404
    if isinstance(exc, BadInput):
        return 400
    if isinstance(exc, (TransientError, ConfigurationError)):
        return 503
    return 500


def create_app() -> FastAPI:
    app = FastAPI(title="EventIndex", version="1",
                  description="The event catalogue's REST API: datasets, event lookup, counts, overlaps, selections "
                              "and event picking. Authenticate with Airflow's JWT (`POST /auth/token`) as a Bearer "
                              "token, or the Airflow UI's session (reads only: writes need the Bearer token).",
                  docs_url=None, redoc_url=None)
    for router in (me.router, datasets.router, queries.router, triggers.router, histograms.router, picks.router):
        app.include_router(router, prefix="/api/v1")

    @app.get("/docs", include_in_schema=False)
    def _docs(request: Request):
        """Swagger UI from the vendored swagger-ui-dist (``static/vendor/``), not FastAPI's default CDN: the machines
        that serve it have no internet."""
        from fastapi.openapi.docs import get_swagger_ui_html

        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title="EventIndex API",
                                   swagger_js_url=f"{root}/static/vendor/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/static/vendor/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/static/vendor/swagger-favicon-32x32.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # no call to swagger.io

    @app.exception_handler(EventIndexError)
    async def _core_error(request: Request, exc: EventIndexError):
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request: Request, exc: RequestValidationError):
        """FastAPI's 422 as the 400 every other bad parameter gets, naming the parameter."""
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=400)

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", include_in_schema=False)
    def _index(request: Request):
        return RedirectResponse(f"{request.scope.get('root_path', '')}/ui/operations")

    for page in PAGES:
        app.add_api_route(f"/ui/{page}", _page(page), include_in_schema=False, methods=["GET"])
    return app


def render_page(name: str) -> str:
    """A page: the shared frame (``pages/layout.html``: head, scripts, header with the navigation) around the page's
    own part (``pages/<name>.html``; what precedes its header mark goes into the header)."""
    own = (HERE / "pages" / f"{name}.html").read_text()
    header, _, own = own.rpartition(HEADER_MARK) if HEADER_MARK in own else ("", "", own)
    scripts = [f"vendor/{v}" for v in VENDOR] * (name in CHARTS) + ["eventindex.js"]
    tags = [f'  <script src="/eventindex/static/{s}"></script>' for s in scripts] + \
        [f'  <script src="/eventindex/static/{s}" defer></script>' for s in SCRIPTS[name]]
    current = ' aria-current="page"'
    nav = [f'    <a href="/eventindex/ui/{p}"{current if p == name else ""} data-testid="nav-{p}">{TITLES[p]}</a>'
           for p in PAGES]
    html = (HERE / "pages" / "layout.html").read_text()
    for mark, text in (("TITLE", TITLES[name]), ("SCRIPTS", "\n".join(tags)), ("NAV", "\n".join(nav)),
                       ("HEADER", header.strip()), ("PAGE", own.strip())):
        html = html.replace(f"<!--{mark}-->", text)
    return html


def _page(name: str):
    """A page holds no data (its scripts fetch the API with the caller's session): rendered once."""
    html = render_page(name)

    def page():
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    page.__name__ = f"page_{name}"
    return page


app = create_app()
