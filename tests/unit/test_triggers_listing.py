"""Listing trigger names (``eventindex triggers``, ``GET /api/v1/triggers``) and "did you mean" putting the names
that extend what was typed first. Ground truth: the world's menus.json read as plain JSON, filtered here."""

from __future__ import annotations

import fnmatch
import json

import pytest

from eventindex.cli.main import main
from eventindex.errors import UnknownTrigger
from eventindex.trigger import TriggerMenu, close_matches


def _truth(out) -> dict[str, dict]:
    """name -> {"level", "smks"} from menus.json, as the file has them."""
    data = json.loads((out / "menus.json").read_text())
    names: dict[str, dict] = {}
    for menu in data["menus"]:
        for level, key in (("L1", "l1_items"), ("HLT", "hlt_chains")):
            for name in menu[key]:
                if name:
                    entry = names.setdefault(name, {"level": level, "smks": set()})
                    entry["smks"].add(int(menu["smk"]))
    return names


@pytest.fixture
def menus_home(small_world, metadata_home):
    """A catalogue holding the world's trigger menus (no data needed to list names)."""
    from eventindex.catalog import open_catalog
    from eventindex.trigger import load_menus

    _, out = small_world
    open_catalog().save_menus(load_menus(out / "menus.json")[0].values())
    return out


def _listed(capsys, *args) -> list[dict]:
    capsys.readouterr()
    assert main(["triggers", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_triggers_lists_every_name_of_the_menus_once_with_its_level_and_menus(menus_home, capsys):
    truth = _truth(menus_home)
    assert len({smk for e in truth.values() for smk in e["smks"]}) >= 2  # names shared by menus are listed once
    listed = _listed(capsys)
    assert [e["name"] for e in listed] == sorted(truth, key=lambda n: (truth[n]["level"] != "L1", n))
    assert {e["name"]: (e["level"], set(e["smks"])) for e in listed} == {
        n: (t["level"], t["smks"]) for n, t in truth.items()}
    seeds = {e["name"]: e["l1_seed"] for e in listed}
    assert seeds["HLT_mu26_ivarmedium_L1MU14FCH"] == "L1_MU14FCH" and seeds["L1_MU14FCH"] is None


@pytest.mark.parametrize("like, level", [("mu26", None), ("MU26", "HLT"), ("em22", "L1"), ("HLT_mu*_L1MU14FCH", None),
                                         ("l1_j??", "l1"), ("no_such_trigger", None)])
def test_like_and_level_select_as_a_plain_filter_of_the_menus_does(menus_home, capsys, like, level):
    truth = _truth(menus_home)
    pattern = like.lower()
    want = sorted((n for n, t in truth.items()
                   if (fnmatch.fnmatchcase(n.lower(), pattern) if "*" in like or "?" in like else pattern in n.lower())
                   and (level is None or t["level"] == level.upper())),
                  key=lambda n: (truth[n]["level"] != "L1", n))
    args = ["--like", like] + (["--level", level] if level else [])
    assert [e["name"] for e in _listed(capsys, *args)] == want
    if like == "mu26":
        assert "HLT_mu26_ivarmedium_L1MU14FCH" in want


def test_the_table_names_what_it_lists(menus_home, capsys):
    capsys.readouterr()
    assert main(["triggers", "--like", "mu26_ivarmedium"]) == 0
    text = capsys.readouterr().out
    assert "HLT_mu26_ivarmedium_L1MU14FCH" in text and "L1_MU14FCH" in text and "1 trigger name" in text


def test_an_empty_like_is_refused_in_one_line_and_no_menus_is_said(metadata_home, capsys):
    assert main(["triggers", "--like", " "]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: like is empty") and len(err.splitlines()) == 1
    assert main(["triggers", "--json"]) == 0  # a catalogue without menus: nothing to list, and why
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [] and "no trigger menu is loaded" in captured.err


def test_the_rest_route_answers_as_the_cli_does(menus_home, capsys):
    from fastapi.testclient import TestClient

    from eventindex_web import auth
    from eventindex_web.app import create_app

    app = create_app()
    app.dependency_overrides[auth.reader] = lambda: auth.Caller("alice", None, "t")
    client = TestClient(app)
    got = client.get("/api/v1/triggers", params={"like": "mu26", "level": "HLT"})
    assert got.status_code == 200
    assert got.json() == _listed(capsys, "--like", "mu26", "--level", "HLT")
    bad = client.get("/api/v1/triggers", params={"level": "L2"})
    assert bad.status_code == 400 and bad.json()["detail"] == "level 'L2' is not one of L1, HLT"
    assert "/api/v1/triggers" in client.get("/openapi.json").json()["paths"]


def test_did_you_mean_puts_the_names_that_extend_what_was_typed_first(small_world):
    _, out = small_world
    menus = [TriggerMenu.from_json(m) for m in json.loads((out / "menus.json").read_text())["menus"]]
    menu = next(m for m in menus if "HLT_mu26_ivarmedium_L1MU14FCH" in m.names)
    with pytest.raises(UnknownTrigger) as exc:
        menu.locate("HLT_mu26_ivarmedium")
    offered = str(exc.value).split("did you mean ", 1)[1].rstrip("?").split(", ")
    assert offered[0] == "HLT_mu26_ivarmedium_L1MU14FCH"
    # extensions first, shortest first, then names holding the text elsewhere; the rest only after them
    extending = [n for n in menu.names if n.lower().startswith("hlt_mu26")]
    assert close_matches("hlt_mu26", menu.names, n=len(extending)) == sorted(extending, key=lambda n: (len(n), n))
    holding = sorted((n for n in menu.names if "mu26" in n), key=lambda n: (len(n), n))
    assert close_matches("mu26", menu.names, n=len(holding) + 3)[:len(holding)] == holding
    # a typo, which extends nothing, still gets the name one edit away first
    assert close_matches("HLT_mu26_ivarmedum_L1MU14FCH", menu.names)[0] == "HLT_mu26_ivarmedium_L1MU14FCH"


def _placeholder(testid: str) -> str:
    import re
    from pathlib import Path

    html = (Path(__file__).resolve().parents[2] / "plugins/eventindex_web/pages/queries.html").read_text()
    return re.search(rf'data-testid="{testid}"[^>]*?placeholder="([^"]*)"', html, re.S).group(1)


@pytest.mark.parametrize("field", ["overlap-triggers", "overlap-streams"])
def test_the_overlaps_placeholders_are_inputs_the_overlaps_query_answers(picking_world, field):
    """Typed as they read into the Queries page's Overlaps fields, with nothing else selected (the page's REST call is
    the same use case): an answer, each diagonal cell the events of RAW that pass alone (counted another way)."""
    from eventindex.catalog import make_selection
    from eventindex.monitoring import overlaps

    _, _, catalog, _ = picking_world
    names = [n.strip() for n in _placeholder(field).split(",")]
    assert len(names) == 2 and all(names)
    kind = "triggers" if field == "overlap-triggers" else "streams"
    answer = overlaps(catalog, make_selection(), **{kind: names})
    assert answer["labels"] == names
    for i, name in enumerate(names):
        alone = make_selection(datatype="RAW", **({"triggers": [name]} if kind == "triggers" else {"stream": name}))
        assert answer["matrix"][i][i] == catalog.count(alone) > 0
