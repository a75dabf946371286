"""The pages and the app as a browser meets them (Debian's Chromium driven by Playwright, the fixtures of
test_web_pages.py): another origin's page cannot write as the logged-in user (CSRF), a viewer is not offered what
the server would refuse, the API's docs render with no network but loopback, long commands wrap, and the rates
chart draws each bucket as wide as its hour. Each outcome is checked against the REST API or Airflow's own."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from eventindex.airflow_api import AirflowAPI
from eventindex_harness.ports import free_port
from tests.conftest import dataset, dataset_events
from tests.e2e.test_web_pages import _tid, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def _login(browser, web, user: str, **context_options):  # noqa: F811
    """A page of a new browser context, logged in as ``user`` through Airflow's login form."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, **context_options)
    p = context.new_page()
    p.set_default_timeout(60_000)
    p.goto(f"{web.url}/")
    p.get_by_label("Username").fill(user)
    p.get_by_label("Password").fill(web.passwords[user])
    p.get_by_role("button", name="Sign in").click()
    p.wait_for_url(re.compile(r".*/(dags|home)?$|.*/$"))
    return context, p


ATTACK = """<!DOCTYPE html><html><head><title>win a prize</title></head><body>
<iframe name="sink"></iframe>
<form id="f" method="post" action="{api}/picks" enctype="multipart/form-data" target="sink">
  <input name="datatype" value="AOD"><input type="file" name="events">
</form>
<script>
(async () => {{
  const events = "{events}";
  await fetch("{api}/datasets?limit=1", {{mode: "no-cors", credentials: "include"}});  // the cookie goes along
  await fetch("{api}/datasets/{name}/obsolete", {{method: "POST", mode: "no-cors", credentials: "include"}});
  const data = new FormData();
  data.append("datatype", "AOD");
  data.append("events", new Blob([events], {{type: "text/plain"}}), "events.txt");
  await fetch("{api}/picks", {{method: "POST", mode: "no-cors", credentials: "include", body: data}});
  const dt = new DataTransfer();
  dt.items.add(new File([events], "events.txt", {{type: "text/plain"}}));
  const form = document.getElementById("f");
  form.events.files = dt.files;
  form.submit();
  document.title = "sent";
}})();
</script></body></html>"""


class _Attacker(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args):
        pass


def test_another_origins_page_cannot_write_as_the_logged_in_admin(browser, web):  # noqa: F811
    name = dataset(web.world, "RAW", stream="physics_Main")["name"]
    run, event = dataset_events(web.world_dir, dataset(web.world, "AOD", tag="f961_m1831"))[0]
    admin = AirflowAPI(web.url, "admin", web.passwords["admin"])
    runs_before = admin._call("GET", "/api/v2/dags/eventindex_pick/dagRuns?limit=1")["total_entries"]
    assert web.call("GET", f"/api/v1/datasets/{name}")[1]["status"] == "loaded"

    handler = type("Attacker", (_Attacker,), {"page": ATTACK.format(
        api=f"{web.url}/eventindex/api/v1", name=name, events=f"{run} {event}\\n").encode()})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context, page = _login(browser, web, "admin")
    try:
        writes, reads = [], []
        context.on("response", lambda r: (writes if r.request.method == "POST" else reads).append(r)
                   if "/eventindex/api/" in r.url else None)
        page.goto(f"http://127.0.0.1:{server.server_port}/")  # another origin of the same site (another port)
        page.wait_for_function("document.title === 'sent'")
        deadline = time.time() + 30
        while len(writes) < 3 and time.time() < deadline:  # the form's answer arrives in the iframe
            page.wait_for_timeout(200)
        # the attacker's page does send the admin's login cookie: its read (a no-cors GET) is answered 200...
        assert [(urlsplit(r.url).path, r.status) for r in reads] == [("/eventindex/api/v1/datasets", 200)]
        # ...but each of its three writes reached the app and was refused
        attacked = sorted((urlsplit(r.url).path, r.status) for r in writes)
        assert [(path, status in (401, 403)) for path, status in attacked] == [
            ("/eventindex/api/v1/datasets/" + name + "/obsolete", True),
            ("/eventindex/api/v1/picks", True), ("/eventindex/api/v1/picks", True)], attacked
    finally:
        context.close()
        server.shutdown()
    assert web.call("GET", f"/api/v1/datasets/{name}")[1]["status"] == "loaded"
    assert admin._call("GET", "/api/v2/dags/eventindex_pick/dagRuns?limit=1")["total_entries"] == runs_before


