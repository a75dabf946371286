"""The EventIndex pages in a real browser: Debian's Chromium driven by Playwright (no browser downloaded), logged in
through Airflow's own login form, on the same Airflow standalone as the REST tests. Each test checks what the page
shows against the REST API or the CLI, never against what the test typed."""

from __future__ import annotations

import csv
import json
import re
import shutil
from urllib.parse import urlencode

import pytest

from tests.conftest import dataset, dataset_events

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, web):
    """A page logged in as the analyst (role user: reads, edits and triggers DAGs) through Airflow's login form."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.set_default_timeout(60_000)
    p.goto(f"{web.url}/")
    p.get_by_label("Username").fill("analyst")
    p.get_by_label("Password").fill(web.passwords["analyst"])
    p.get_by_role("button", name="Sign in").click()
    p.wait_for_url(re.compile(r".*/(dags|home)?$|.*/$"))
    yield p
    context.close()


def _tid(name: str) -> str:
    return f'[data-testid="{name}"]'


def _svg_marks(p, chart: str) -> int:
    """How many drawn marks (bars, cells, points) a Vega chart holds: a chart with data has some."""
    p.wait_for_selector(f"{_tid(chart)} svg .role-mark path, {_tid(chart)} svg .role-mark rect")
    return p.locator(f"{_tid(chart)} svg .role-mark path").count() + \
        p.locator(f"{_tid(chart)} svg .role-mark rect").count()


def test_pages_are_linked_in_airflows_navigation_and_show_inside_it(page, web):
    page.goto(f"{web.url}/plugin/eventindex-operations")
    frame = page.frame_locator("iframe")
    frame.locator(_tid("by-state-row")).first.wait_for()
    assert "loaded" in frame.locator(_tid("by-state")).inner_text()
    for name in ("operations", "queries", "picking"):
        page.goto(f"{web.url}/eventindex/ui/{name}")
        page.locator(_tid(f"nav-{name}")).wait_for()
        assert not page.locator(_tid("error")).is_visible()


def test_operations_shows_the_catalogue_with_plots_and_what_is_stuck(page, web):
    from eventindex import progress
    from eventindex.metadata import make_engine
    from eventindex.settings import Settings

    stuck = "data18_13TeV.00358998.physics_Main.merge.AOD.f961_m1831"
    engine = make_engine(Settings.from_env({"EVENTINDEX_HOME": web.env["EVENTINDEX_HOME"]}).metadata_url)
    progress.mark(engine, stuck, "stuck", "waiting for 1 of 4 files")
    page.goto(f"{web.url}/eventindex/ui/operations")
    page.locator(_tid("in-flight-row")).first.wait_for()
    assert "waiting for 1 of 4 files" in page.locator(_tid("in-flight-row"), has_text=stuck).inner_text()
    page.locator(_tid("dataset-row")).first.wait_for()
    total = web.call("GET", "/api/v1/datasets")[1]["total"]
    assert page.locator(_tid("datasets-range")).inner_text().endswith(f"of {total}")
    assert page.locator(_tid("dataset-row")).count() == min(total, 100)
    assert _svg_marks(page, "chart-by-state") >= 1
    assert _svg_marks(page, "chart-rates") >= 1


def test_a_dataset_is_declared_obsolete_after_confirmation_and_restored(page, web):
    name = dataset(web.world, "RAW", stream="physics_MinBias")["name"]
    page.goto(f"{web.url}/eventindex/ui/operations")
    row = page.locator(f'{_tid("dataset-row")}[data-name="{name}"]')
    row.locator(_tid("obsolete-button")).click()
    assert name in page.locator(_tid("confirm-name")).inner_text()
    page.locator(_tid("cancel")).click()
    assert web.call("GET", f"/api/v1/datasets/{name}")[1]["status"] == "loaded"  # cancelled: nothing changed
    row.locator(_tid("obsolete-button")).click()
    page.locator(_tid("confirm")).click()
    page.locator(f'{_tid("dataset-row")}[data-name="{name}"][data-status="obsolete"]').wait_for()
    assert web.call("GET", f"/api/v1/datasets/{name}")[1]["status"] == "obsolete"
    page.locator(f'{_tid("dataset-row")}[data-name="{name}"]').locator(_tid("restore-button")).click()
    page.locator(_tid("confirm")).click()
    page.locator(f'{_tid("dataset-row")}[data-name="{name}"][data-status="loaded"]').wait_for()
    assert web.call("GET", f"/api/v1/datasets/{name}")[1]["status"] == "loaded"


def test_a_datasets_details_show_amis_production_status_and_cross_section(page, web):
    aod = next(d for d in web.world["datasets"] if d["datatype"] == "AOD" and "dsid" in d)
    web.cli("ami", "sync", "--upstream", f"sqlite:///{web.world_dir / 'upstream.sqlite'}")  # the world's tasks
    ami = web.call("GET", f"/api/v1/datasets/{aod['name']}")[1]["ami"]
    assert ami["cross_section_avg"] is not None
    page.goto(f"{web.url}/eventindex/ui/operations")
    page.locator(f'{_tid("dataset-link")}[data-name="{aod["name"]}"]').click()
    box = page.locator(_tid("details-ami"))
    box.locator('dd[data-key="cross-section"]').wait_for()
    assert box.locator('dd[data-key="production status"]').inner_text() == ami["production_status"]
    assert f"{ami['cross_section_avg']:.6g}"[:5] in box.locator('dd[data-key="cross-section"]').inner_text()
    assert box.locator('dd[data-key="generation tasks"]').inner_text() == ", ".join(map(str, ami["generation_tasks"]))


def test_queries_look_up_count_and_plot(page, web):
    aod = dataset(web.world, "AOD", tag="f961_m1831")
    run, event = dataset_events(web.world_dir, aod)[3]
    page.goto(f"{web.url}/eventindex/ui/queries")
    page.locator(_tid("lookup-run")).fill(str(run))
    page.locator(_tid("lookup-event")).fill(str(event))
    page.locator(_tid("lookup-submit")).click()
    page.locator(_tid("lookup-row")).first.wait_for()
    records = json.loads(web.cli("lookup", str(run), str(event), "--json"))
    assert page.locator(_tid("lookup-row")).count() == len(records) >= 1
    assert aod["name"] in page.locator(_tid("lookup-table")).inner_text()

    page.locator(_tid("sel-type")).fill("RAW")
    page.locator(_tid("sel-stream")).fill("physics_Main")
    page.locator(_tid("count-button")).click()
    page.wait_for_selector(f'{_tid("count-result")}[data-count]')
    assert int(page.locator(_tid("count-result")).get_attribute("data-count")) == \
        web.call("GET", "/api/v1/count?type=RAW&stream=physics_Main")[1]["count"]
    from eventindex.catalog import open_catalog
    from eventindex.settings import Settings
    from eventindex.trigger import load_menus

    settings = Settings.from_env({"EVENTINDEX_HOME": web.env["EVENTINDEX_HOME"]})
    open_catalog(settings).save_menus(load_menus(web.world_dir / "menus.json")[0].values())  # as the conditions DAG
    expression = "HLT_mu26_ivarmedium_L1MU14FCH or not L1_EM22VHI"
    page.locator(_tid("sel-triggers")).fill(expression)
    page.locator(_tid("sel-bcid")).fill("1-1800")
    page.locator(_tid("count-button")).click()
    query = urlencode({"type": "RAW", "stream": "physics_Main", "trigger": expression, "bcid": "1-1800"})
    status, answer, _ = web.call("GET", f"/api/v1/count?{query}")
    assert status == 200, answer
    expected = answer["count"]
    page.wait_for_selector(f'{_tid("count-result")}[data-count="{expected}"]')
    assert 0 < expected < web.call("GET", "/api/v1/count?type=RAW&stream=physics_Main")[1]["count"]
    page.locator(_tid("sel-triggers")).fill("")
    page.locator(_tid("sel-bcid")).fill("")

    page.locator(_tid("download-columns")).fill("run_number,event_number,lumi_block")
    page.locator(_tid("download-limit")).fill("5")
    with page.expect_download() as download:
        page.locator(_tid("download-csv")).click()
    rows = list(csv.DictReader(open(download.value.path())))
    assert len(rows) == 5 and set(rows[0]) == {"run_number", "event_number", "lumi_block"}

    page.locator(_tid("per-run-button")).click()
    runs = web.call("GET", "/api/v1/events-per?by=run&type=RAW&stream=physics_Main")[1]
    assert _svg_marks(page, "chart-per-run") == len(runs) >= 2

    page.locator(_tid("sel-stream")).fill("")
    page.locator(_tid("overlaps-button")).click()
    labels = web.call("GET", "/api/v1/overlaps?type=RAW")[1]["labels"]
    assert _svg_marks(page, "chart-overlaps") >= len(labels) ** 2


def test_a_pick_submitted_with_an_upload_is_followed_to_success(page, web, tmp_path):
    pairs = dataset_events(web.world_dir, dataset(web.world, "AOD", tag="f961_m1831"))[1:80:8]
    events = tmp_path / "events.txt"
    events.write_text("\n".join(f"{r} {e}" for r, e in pairs) + "\n")
    page.goto(f"{web.url}/eventindex/ui/picking")
    page.locator(_tid("pick-events")).set_input_files(str(events))
    page.locator(_tid("pick-datatype")).select_option("AOD")
    page.locator(_tid("pick-version")).fill("f961_m1831")
    page.locator(_tid("pick-stream")).fill("physics_Main")
    page.locator(_tid("pick-submit")).click()
    request_id = page.locator(_tid("pick-request-id")).inner_text().strip()
    page.wait_for_selector(f'{_tid("pick-state")}:has-text("done")', timeout=600_000)
    assert page.locator(_tid("pick-found")).inner_text().strip() == str(len(pairs))
    detail = web.call("GET", f"/api/v1/picks/{request_id}", user="analyst")[1]
    assert detail["run"]["triggered_by"] == "analyst" and detail["found"] == len(pairs)
    assert detail["output_dataset"].startswith("user.analyst:user.analyst.")
    assert detail["output_dataset"].split(":")[1] in page.locator(_tid("output-dataset")).inner_text()
    assert page.locator(_tid("task-row")).count() == len(detail["tasks"]) > 0
    _the_output_downloads_and_the_note_reads_as_text(page, web, request_id, detail)


def _the_output_downloads_and_the_note_reads_as_text(page, web, request_id, detail):
    """The output files are links through the app (no server path shown), each giving the bytes extraction stored;
    no other name is served; the run note's Markdown is rendered (no ``**``)."""
    from eventindex.settings import Settings
    from eventindex.workarea import run_folder

    names = detail["summary"]["files"]
    assert page.locator(_tid("output-file-link")).count() == len(names) >= 1
    picks = Settings.from_env({"EVENTINDEX_HOME": web.env["EVENTINDEX_HOME"]}).picks_area
    assert picks not in page.locator(_tid("details-output")).inner_text()  # links, not a path on the server
    with page.expect_download() as download:
        page.locator(_tid("output-file-link")).first.click()
    name = download.value.suggested_filename
    assert name in names
    stored = open(f"{picks}/{run_folder(request_id)}/{name}", "rb").read()
    assert open(download.value.path(), "rb").read() == stored and stored[:4] == b"root"
    for other in ("..%2F..%2Fmetadata.sqlite", "%2E%2E", "not-an-output.root"):
        assert web.call("GET", f"/api/v1/picks/{request_id}/files/{other}", user="analyst")[0] == 404, other
    page.wait_for_selector(f'{_tid("run-note")} strong:has-text("done")', timeout=120_000)
    note = page.locator(_tid("run-note")).inner_text()
    assert "**" not in note and note.startswith("done")


def test_a_failed_request_shows_its_failed_step_with_the_error_and_log_link(page, web):
    pairs = dataset_events(web.world_dir, dataset(web.world, "AOD", tag="f961_m1831"))[0:3]
    status, answer, _ = web.submit_pick("analyst", {"datatype": "AOD", "backend": "panda"},  # no PanDA on this site
                                        "\n".join(f"{r} {e}" for r, e in pairs).encode())
    assert status == 201, answer
    request_id = answer["request_id"]
    assert web.wait_pick(request_id, "analyst")["run"]["state"] == "failed"
    page.goto(f"{web.url}/eventindex/ui/picking?request={request_id}")
    step = page.locator(_tid("failed-step"))
    step.wait_for()
    assert "plan" in step.inner_text() and "PanDA" in step.inner_text()
    assert page.locator(_tid("failed-step-log")).get_attribute("href").endswith(f"/runs/{request_id}/tasks/plan")
