"""Every trigger survives the round trip the triggerer makes (serialize -> import the classpath -> construct from the
kwargs), and carries connection ids and job ids only: never a server URL or a token's path."""

import importlib

import pytest

from eventindex_airflow.triggers import PandaJobTrigger

TRIGGERS = [PandaJobTrigger(4100000007, "eventindex_panda", 90.0, started=1_700_000_000.0),
            PandaJobTrigger(12, None, 0.5)]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: type(t).__name__)
def test_triggers_round_trip_through_their_serialization(trigger):
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert type(again) is type(trigger) and again.serialize() == (classpath, kwargs)


def test_the_panda_trigger_serializes_connection_and_job_ids_only(monkeypatch, tmp_path):
    monkeypatch.setenv("EVENTINDEX_PANDA_URL", "https://panda.example.org:25443/server/panda")
    monkeypatch.setenv("OIDC_AUTH_TOKEN_FILE", str(tmp_path / "secret-token"))
    classpath, kwargs = PandaJobTrigger(7, "eventindex_panda", 60.0).serialize()
    assert set(kwargs) == {"panda_id", "panda_conn_id", "timeout_seconds", "started"}
    assert "panda.example.org" not in repr(kwargs) and "secret-token" not in repr(kwargs)