def test_writes_refuse_the_login_cookie_alone_and_a_foreign_origin_over_rest(web):
    from eventindex_web.app import app
    from fastapi.routing import APIRoute

    name = dataset(web.world, "RAW", stream="physics_Main")["name"]
    writes = sorted((m, r.path.replace("{name}", name)) for r in app.routes if isinstance(r, APIRoute)
                    for m in r.methods & {"POST", "PUT", "PATCH", "DELETE"})
    assert len(writes) >= 3
    cookie = {"Cookie": f"_token={web.token('admin')}"}
    for method, path in writes:  # a valid admin token, in the cookie only: refused
        status, body, _ = web.call(method, path, user=None, headers=cookie)
        assert status == 401 and "Authorization" in body["detail"], (method, path, status, body)
        status, body, _ = web.call(method, path, headers={"Origin": "http://127.0.0.1:1"})
        assert status == 403 and "another origin" in body["detail"], (method, path, status, body)
    assert web.call("GET", "/api/v1/datasets?limit=1", user=None, headers=cookie)[0] == 200  # reads still may
    assert web.call("GET", f"/api/v1/datasets/{name}")[1]["status"] == "loaded"


def test_a_viewer_is_offered_neither_declare_obsolete_nor_submit(browser, web):  # noqa: F811
    me = {u: web.call("GET", "/api/v1/me", user=u)[1] for u in ("viewer", "analyst")}
    assert me["viewer"] == {"name": "viewer", "role": "viewer",
                            "may": {"read": True, "change_datasets": False, "submit_picks": False}}
    assert me["analyst"]["may"] == {"read": True, "change_datasets": True, "submit_picks": True}
    context, page = _login(browser, web, "viewer")
    try:
        page.goto(f"{web.url}/eventindex/ui/operations")
        page.locator(_tid("dataset-row")).first.wait_for()
        page.wait_for_timeout(300)
        assert page.locator(_tid("dataset-row")).count() > 0
        assert page.locator(f'{_tid("obsolete-button")}, {_tid("restore-button")}').count() == 0
        page.locator(_tid("dataset-link")).first.click()
        page.locator(_tid("details-counts")).wait_for()
        assert page.locator(f'{_tid("details-obsolete-button")}, {_tid("details-restore-button")}').count() == 0
        page.goto(f"{web.url}/eventindex/ui/picking")
        page.locator(_tid("pick-not-allowed")).wait_for()
        assert page.locator(_tid("pick-submit")).is_disabled()
        assert "eventindex_pick" in page.locator(_tid("pick-not-allowed")).inner_text()
    finally:
        context.close()
    context, page = _login(browser, web, "analyst")  # the same pages offer both to someone who may use them
    try:
        page.goto(f"{web.url}/eventindex/ui/operations")
        page.locator(_tid("obsolete-button")).first.wait_for()
        page.goto(f"{web.url}/eventindex/ui/picking")
        page.locator(_tid("pick-row")).first.or_(page.locator(_tid("picks-table-empty"))).wait_for()
        assert page.locator(_tid("pick-submit")).is_enabled()
        assert not page.locator(_tid("pick-not-allowed")).is_visible()
    finally:
        context.close()


def test_the_api_docs_render_with_no_network_but_loopback(browser, web):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    blocked = []

    def offline(route):
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost", "::1"):
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort()

    context.route("**/*", offline)
    page = context.new_page()
    try:
        page.goto(f"{web.url}/eventindex/docs")
        page.locator(".opblock").first.wait_for(timeout=30_000)
        spec = web.call("GET", "/openapi.json", user=None)[1]
        operations = sum(len(methods) for methods in spec["paths"].values())
        assert page.locator(".opblock").count() == operations > 10
        assert page.locator(".opblock-summary-path", has_text="/api/v1/picks/{request_id}/files/{name}").count() == 1
        assert blocked == []  # nothing was even asked of the internet
    finally:
        context.close()


