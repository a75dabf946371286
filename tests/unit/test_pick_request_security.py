"""A picking request's output scope (only the caller's user scope or a group it belongs to) and the inline cap of
its events (bigger requests are uploaded to the requests area and passed by URI; nothing else is read)."""

import json

import numpy as np
import pytest

from eventindex import picking
from eventindex.errors import ConfigurationError
from eventindex.picking.request import MAX_INLINE_BYTES, REFUSED_URI, read_uploaded, upload_events
from eventindex.settings import Settings, parse_groups


def _request(output=None, **params):
    return picking.PickRequest.from_params({"events": "358031 1\n358031 2", "datatype": "AOD", "output": output,
                                            **params})


@pytest.mark.parametrize("output", ["data18_13TeV.00358031.physics_Main.merge.AOD.f961_m9999",
                                    "mc16_13TeV.410470.PhPy8EG.deriv.DAOD_PHYS.e6337_s3126_r10201_p4172"])
def test_an_output_in_an_official_scope_is_refused(output):
    with pytest.raises(picking.BadRequest, match="^output: "):
        picking.authorize(_request(output), "jdoe")


def test_an_output_in_another_users_scope_is_refused():
    with pytest.raises(picking.BadRequest, match="^output: .*scope user.alice; jdoe may write only to user.jdoe"):
        picking.authorize(_request("user.alice.picked.AOD"), "jdoe")


def test_an_output_in_the_callers_own_user_scope_is_accepted():
    assert picking.authorize(_request("user.jdoe.picked.AOD"), "jdoe").output == "user.jdoe.picked.AOD"


def test_a_group_scope_is_accepted_only_for_a_member():
    request = _request("group.phys-higgs.picked.AOD")
    assert picking.authorize(request, "jdoe", ("phys-top", "phys-higgs")).output == "group.phys-higgs.picked.AOD"
    with pytest.raises(picking.BadRequest, match="^output: .*scope group.phys-higgs"):
        picking.authorize(request, "jdoe", ("phys-top",))


def test_the_default_output_is_named_in_the_callers_user_scope():
    assert picking.authorize(_request(), "jdoe", (), "manual__2026-01-01T00:00:00+00:00").output == \
        "user.jdoe.manual__2026_01_01T00_00_00_00_00.AOD"


@pytest.mark.parametrize("output", ["user.jdoe/../../etc/passwd", "/etc/passwd", "user.jdoe..x", "user.jdoe.a/b",
                                    "user.jdoe.../x", "user.JDoe.picked.AOD", "user.jdoe." + "x" * 250,
                                    "user.averyveryverylongname.x", "user.jdoe.x y", "user.jdoe.", "user.jdoe"])
def test_path_like_or_illegal_output_names_are_refused_before_anything(output):
    with pytest.raises(picking.BadRequest, match="^output: "):
        _request(output)


def test_a_caller_without_a_legal_user_scope_is_refused():
    with pytest.raises(picking.BadRequest, match="^output: the user"):
        picking.authorize(_request(), "J.Doe@cern.ch", (), "r1")


def test_group_membership_comes_from_eventindex_groups():
    settings = Settings.from_env({"EVENTINDEX_HOME": "/tmp/x",
                                  "EVENTINDEX_GROUPS": "jdoe:phys-top, phys-higgs;ann:perf"})
    assert settings.groups_of("jdoe") == ("phys-top", "phys-higgs") and settings.groups_of("bob") == ()
    assert parse_groups("") == {}
    with pytest.raises(ConfigurationError, match="EVENTINDEX_GROUPS"):
        parse_groups("jdoe=phys-top")


