"""The README's screenshots of the EventIndex pages, taken in Debian's Chromium (Playwright) from a running Airflow
(`make demo && make up`): python scripts/screenshots.py [--url URL] [--user admin] [--out docs/screenshots].

Beside them, ``pages.json`` records each page's section headings as the page had them, and each picture's SHA-256:
a browser test (tests/e2e/test_web_queries_page.py) compares the live pages' headings with these, so a page that
changes fails it until its screenshot is taken again."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


def section_headings(page) -> list[str]:
    """The page's section headings (``main h2``) in document order, as served: those a script fills in (a selected
    dataset's or request's name) left out, so that the list depends on the page, not on the data."""
    return [t for t in (" ".join(h.split()) for h in page.locator("main h2").all_text_contents()) if t]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", help="default: the one `make up` generated")
    p.add_argument("--out", default=str(ROOT / "docs/screenshots"))
    args = p.parse_args()
    home = Path(os.environ.get("AIRFLOW_HOME") or ROOT / "airflow_home")
    password = args.password or json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())[
        args.user]
    headings = {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(f"{args.url}/")
        page.get_by_label("Username").fill(args.user)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{args.url}/**")

        page.goto(f"{args.url}/plugin/eventindex-operations")  # inside Airflow's UI, as operators see it
        frame = page.frame_locator("iframe")
        frame.locator(f"{tid('chart-rates')} svg").wait_for()
        headings["operations"] = section_headings(frame)
        page.screenshot(path=out / "operations.png")

        page.goto(f"{args.url}/eventindex/ui/queries")
        headings["queries"] = section_headings(page)
        page.locator(tid("sel-type")).fill("RAW")
        page.locator(tid("count-button")).click()
        page.locator(tid("overlaps-button")).click()
        page.locator(tid("per-run-button")).click()
        page.locator(tid("per-lumi-button")).click()
        page.locator(tid("histogram-button")).click()
        for chart in ("chart-overlaps", "chart-per-run", "chart-per-lumi", "chart-histogram"):
            page.locator(f"{tid(chart)} svg").wait_for()
        page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays at the top of a full-page shot
        page.screenshot(path=out / "queries.png", full_page=True)

        page.goto(f"{args.url}/eventindex/ui/picking")
        page.locator(tid("pick-link")).first.wait_for()
        headings["picking"] = section_headings(page)
        page.locator(tid("pick-link")).first.click()
        page.locator(tid("details-tasks")).wait_for()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=out / "picking.png", full_page=True)
        browser.close()
    pages = {name: {"headings": headings[name], "png_sha256": hashlib.sha256((out / f"{name}.png").read_bytes())
                    .hexdigest()} for name in ("operations", "queries", "picking")}
    (out / "pages.json").write_text(json.dumps({"pages": pages}, indent=2) + "\n")
    for name in pages:
        print(out / f"{name}.png")
    print(out / "pages.json")


if __name__ == "__main__":
    main()
