"""The text of notifications and who gets them (eventindex.notify: pure functions, no Airflow)."""

import shlex

import pytest

from eventindex import notify
from eventindex.cli.main import build_parser
from eventindex.picking.request import DEFAULTS


@pytest.mark.parametrize("user, domain, address", [
    ("jdoe", "example.org", "jdoe@example.org"),
    ("jdoe", "@example.org", "jdoe@example.org"),
    ("jane.doe@cern.ch", None, "jane.doe@cern.ch"),
    ("jdoe", None, None),
    (None, "example.org", None),
    ("", "example.org", None),
    ("j doe\nBcc: x@evil.org", "example.org", None),
    ("x@evil.org\nBcc: y@evil.org", "example.org", None),
])
def test_the_requester_address_is_the_user_at_the_mail_domain_or_nobody(user, domain, address):
    assert notify.requester_address(user, domain) == address


def test_the_reproducing_command_spells_what_differs_from_the_defaults_and_parses_back():
    options = {**DEFAULTS, "datatype": "RAW", "version": "f961", "output": "user.jdoe.my picks.RAW",
               "files_per_job": 3, "job_timeout_minutes": 360.0}
    command = notify.reproduce_command(options)
    assert command == "eventindex pick --events FILE --type RAW --version f961 --out 'user.jdoe.my picks.RAW' " \
                      "--files-per-job 3"
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.type, args.version, args.out, args.files_per_job, args.backend) == \
        ("RAW", "f961", "user.jdoe.my picks.RAW", 3, "local")


def test_a_pick_mail_holds_the_outcome_and_the_command():
    summary = {"found": 1200, "missing": 3, "output_dataset": "user.jdoe:user.jdoe.p.AOD",
               "output_uri": "s3://picks/r1", "files": ["a", "b"]}
    subject, body = notify.pick_mail("r1", "success", summary, {"datatype": "AOD"})
    assert subject == "[EventIndex] picking request r1 done"
    assert "found 1,200, missing 3" in body and "2 files in s3://picks/r1" in body
    assert "eventindex pick --events FILE --type AOD" in body


def test_a_failed_pick_says_the_error_in_the_mail_and_the_note_shortened():
    error = "plan: bad picking request: unknown version " + "x" * 2000
    subject, body = notify.pick_mail("r2", "failed", {"error": error}, {"datatype": "AOD"})
    assert subject.endswith("failed") and "failed: plan: bad picking request" in body
    note = notify.pick_note("failed", {"error": error})
    assert note.startswith("**failed** plan: bad picking request") and len(note) < 600


def test_without_a_recorded_error_the_failure_names_the_reason_given():
    assert notify.pick_note("failed", None, "step plan: task_failure") == "**failed** step plan: task_failure"


def test_an_ingestion_mail_tells_stuck_from_failed():
    subject, body = notify.ingest_mail("eventindex_ingest", "r", "data18_13TeV.x", "wait_complete",
                                       "data18_13TeV.x is stuck: waiting for 2 of 3 files")
    assert subject == "[EventIndex] ingestion of data18_13TeV.x stuck" and "step: wait_complete" in body
    assert notify.ingest_mail("d", "r", "ds", "load", "disk full")[0].endswith("failed")


def test_consistency_findings_are_told_apart_from_a_failed_check():
    assert notify.consistency_mail("r", "2 inconsistencies: {'duplicates': 2}")[0].endswith("findings")
    assert notify.consistency_mail("r", "Rucio is down")[0].endswith("check failed")
