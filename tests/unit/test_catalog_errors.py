"""What a user sees when a selection, an event number or the configuration is wrong: a one-line error that names
the offending value, what the catalogue holds instead and the nearest match. Expected values come from the small
simulated world (world.json), the record schema and the menus, never from the catalogue under test."""

from __future__ import annotations

import inspect
import string
from dataclasses import replace

import numpy as np
import pytest

from eventindex.catalog import Catalog, make_selection, open_catalog
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.catalog.phoenix import PhoenixCatalog
from eventindex.errors import BadInput, BadSelection, ConfigurationError, UnknownTrigger
from eventindex.settings import Settings
from eventindex.sim.triggers import build_menu
from eventindex.trigger import load_menus
from tests.conftest import upgraded

RUN_MAX = int(np.iinfo(np.uint32).max)  # run_number is uint32 in the record schema, event_number uint64
EVENT_MAX = int(np.iinfo(np.uint64).max)


@pytest.fixture(scope="module")
def loaded(staged_world, tmp_path_factory):
    """The small world loaded once for the read-only tests of this module: (world, catalogue)."""
    world, out, staging = staged_world
    where = tmp_path_factory.mktemp("errors-catalog")
    catalog = EmbeddedCatalog(where / "cat", upgraded(f"sqlite:///{where / 'm.sqlite'}"))
    catalog.save_menus(load_menus(out / "menus.json")[0].values())
    load_staged(catalog, str(staging))
    return world, catalog


def _swap(value: str, at: int) -> str:
    """The typo of swapping two neighbouring characters."""
    return value[:at] + value[at + 1] + value[at] + value[at + 2:]


def _held(world, key: str) -> list[str]:
    values = {"project": lambda d: d["name"].split(".")[0], "stream": lambda d: d.get("stream"),
              "datatype": lambda d: d["datatype"], "version": lambda d: d.get("amitag")}[key]
    return [v for v in dict.fromkeys(values(d) for d in world["datasets"]) if v]


# --- 5a: values no dataset has --------------------------------------------------------------------------------


@pytest.mark.parametrize("key, what, truth, typo", [
    ("stream", "stream", "physics_Main", "physics_Mian"),
    ("project", "project", "data18_13TeV", "data17_13TeV"),
    ("datatype", "data type", "DAOD_PHYS", "DAOD_PHSY"),
    ("version", "version", "f961_m1831", "f961_m1813"),
])
def test_a_misspelt_selection_value_is_refused_naming_what_the_catalogue_holds(loaded, key, what, truth, typo):
    world, catalog = loaded
    held = _held(world, key)
    assert truth in held and typo not in held  # the typo is one, and the right value is in the world
    with pytest.raises(BadSelection) as exc:
        catalog.count(make_selection(**{key: typo}))
    message = str(exc.value)
    assert message.startswith(f"unknown {what} {typo!r}: the catalogue holds ")
    assert all(v in message for v in held)
    assert message.endswith(f"(did you mean {truth}?)")


def test_the_stream_typo_of_the_brief_reads_as_promised(loaded):
    world, catalog = loaded
    streams = _held(world, "stream")
    typo = _swap("physics_Main", 9)
    with pytest.raises(BadSelection, match=r"unknown stream 'physics_Mian': the catalogue holds .*physics_MinBias"
                                           r".*\(did you mean physics_Main\?\)") as exc:
        catalog.count(make_selection(stream=typo))
    assert set(streams) == {"physics_Main", "physics_MinBias", "express_express"}
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("key", ["stream", "project", "datatype", "version"])
def test_a_value_the_catalogue_holds_still_counts_its_events(loaded, key):
    world, catalog = loaded
    for value in _held(world, key):
        expected = sum(d["nevents"] for d in world["datasets"] if value in _held({"datasets": [d]}, key))
        assert catalog.count(make_selection(**{key: value})) == expected, value


def test_latest_and_an_unmatched_combination_of_known_values_count_without_error(loaded):
    world, catalog = loaded
    assert catalog.count(make_selection(version="latest", datatype="RAW")) == sum(
        d["nevents"] for d in world["datasets"] if d["datatype"] == "RAW")
    # every value is known, the combination matches nothing: a true 0, not an error
    assert catalog.count(make_selection(stream="express_express", datatype="DAOD_PHYS")) == 0


def test_lookups_refuse_an_unknown_data_type_too(loaded):
    world, catalog = loaded
    with pytest.raises(BadSelection, match="did you mean DAOD_PHYS"):
        catalog.lookup(358031, 1, datatype="DAOD_PHSY")
    with pytest.raises(BadSelection, match="unknown version 'f961_m1813'"):
        catalog.lookup_many([(358031, 1)], version="f961_m1813")


