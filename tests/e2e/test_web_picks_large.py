"""A 200,000-line picking request (3 MiB: over the 1 MiB a run's params carry, under the app's 64 MiB) through the
web app, as REST multipart and from the Picking page in real Chromium: the app checks the whole file, uploads it to
the requests area and triggers the run with its events_uri; the run finds what the world holds. Checked against the
run's conf in Airflow, the uploaded object and the world's ROOT files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eventindex.airflow_api import AirflowAPI
from eventindex.picking.request import MAX_INLINE_BYTES, parse_events
from tests.conftest import dataset, dataset_events
from tests.e2e.test_web_pages import _tid, browser, page  # noqa: F401  (fixtures: Chromium, the analyst's page)

pytestmark = pytest.mark.integration
LINES = 200_000


def _request(web, offset: int) -> tuple[bytes, int, int]:
    """(file, found, missing): 10 events of the world's AOD, then distinct events its first run does not hold."""
    pairs = dataset_events(web.world_dir, dataset(web.world, "AOD", tag="f961_m1831"))[offset:offset + 100:10]
    run = pairs[0][0]
    text = "".join(f"{r} {e}\n" for r, e in pairs) + "".join(f"{run} {10**13 + offset * LINES + k}\n"
                                                             for k in range(LINES - len(pairs)))
    return text.encode(), len(pairs), LINES - len(pairs)


def _went_by_the_requests_area(web, request_id: str, sent: bytes) -> None:
    admin = AirflowAPI(web.url, "admin", web.passwords["admin"])
    conf = admin._call("GET", f"/api/v2/dags/eventindex_pick/dagRuns/{request_id}")["conf"]
    assert not conf["events"] and Path(conf["events_uri"]).parent == Path(web.env["EVENTINDEX_HOME"]) / "requests"
    assert np.array_equal(parse_events(Path(conf["events_uri"]).read_text())[0], parse_events(sent.decode())[0])


def test_a_200k_line_request_uploaded_as_multipart_goes_by_the_requests_area(web):
    events, found, missing = _request(web, 0)
    assert len(events) > 2 * MAX_INLINE_BYTES
    status, answer, _ = web.submit_pick("analyst", {"datatype": "AOD", "version": "f961_m1831",
                                                   "stream": "physics_Main"}, events)
    assert status == 201, answer
    assert answer["events"] == LINES
    _went_by_the_requests_area(web, answer["request_id"], events)
    done = web.wait_pick(answer["request_id"], "analyst")
    assert done["run"]["state"] == "success" and (done["found"], done["missing"]) == (found, missing)


def test_a_200k_line_file_submitted_from_the_picking_page_goes_by_the_requests_area(page, web, tmp_path):  # noqa: F811
    events, found, missing = _request(web, 1)
    path = tmp_path / "events.txt"
    path.write_bytes(events)
    page.goto(f"{web.url}/eventindex/ui/picking")
    page.locator(_tid("pick-events")).set_input_files(str(path))
    page.locator(_tid("pick-datatype")).select_option("AOD")
    page.locator(_tid("pick-version")).fill("f961_m1831")
    page.locator(_tid("pick-stream")).fill("physics_Main")
    page.locator(_tid("pick-submit")).click()
    request_id = page.locator(_tid("pick-request-id")).inner_text().strip()
    assert f"with {LINES:,} events" in page.locator(_tid("pick-result")).inner_text()
    assert not page.locator(_tid("error")).is_visible()
    _went_by_the_requests_area(web, request_id, events)
    page.wait_for_selector(f'{_tid("pick-state")}:has-text("done")', timeout=600_000)
    assert page.locator(_tid("pick-found")).inner_text().strip() == f"{found:,}"
    assert page.locator(_tid("pick-missing")).inner_text().strip() == f"{missing:,}"
