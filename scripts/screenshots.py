"""The README's screenshots of the EventIndex pages, taken in Debian's Chromium (Playwright) from a running Airflow
(`make demo && make up`): python scripts/screenshots.py [--url URL] [--user admin] [--out docs/screenshots]."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", help="default: the one `make up` generated")
    p.add_argument("--out", default=str(ROOT / "docs/screenshots"))
    args = p.parse_args()
    password = args.password or json.loads(
        (ROOT / "airflow_home/simple_auth_manager_passwords.json.generated").read_text())[args.user]
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
        page.screenshot(path=out / "operations.png")

        page.goto(f"{args.url}/eventindex/ui/queries")
        page.locator(tid("sel-type")).fill("RAW")
        page.locator(tid("count-button")).click()
        page.locator(tid("overlaps-button")).click()
        page.locator(tid("per-run-button")).click()
        page.locator(tid("per-lumi-button")).click()
        for chart in ("chart-overlaps", "chart-per-run", "chart-per-lumi"):
            page.locator(f"{tid(chart)} svg").wait_for()
        page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays at the top of a full-page shot
        page.screenshot(path=out / "queries.png", full_page=True)

        page.goto(f"{args.url}/eventindex/ui/picking")
        page.locator(tid("pick-link")).first.click()
        page.locator(tid("details-tasks")).wait_for()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=out / "picking.png", full_page=True)
        browser.close()
    for name in ("operations", "queries", "picking"):
        print(out / f"{name}.png")


if __name__ == "__main__":
    main()