def test_an_empty_catalogue_says_to_load_datasets_first(tmp_path):
    catalog = EmbeddedCatalog(tmp_path / "cat", upgraded(f"sqlite:///{tmp_path / 'm.sqlite'}"))
    assert catalog.count(make_selection()) == 0
    with pytest.raises(BadSelection) as exc:
        catalog.count(make_selection(stream="physics_Main"))
    assert "holds no datasets" in str(exc.value) and "eventindex load" in str(exc.value) \
        and "make demo" in str(exc.value)


def test_a_version_only_obsolete_datasets_have_is_known_only_with_include_obsolete(staged_world, tmp_path):
    world, out, staging = staged_world
    catalog = EmbeddedCatalog(tmp_path / "cat", upgraded(f"sqlite:///{tmp_path / 'm.sqlite'}"))
    catalog.save_menus(load_menus(out / "menus.json")[0].values())
    load_staged(catalog, str(staging))
    version = "r11969_r11784_p4072_p4309"
    held = [d for d in world["datasets"] if d.get("amitag") == version]
    assert held
    for d in held:
        catalog.mark_obsolete(d["name"])
    with pytest.raises(BadSelection, match="only in obsolete datasets"):
        catalog.count(make_selection(version=version))
    assert catalog.count(make_selection(version=version, include_obsolete=True)) == sum(d["nevents"] for d in held)


# --- 5b: the nearest trigger name first -----------------------------------------------------------------------


def _suggestions(message: str) -> list[str]:
    assert "did you mean " in message, message
    return message.split("did you mean ", 1)[1].rstrip("?").split(", ")


def test_an_obvious_trigger_typo_suggests_the_intended_chain_first(loaded):
    _, catalog = loaded
    menu, _ = build_menu(2757, 0)
    typo, intended = "HLT_e26_lhtight_ivarloose_L1EM22VHJ", "HLT_e26_lhtight_ivarloose_L1EM22VHI"
    assert intended in menu.names
    with pytest.raises(UnknownTrigger) as exc:
        menu.locate(typo)
    assert _suggestions(str(exc.value))[0] == intended
    with pytest.raises(UnknownTrigger) as exc:  # through the catalogue, over the menus of the loaded data
        catalog.count(make_selection(triggers=[typo]))
    assert _suggestions(str(exc.value))[0] == intended


def _one_edit_away(word: str, names: set[str]) -> set[str]:
    """The names one substitution, insertion, deletion or swap of neighbours from ``word`` (case ignored)."""
    word, alphabet = word.lower(), set(string.ascii_lowercase + string.digits + "_.-")
    edits = {word[:i] + word[i + 1:] for i in range(len(word))}
    edits |= {word[:i] + c + word[i + 1:] for i in range(len(word)) for c in alphabet}
    edits |= {word[:i] + c + word[i:] for i in range(len(word) + 1) for c in alphabet}
    edits |= {_swap(word, i) for i in range(len(word) - 1)}
    lower = {n.lower(): n for n in names}
    return {lower[e] for e in edits if e in lower}


@pytest.mark.parametrize("typo, intended", [
    ("HLT_xe10z_cell_L1XE50", "HLT_xe100_cell_L1XE50"), ("L1_J5z", "L1_J50"),
    ("HLT_ez6_lhloose_L1EM22VHI", "HLT_e26_lhloose_L1EM22VHI"), ("HLT_3j10z_L13J50", "HLT_3j100_L13J50"),
])
def test_the_one_name_a_typo_away_comes_before_names_that_merely_look_alike(typo, intended):
    menu, _ = build_menu(2757, 0)
    assert _one_edit_away(typo, set(menu.names)) == {intended}
    with pytest.raises(UnknownTrigger) as exc:
        menu.locate(typo)
    assert _suggestions(str(exc.value))[0] == intended


def test_when_one_name_is_a_single_typo_away_it_is_suggested_first():
    menu, _ = build_menu(2781, 1)
    names = set(menu.names)
    rng = np.random.default_rng(5)
    checked = 0
    for name in sorted(names)[::7]:
        at = int(rng.integers(len(name)))
        typo = name[:at] + "xq"[name[at] == "x"] + name[at + 1:]
        if typo in names or _one_edit_away(typo, names) != {name}:
            continue
        with pytest.raises(UnknownTrigger) as exc:
            menu.locate(typo)
        assert _suggestions(str(exc.value))[0] == name, (typo, str(exc.value))
        checked += 1
    assert checked > 50


# --- 5c: which number is out of range -------------------------------------------------------------------------


def test_a_run_out_of_range_is_named_with_the_allowed_range(loaded):
    _, catalog = loaded
    for run in (RUN_MAX + 1, -1):
        with pytest.raises(BadSelection) as exc:
            catalog.lookup(run, 1)
        assert str(exc.value) == f"run {run} is out of range (0..{RUN_MAX})"
    with pytest.raises(BadSelection, match=f"run {RUN_MAX + 1} is out of range"):
        catalog.lookup_many([(1, 1), (RUN_MAX + 1, 1)])


