"""Settings is the one reader of the environment: the local Rucio URL and where `eventindex pick` finds Airflow."""

from __future__ import annotations

import json
import socket

import pytest

from eventindex.airflow_api import AirflowAPI, api_url
from eventindex.errors import AirflowAPIError, ConfigurationError
from eventindex.settings import Settings


def test_the_local_rucio_url_lives_in_the_home(tmp_path):
    settings = Settings.from_env({"EVENTINDEX_HOME": str(tmp_path)})
    assert settings.local_rucio_url == f"sqlite:///{tmp_path / 'rucio.sqlite'}"


def test_airflow_url_comes_from_the_variable_then_the_file_make_up_wrote_then_the_default(tmp_path):
    home = tmp_path / "airflow_home"
    home.mkdir()
    env = {"EVENTINDEX_HOME": str(tmp_path), "AIRFLOW_HOME": str(home)}
    assert api_url(Settings.from_env(env)) == "http://127.0.0.1:8080"
    (home / "api_url").write_text("http://127.0.0.1:8090\n")  # what `AIRFLOW_PORT=8090 make up` leaves
    assert api_url(Settings.from_env(env)) == "http://127.0.0.1:8090"
    assert api_url(Settings.from_env({**env, "AIRFLOW_URL": "http://airflow.example:9000/"})) == \
        "http://airflow.example:9000"


def test_the_password_comes_from_settings_or_the_generated_file(tmp_path):
    home = tmp_path / "airflow_home"
    home.mkdir()
    env = {"EVENTINDEX_HOME": str(tmp_path), "AIRFLOW_HOME": str(home)}
    with pytest.raises(ConfigurationError, match="EVENTINDEX_AIRFLOW_PASSWORD"):
        AirflowAPI.from_env(Settings.from_env(env))
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "s3cret"}))
    api = AirflowAPI.from_env(Settings.from_env(env))
    assert (api.user, api.password) == ("admin", "s3cret")
    api = AirflowAPI.from_env(Settings.from_env({**env, "EVENTINDEX_AIRFLOW_USER": "jdoe",
                                                 "EVENTINDEX_AIRFLOW_PASSWORD": "pw"}))
    assert (api.user, api.password) == ("jdoe", "pw")


def test_an_unreachable_airflow_is_a_transient_error_naming_the_url(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    api = AirflowAPI.from_env(Settings.from_env({"EVENTINDEX_HOME": str(tmp_path), "AIRFLOW_URL": url,
                                                 "EVENTINDEX_AIRFLOW_PASSWORD": "pw"}))
    with pytest.raises(AirflowAPIError, match=f"cannot reach Airflow at {url}"):
        api.trigger("eventindex_pick", {})


def test_scoped_environment_variables_are_restored_after_the_block(monkeypatch):
    import os

    from eventindex.settings import scoped_environ

    monkeypatch.setenv("EI_SCOPED_KEEP", "before")
    monkeypatch.delenv("EI_SCOPED_NEW", raising=False)
    with pytest.raises(RuntimeError):
        with scoped_environ({"EI_SCOPED_KEEP": None, "EI_SCOPED_NEW": "inside"}):
            assert "EI_SCOPED_KEEP" not in os.environ and os.environ["EI_SCOPED_NEW"] == "inside"
            raise RuntimeError("the block fails")
    assert os.environ["EI_SCOPED_KEEP"] == "before" and "EI_SCOPED_NEW" not in os.environ
