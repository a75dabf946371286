"""The queries page's histogram panel in a real browser (the fixtures of test_web_pages.py): what it draws and says
is checked against the REST answer (itself equal to `eventindex histogram --json`, tests/e2e/test_web_api.py)."""

from __future__ import annotations

import pytest

from tests.e2e.test_web_pages import _svg_marks, _tid, browser, page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration


def test_the_histogram_panel_draws_one_bar_per_bin_and_states_the_entries_and_flows(page, web):  # noqa: F811
    page.goto(f"{web.url}/eventindex/ui/queries")
    page.locator(_tid("sel-type")).fill("RAW")
    page.locator(_tid("sel-stream")).fill("physics_Main")
    page.locator(_tid("histogram-column")).select_option("lumi_block")
    page.locator(_tid("histogram-bins")).fill("6")
    page.locator(_tid("histogram-range")).fill("3,21")
    page.locator(_tid("histogram-button")).click()
    page.wait_for_selector(f'{_tid("histogram-entries")}[data-entries]')
    rest = web.call("GET", "/api/v1/histogram?column=lumi_block&bins=6&range=3,21&type=RAW&stream=physics_Main")[1]
    assert int(page.locator(_tid("histogram-entries")).get_attribute("data-entries")) == rest["entries"] > 0
    text = page.locator(_tid("histogram-entries")).inner_text()
    assert f"underflow {rest['underflow'][0]:,}" in text and f"overflow {rest['overflow'][0]:,}" in text
    assert _svg_marks(page, "chart-histogram") == 6
    assert page.locator(_tid("histogram-command")).inner_text() == rest["command"]

    page.locator(_tid("histogram-bins")).fill("0")
    page.locator(_tid("histogram-button")).click()
    page.locator(_tid("error")).wait_for()
    assert "bins" in page.locator(_tid("error")).inner_text()


def test_a_second_column_makes_a_2d_histogram_of_the_same_columns(page, web):  # noqa: F811
    page.goto(f"{web.url}/eventindex/ui/queries")
    page.locator(_tid("sel-type")).fill("RAW")
    page.locator(_tid("histogram-column")).select_option("lumi_block")
    page.locator(_tid("histogram-range")).fill("0,30")
    page.locator(_tid("histogram-column-y")).select_option("bcid")
    page.locator(_tid("histogram-range-y")).fill("0,3564")
    page.locator(_tid("histogram-bins")).fill("3")
    page.locator(_tid("histogram-button")).click()
    page.wait_for_selector(f'{_tid("histogram-entries")}[data-entries]')
    rest = web.call("GET", "/api/v1/histogram?column=lumi_block&column=bcid&bins=3&range=0,30&range=0,3564"
                           "&type=RAW")[1]
    assert int(page.locator(_tid("histogram-entries")).get_attribute("data-entries")) == rest["entries"] > 0
    assert page.locator(_tid("histogram-command")).inner_text() == rest["command"]
    assert _svg_marks(page, "chart-histogram") >= 9  # a 3 x 3 heatmap