def test_an_event_out_of_range_is_named_with_the_allowed_range(loaded):
    _, catalog = loaded
    for event in (EVENT_MAX + 1, -5):
        with pytest.raises(BadSelection) as exc:
            catalog.lookup(358031, event)
        assert str(exc.value) == f"event {event} is out of range (0..{EVENT_MAX})"


# --- 4: configuration from Settings ---------------------------------------------------------------------------


PHOENIX_ENV = {"EVENTINDEX_CATALOG": "phoenix", "EVENTINDEX_PHOENIX_URL": "https://phoenix.example.org:8765/",
               "EVENTINDEX_PHOENIX_AUTH": "BASIC", "EVENTINDEX_PHOENIX_USER": "reader",
               "EVENTINDEX_PHOENIX_PASSWORD": "s3cret", "EVENTINDEX_PHOENIX_CA": "/etc/ssl/phoenix-ca.pem"}


def test_settings_read_the_catalogue_backend_and_phoenix_variables(tmp_path):
    s = Settings.from_env({"EVENTINDEX_HOME": str(tmp_path), **PHOENIX_ENV})
    assert (s.catalog_backend, s.phoenix_url, s.phoenix_auth, s.phoenix_user, s.phoenix_password, s.phoenix_ca) == (
        "phoenix", "https://phoenix.example.org:8765/", "BASIC", "reader", "s3cret", "/etc/ssl/phoenix-ca.pem")
    assert "s3cret" not in repr(s)
    default = Settings.from_env({"EVENTINDEX_HOME": str(tmp_path)})
    assert default.catalog_backend == "embedded" and default.phoenix_url is None


def test_an_unknown_backend_is_a_configuration_error(tmp_path):
    settings = Settings.from_env({"EVENTINDEX_HOME": str(tmp_path)})
    with pytest.raises(ConfigurationError, match="'hbase'") as exc:
        open_catalog(settings, "hbase")
    assert not isinstance(exc.value, BadInput)
    with pytest.raises(ConfigurationError, match="'hbase'"):
        open_catalog(replace(settings, catalog_backend="hbase"))


def test_phoenix_without_a_url_is_a_configuration_error_naming_the_variable(tmp_path):
    settings = Settings.from_env({"EVENTINDEX_HOME": str(tmp_path), "EVENTINDEX_CATALOG": "phoenix"})
    with pytest.raises(ConfigurationError, match="EVENTINDEX_PHOENIX_URL"):
        open_catalog(settings)


def test_phoenix_gets_its_server_and_credentials_from_the_settings_not_the_environment(tmp_path, monkeypatch):
    import phoenixdb

    calls = []

    class Cursor:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, *args):
            pass

    class Connection:
        def cursor(self):
            return Cursor()

    monkeypatch.setattr(phoenixdb, "connect", lambda url, **kw: calls.append((url, kw)) or Connection())
    monkeypatch.setenv("EVENTINDEX_PHOENIX_USER", "someone-else")  # only Settings.from_env reads the environment
    settings = Settings.from_env({"EVENTINDEX_HOME": str(tmp_path), **PHOENIX_ENV})
    catalog = open_catalog(settings)
    assert isinstance(catalog, PhoenixCatalog) and catalog.backend == "phoenix"
    assert calls == [("https://phoenix.example.org:8765/", {
        "autocommit": True, "authentication": "BASIC", "avatica_user": "reader", "avatica_password": "s3cret",
        "verify": "/etc/ssl/phoenix-ca.pem"})]


# --- the protocol ---------------------------------------------------------------------------------------------


def test_both_backends_offer_every_method_of_the_catalog_protocol_with_the_same_parameters(loaded):
    _, catalog = loaded
    methods = [n for n, v in vars(Catalog).items() if callable(v) and not n.startswith("_")]
    assert {"load", "lookup", "lookup_many", "count", "select", "overlaps", "show", "datasets"} <= set(methods)
    for backend in (EmbeddedCatalog, PhoenixCatalog):
        for name in methods:
            ours = list(inspect.signature(getattr(backend, name)).parameters)
            assert ours == list(inspect.signature(getattr(Catalog, name)).parameters), (backend.__name__, name)
    assert isinstance(catalog, Catalog)


def test_negative_event_numbers_in_a_batch_lookup_are_a_clear_error(loaded):
    _, catalog = loaded
    with pytest.raises(BadSelection, match="must be integers from 0"):
        catalog.lookup_many([(358031, -5)])


def test_secrets_stay_out_of_the_settings_repr():
    env = {"EVENTINDEX_AIRFLOW_PASSWORD": "pw-airflow-1", "PANDA_AUTH_ID_TOKEN": "tok-panda-2",
           "EVENTINDEX_PHOENIX_PASSWORD": "pw-phoenix-3"}
    text = repr(Settings.from_env(env))
    assert not any(secret in text for secret in env.values())
