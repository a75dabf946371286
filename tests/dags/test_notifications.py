"""Notifications through the SMTP provider's notifier, received by a real SMTP server on loopback (aiosmtpd), and
the picking run's note: the requester hears how a request ended and how to submit it again; the operators hear of
failed ingestions; nobody configured, nothing sent."""

import json

import pytest
from sqlalchemy import select

from eventindex.picking.request import DEFAULTS
from eventindex_harness.smtp import mailbox, smtp_server  # noqa: F401  (fixtures)
from tests.conftest import dataset, dataset_events
from tests.dags.conftest import task_states
from tests.dags.test_skim_dag import _conf as skim_conf

REQUESTER = "dag_test@example.org"  # dag.test() triggers as the Airflow user "dag_test"


def _conf(**params) -> dict:
    return {**DEFAULTS, **params}


def _note(run) -> str | None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.scalar(select(DagRun).where(DagRun.dag_id == run.dag_id, DagRun.run_id == run.run_id)).note


@pytest.fixture
def mail_domain(monkeypatch):
    monkeypatch.setenv("EVENTINDEX_MAIL_DOMAIN", "example.org")
    monkeypatch.delenv("EVENTINDEX_OPERATORS_MAIL", raising=False)


def test_a_finished_pick_mails_the_requester_the_outcome_and_the_command_and_notes_the_run(dagbag, loaded, mailbox,
                                                                                          mail_domain):
    world, out, _, _, _ = loaded
    pairs = dataset_events(out, dataset(world, "AOD", tag="f961_m1831"))
    text = "\n".join(f"{r} {e}" for r, e in pairs[:20]) + f"\n{pairs[0][0]} {10**15}"
    run = dagbag.dags["eventindex_pick"].test(run_conf=_conf(events=text, datatype="AOD", version="f961_m1831",
                                                             output="user.eventindex.mailed.AOD", files_per_job=3))
    assert str(run.state) == "success", task_states(run)
    [mail] = mailbox.wait(1)
    assert mail.rcpt_tos == [REQUESTER] and "done" in mail.subject and run.run_id in mail.subject
    assert "found 20, missing 1" in mail.text and "user.eventindex:user.eventindex.mailed.AOD" in mail.text
    assert ("eventindex pick --events FILE --type AOD --version f961_m1831 --out user.eventindex.mailed.AOD "
            "--files-per-job 3") in mail.text
    note = _note(run)
    assert note.startswith("**done** found 20, missing 1") and "user.eventindex:user.eventindex.mailed.AOD" in note


def test_a_failed_pick_mails_the_requester_the_failing_steps_error_and_notes_it(dagbag, loaded, mailbox, mail_domain):
    run = dagbag.dags["eventindex_pick"].test(run_conf=_conf(events="358031 1", datatype="AOD", version="f961_m9999"))
    assert str(run.state) == "failed"
    [mail] = mailbox.wait(1)
    assert mail.rcpt_tos == [REQUESTER] and "failed" in mail.subject
    assert "failed: plan:" in mail.text and "f961_m9999" in mail.text
    assert "eventindex pick --events FILE --type AOD --version f961_m9999" in mail.text
    note = _note(run)
    assert note.startswith("**failed** plan:") and "f961_m9999" in note


def test_a_finished_skim_mails_the_requester_its_summary_and_the_command(dagbag, loaded, mailbox, mail_domain,
                                                                         tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTINDEX_SKIMS", str(tmp_path / "skims"))
    run = dagbag.dags["eventindex_skim"].test(run_conf=skim_conf(
        type="AOD", stream="physics_Main", version="f961_m1831", lumi=["10-12"], formats=["AOD", "RAW"],
        attributes=["run_number", "event_number"], output="mailed.root"))
    assert str(run.state) == "success", task_states(run)
    [mail] = mailbox.wait(1)
    assert mail.rcpt_tos == [REQUESTER] and mail.subject == f"[EventIndex] skim {run.run_id} done"
    summary = json.loads((tmp_path / "skims" / "mailed.root.json").read_text())
    assert f"{summary['events']:,} events written to {tmp_path / 'skims' / 'mailed.root'}" in mail.text
    assert "references: AOD, RAW" in mail.text and summary["command"] in mail.text


def test_a_failed_skim_mails_the_requester_the_error(dagbag, loaded, mailbox, mail_domain, tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTINDEX_SKIMS", str(tmp_path / "skims"))
    run = dagbag.dags["eventindex_skim"].test(run_conf=skim_conf(type="AOD", attributes=["jet_pt"], output="bad.root"))
    assert str(run.state) == "failed"
    [mail] = mailbox.wait(1)
    assert mail.rcpt_tos == [REQUESTER] and mail.subject == f"[EventIndex] skim {run.run_id} failed"
    assert "output: bad.root" in mail.text and "failed: skim: bad skim: unknown attribute(s)" in mail.text
    assert "jet_pt" in mail.text


def test_a_failed_ingestion_mails_the_operators(dagbag, staged_world, eventindex_home, mailbox, monkeypatch):
    monkeypatch.setenv("EVENTINDEX_OPERATORS_MAIL", "ops@example.org")
    _, _, staging = staged_world
    name = "data18_13TeV.00399999.physics_Main.merge.AOD.f961_m1831"  # staged nowhere, known to no catalogue
    eventindex_home.mkdir(parents=True, exist_ok=True)
    run = dagbag.dags["eventindex_ingest"].test(run_conf={"dataset": name, "staging_uri": str(staging)})
    assert str(run.state) == "failed"
    [mail] = mailbox.wait(1)
    assert mail.rcpt_tos == ["ops@example.org"] and name in mail.subject
    assert "step: wait_complete" in mail.text and name in mail.text


def test_nothing_is_sent_when_no_address_is_configured(dagbag, loaded, mailbox, monkeypatch):
    for key in ("EVENTINDEX_MAIL_DOMAIN", "EVENTINDEX_OPERATORS_MAIL"):
        monkeypatch.delenv(key, raising=False)
    run = dagbag.dags["eventindex_pick"].test(run_conf=_conf(events="358031 1", datatype="AOD", version="f961_m9999"))
    assert str(run.state) == "failed"
    run = dagbag.dags["eventindex_ingest"].test(run_conf={
        "dataset": "data18_13TeV.00399999.physics_Main.merge.AOD.f961_m1831"})
    assert str(run.state) == "failed"
    assert mailbox.wait(1, timeout=1) == []
    # no mail, but the run still says why (the dataset's own account, as `eventindex ingestion` lists it)
    from eventindex import progress
    from eventindex.metadata import make_engine
    from eventindex.settings import Settings

    row = progress.get(make_engine(Settings.from_env().metadata_url), run.conf["dataset"])
    assert row["state"] == "failed" and "exists nowhere" in row["detail"]
    assert _note(run) == f"**failed** {row['detail']}"


def test_consistency_findings_mail_the_operators(dagbag, loaded, mailbox, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setenv("EVENTINDEX_OPERATORS_MAIL", "ops@example.org")
    world, _, staging, catalog, _ = loaded
    raw = dataset(world, "RAW", stream="physics_MinBias")
    aod_name = raw["name"].replace("daq.RAW", "merge.AOD.f961_m1831")
    catalog.load(aod_name, pq.read_table(next((staging / aod_name).glob("*.parquet"))).slice(5))  # 5 events lost
    run = dagbag.dags["eventindex_consistency"].test()
    assert str(run.state) == "failed"
    [mail] = mailbox.wait(1)
    assert mail.rcpt_tos == ["ops@example.org"] and mail.subject == "[EventIndex] consistency findings"
    assert "raw_vs_aod" in mail.text
