"""The Queries page's trigger suggestions and Overlaps placeholders in a real browser, what `make up` leaves behind
(three accounts, files the owner's alone), a malformed dataset name triggered over Airflow's REST API, and the
README's screenshots kept in step with the pages (the fixtures of test_web_pages.py). Expected names come from the
world's menus.json read here, expected numbers from the REST API."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, UP_OUTPUT, admin_api
from tests.e2e.test_web_pages import _tid, browser, page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration
SHOTS = ROOT / "docs/screenshots"


def _menu_names(web) -> list[str]:
    data = json.loads((web.world_dir / "menus.json").read_text())
    return sorted({n for m in data["menus"] for key in ("l1_items", "hlt_chains") for n in m[key] if n})


def _save_menus(web) -> None:
    """The world's menus in the site's catalogue, as the conditions DAG puts them (test_web_pages does the same)."""
    from eventindex.catalog import open_catalog
    from eventindex.settings import Settings
    from eventindex.trigger import load_menus

    settings = Settings.from_env({"EVENTINDEX_HOME": web.env["EVENTINDEX_HOME"]})
    open_catalog(settings).save_menus(load_menus(web.world_dir / "menus.json")[0].values())


def _options(p, expected: set[str]) -> set[str]:
    """The datalist's option values once they are ``expected`` (or what they are when the wait gives up)."""
    script = "want => { const got = [...document.querySelectorAll('#trigger-names option')].map(o => o.value); " \
             "return got.length === want.length && want.every(w => got.includes(w)); }"
    try:
        p.wait_for_function(script, arg=sorted(expected), timeout=20_000)
    finally:
        got = set(p.locator("#trigger-names option").evaluate_all("os => os.map(o => o.value)"))
    return got


def test_the_trigger_fields_suggest_the_catalogues_names_completing_the_word_typed(page, web):  # noqa: F811
    _save_menus(web)
    names = _menu_names(web)
    page.goto(f"{web.url}/eventindex/ui/queries")
    for field in ("sel-triggers", "overlap-triggers"):
        assert page.locator(_tid(field)).get_attribute("list") == "trigger-names"
    page.locator(_tid("sel-triggers")).click()
    page.locator(_tid("sel-triggers")).press_sequentially("HLT_mu26_ivarm")
    want = {n for n in names if "hlt_mu26_ivarm" in n.lower()}
    assert "HLT_mu26_ivarmedium_L1MU14FCH" in want
    assert _options(page, want) == want
    # in a comma list (or an expression) the word at the caret is completed, the text before it kept
    head = "HLT_mu26_ivarmedium_L1MU14FCH, "
    page.locator(_tid("overlap-triggers")).click()
    page.locator(_tid("overlap-triggers")).press_sequentially(head + "HLT_e26_lhti")
    want = {head + n for n in names if "hlt_e26_lhti" in n.lower()}
    assert len(want) > 1 and _options(page, want) == want


@pytest.mark.parametrize("field, other", [("overlap-triggers", "overlap-streams"),
                                          ("overlap-streams", "overlap-triggers")])
def test_an_overlaps_placeholder_typed_as_it_reads_gives_an_answer(page, web, field, other):  # noqa: F811
    _save_menus(web)
    page.goto(f"{web.url}/eventindex/ui/queries")
    typed = page.locator(_tid(field)).get_attribute("placeholder")
    page.locator(_tid(field)).fill(typed)
    page.locator(_tid(other)).fill("")
    page.locator(_tid("overlaps-button")).click()
    page.locator(_tid("overlaps-table")).wait_for()
    assert page.locator(_tid("error")).is_hidden()
    kind = "triggers" if field == "overlap-triggers" else "streams"
    labels = [t.strip() for t in typed.split(",")]
    status, answer, _ = web.call("GET", f"/api/v1/overlaps?{kind}={','.join(labels)}")
    assert status == 200 and answer["labels"] == labels
    rows = page.locator(f'{_tid("overlaps-table")} tbody tr').evaluate_all(
        "rs => rs.map(r => [...r.cells].map(c => c.textContent.trim()))")
    assert [r[0] for r in rows] == answer["labels"]
    assert [[int(c.replace(",", "")) for c in r[1:]] for r in rows] == answer["matrix"]
    assert all(answer["matrix"][i][i] > 0 for i in range(len(rows)))