def test_a_long_reproduce_command_wraps_inside_the_window(browser, web):  # noqa: F811
    context, page = _login(browser, web, "analyst")
    try:
        page.goto(f"{web.url}/eventindex/ui/queries")
        page.locator(_tid("sel-type")).fill("RAW")
        page.locator(_tid("sel-lumi")).fill(",".join(str(lb) for lb in range(1, 30, 2)))
        page.locator(_tid("sel-bcid")).fill(",".join(str(b) for b in range(1, 3000, 97)))
        page.locator(_tid("histogram-column")).select_option("lumi_block")
        page.locator(_tid("histogram-button")).click()
        page.locator(_tid("histogram-command")).wait_for()
        command = page.locator(_tid("histogram-command")).inner_text()
        # the command on one line, in the same font, would not fit the window: the page must wrap it
        unwrapped = page.evaluate("""(text) => {
            const probe = document.createElement("span");
            probe.className = "mono";
            probe.style.whiteSpace = "pre";
            probe.textContent = text;
            document.body.append(probe);
            const w = probe.getBoundingClientRect().width;
            probe.remove();
            return w; }""", command)
        assert unwrapped > 1400
        assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("window.innerWidth") == 1400
        rest = web.call("GET", "/api/v1/histogram?column=lumi_block&bins=50&type=RAW&lumi="
                        + ",".join(str(lb) for lb in range(1, 30, 2)) + "&bcid="
                        + ",".join(str(b) for b in range(1, 3000, 97)))[1]
        assert command == rest["command"]  # wrapped on screen, the same text
    finally:
        context.close()


def _rates_bars(page, rows: list[dict]) -> tuple[list[dict], float, list[str]]:
    """The operations page's rates chart drawn over ``rows`` (the /rates answer replaced by them): the bars of its
    first panel (bounding boxes), the width of its plot and the labels of its time axis."""
    import json

    page.route("**/eventindex/api/v1/rates*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(rows)))
    page.goto(f"{page.url.split('/eventindex')[0]}/eventindex/ui/operations")
    chart = page.locator(_tid("chart-rates"))
    chart.locator("svg .role-mark path").first.wait_for()
    panel = chart.locator("svg g.mark-group.role-scope").first
    bars = [panel.locator(".role-mark path").nth(i).bounding_box()
            for i in range(panel.locator(".role-mark path").count())]
    axis = panel.locator('g.role-axis[aria-label^="X-axis"]').first
    domain = axis.locator(".role-axis-domain path, .role-axis-domain line").first.bounding_box()
    labels = axis.locator(".role-axis-label text").all_text_contents()
    page.unroute("**/eventindex/api/v1/rates*")
    return bars, domain["width"], labels


def test_the_rates_chart_draws_each_bucket_as_wide_as_its_hour(browser, web):  # noqa: F811
    context, page = _login(browser, web, "viewer")
    try:
        page.goto(f"{web.url}/eventindex/ui/operations")
        bars, plot, labels = _rates_bars(page, [{"t": "2026-12-02T04:00:00", "datasets": 3, "events": 9000}])
        assert len(bars) == 1 and 0 < bars[0]["width"] < plot / 2  # not one full-width bar
        assert len(labels) >= 2 and len(set(labels)) == len(labels), labels  # no tick twice
        bars, plot, labels = _rates_bars(page, [{"t": "2026-12-02T04:00:00", "datasets": 3, "events": 9000},
                                                {"t": "2026-12-02T07:00:00", "datasets": 1, "events": 100}])
        first, second = sorted(bars, key=lambda b: b["x"])
        # bars start three hours apart and each spans one hour: the gap between their starts is 3 bar widths
        assert abs((second["x"] - first["x"]) - 3 * first["width"]) < 2, bars
        assert abs(first["width"] - second["width"]) < 1 and len(set(labels)) == len(labels)
    finally:
        context.close()