def test_inline_events_over_the_cap_are_refused_naming_the_cap():
    text = "358031 1234567\n" * (MAX_INLINE_BYTES // 15 + 1)
    with pytest.raises(picking.BadRequest, match=r"^events: .*more than the cap of 1 MiB"):
        picking.PickRequest.from_params({"events": text, "datatype": "AOD"})


def test_events_and_events_uri_together_are_refused(tmp_path):
    with pytest.raises(picking.BadRequest, match="^events, events_uri: give one"):
        picking.PickRequest.from_params({"events": "1 2", "events_uri": str(tmp_path / "r.txt"), "datatype": "AOD"},
                                        str(tmp_path))


def test_an_events_uri_outside_the_requests_area_is_refused_with_one_message(tmp_path):
    area = tmp_path / "requests"
    area.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("the admin password\n")
    (area / "link.txt").symlink_to(secret)
    (area / "sub").mkdir()
    (area / "sub" / "r.txt").write_text("1 2\n")
    messages = set()
    for uri in (str(secret), str(tmp_path / "missing.txt"), "/etc/passwd", str(area / ".." / "secret.txt"),
                str(area / "link.txt"), str(area / "missing.txt"), str(area / "sub" / "r.txt"), str(area / "sub"),
                secret.as_uri(), "s3://bucket/requests/r.txt", "requests/r.txt"):
        with pytest.raises(picking.BadRequest) as err:
            picking.PickRequest.from_params({"events_uri": uri, "datatype": "AOD"}, str(area))
        messages.add(str(err.value))
    assert messages == {REFUSED_URI}
    assert "password" not in REFUSED_URI


def test_an_events_uri_of_another_object_store_endpoint_is_refused():
    area = "s3://picks/requests?endpoint_override=127.0.0.1:8333&scheme=http"
    for uri in ("s3://picks/requests/r.txt?endpoint_override=evil:8333&scheme=http",
                "s3://picks/requests-other/r.txt?endpoint_override=127.0.0.1:8333&scheme=http",
                "s3://picks/requests/a/r.txt?endpoint_override=127.0.0.1:8333&scheme=http"):
        with pytest.raises(picking.BadRequest, match=REFUSED_URI.split(":")[0]):
            read_uploaded(uri, area)


def test_a_bad_line_of_an_uploaded_request_is_named_by_its_number_only(tmp_path):
    uri = upload_events("358031 1\nroot:x:0:0:secret\n", str(tmp_path))
    with pytest.raises(picking.BadRequest) as err:
        picking.PickRequest.from_params({"events_uri": uri, "datatype": "AOD"}, str(tmp_path))
    assert str(err.value) == "events, line 2: not a 'run event' pair of two numbers"


def test_a_big_request_from_the_cli_goes_by_uri_and_the_params_stay_small(tmp_path):
    area = tmp_path / "requests"
    events = np.stack([358031 + np.arange(200_000) % 7, 1_000_000 + np.arange(200_000)], axis=1).astype(np.uint64)
    request = _request().with_events(np.unique(events, axis=0))  # what the CLI read from a 200k-line file
    params = picking.submission_params(request, str(area))
    assert len(json.dumps(params)) < 2000 and params["events"] == ""
    assert params["events_uri"].startswith(str(area) + "/")
    again = picking.PickRequest.from_params(params, str(area))
    assert len(again.events) == 200_000 and again.digest() == request.digest()
    small = picking.submission_params(_request(), str(area))
    assert "events_uri" not in small and small["events"] == "358031 1\n358031 2"


def test_the_cli_refuses_an_output_outside_the_users_scopes_before_submitting(tmp_path):
    import os
    import subprocess
    import sys

    events = tmp_path / "events.txt"
    events.write_text("358031 1\n")
    env = {**os.environ, "EVENTINDEX_HOME": str(tmp_path / "home"), "AIRFLOW_URL": "http://127.0.0.1:9",
           "EVENTINDEX_AIRFLOW_USER": "jdoe", "EVENTINDEX_AIRFLOW_PASSWORD": "x"}  # port 9: nothing is reached
    done = subprocess.run([sys.executable, "-m", "eventindex.cli.main", "pick", "--events", str(events), "--type", "AOD",
                           "--out", "user.alice.picked.AOD"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "output: 'user.alice.picked.AOD' is in the scope user.alice" in done.stderr
    assert "cannot reach Airflow" not in done.stderr
    assert not (tmp_path / "home" / "requests").exists()