def test_make_up_made_three_accounts_and_keeps_its_files_to_the_owner(web):
    """`scripts/airflow.sh up` prints an admin, a viewer and an analyst with their generated passwords, which log in
    with their roles; Airflow's home, its DB with -wal and -shm, and the metadata DB are the owner's alone."""
    home = Path(web.env["AIRFLOW_HOME"])
    printed = dict(re.findall(r"user: (\S+)\s+password: (\S+)", UP_OUTPUT[str(home)]))
    assert printed == web.passwords and set(printed) == {"admin", "viewer", "analyst"}
    for user, role in (("viewer", "viewer"), ("analyst", "user"), ("admin", "admin")):
        status, me, _ = web.call("GET", "/api/v1/me", user=user)
        assert status == 200 and (me["name"], me["role"]) == (user, role)
        assert me["may"]["submit_picks"] == (user != "viewer")
    ei_home = Path(web.env["EVENTINDEX_HOME"])
    for folder in (home, ei_home):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    db_files = [*home.glob("airflow.db*"), *ei_home.glob("metadata.sqlite*")]
    assert {p.name for p in db_files} >= {"airflow.db", "airflow.db-wal", "airflow.db-shm", "metadata.sqlite"}
    exposed = [p.name for p in [*home.iterdir(), *db_files] if p.is_file() and p.stat().st_mode & 0o077]
    assert exposed == []


def test_a_malformed_dataset_name_over_rest_fails_its_run_at_once_naming_the_rule(web):
    """Airflow's REST API takes the name (no regular expression answers it); the run fails in its first task and
    its note names the rule the name breaks, as the run page shows it."""
    api = admin_api(web.env)
    name = "data18_13TeV.358031.physics_Main.merge.AOD.f961_m1831"
    run_id = api.trigger("eventindex_ingest", {"dataset": name}, prefix="malformed")
    assert api.wait("eventindex_ingest", run_id, timeout_s=300) == "failed"
    run = api._call("GET", f"/api/v2/dags/eventindex_ingest/dagRuns/{run_id}")
    assert run["note"] == f"**refused** malformed dataset name {name!r}: run number '358031' must be 8 digits " \
                          "(e.g. 00358031)"
    tis = api._call("GET", f"/api/v2/dags/eventindex_ingest/dagRuns/{run_id}/taskInstances")["task_instances"]
    assert {t["task_id"]: (t["state"], t["try_number"]) for t in tis}["wait_complete"] == ("failed", 1)


def test_the_screenshots_show_the_pages_as_they_are(page, web):  # noqa: F811
    """Each page's section headings now are those recorded when its screenshot was taken (scripts/screenshots.py
    writes docs/screenshots/pages.json with the pictures): a page that gains or loses a section fails this until
    the screenshots are taken again."""
    recorded = json.loads((SHOTS / "pages.json").read_text())["pages"]
    assert set(recorded) == {"operations", "queries", "picking"}
    for name, shot in recorded.items():
        assert hashlib.sha256((SHOTS / f"{name}.png").read_bytes()).hexdigest() == shot["png_sha256"], \
            f"{name}.png is not the picture pages.json was written with: run scripts/screenshots.py"
        page.goto(f"{web.url}/eventindex/ui/{name}")
        page.locator("main h2").first.wait_for()
        live = [t for t in (" ".join(h.split()) for h in page.locator("main h2").all_text_contents()) if t]
        assert live == shot["headings"], f"the {name} page changed since docs/screenshots/{name}.png: run " \
                                         "`make demo && make up`, then python scripts/screenshots.py"
