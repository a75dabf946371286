"""Mail through the SMTP provider's :class:`SmtpNotifier` (the server is the ``smtp_default`` connection), and the
picking run's note. The text and the addresses come from :mod:`eventindex.notify`; no address configured: no mail,
no error (logged).

- :class:`PickEndedNotifier`: the DAG's ``on_success_callback`` and ``on_failure_callback`` of ``eventindex_pick``
  (one mail per request, to the Airflow user who triggered it, see :func:`eventindex.notify.requester_address`).
- :class:`SkimEndedNotifier`: the same for ``eventindex_skim``: the skim's summary (stored next to its file) and the
  command that makes it again, or the error.
- :class:`OperatorsNotifier`: a task's ``on_failure_callback`` (after its last try), to
  ``EVENTINDEX_OPERATORS_MAIL``: a failed or stuck ingestion, consistency findings.
The run's note of a finished request is set by the listener of :mod:`.listeners`.
"""

from __future__ import annotations

import html
from abc import ABC, abstractmethod

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from eventindex import notify
from eventindex.picking.history import request as pick_request
from eventindex.settings import Settings

from .hooks import MetadataHook

DEFAULT_FROM = "eventindex@localhost"


def _attr(obj, name: str):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


class EventIndexNotifier(SmtpNotifier, ABC):
    """An :class:`SmtpNotifier` whose recipient, subject and body are composed from the context when it is called
    (:meth:`compose`); ``None`` means nobody to tell, and nothing is sent."""

    def __init__(self, *, smtp_conn_id: str | None = None, from_email: str | None = DEFAULT_FROM,
                 metadata_conn_id: str = "eventindex_metadata", **kwargs):
        super().__init__(to=[], from_email=from_email, subject="", html_content="", smtp_conn_id=smtp_conn_id,
                         **kwargs)
        self.metadata_conn_id = metadata_conn_id

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing to render: the fields are composed in :meth:`notify` (the request's own text is never a template;
        and a DAG callback under ``dag.test()`` hands a serialized DAG, which has no template environment)."""

    @abstractmethod
    def compose(self, context, settings: Settings) -> tuple[str, str, str] | None:
        """``(to, subject, text)`` of the mail, or None when there is nobody to tell."""

    def notify(self, context) -> None:
        settings = MetadataHook(metadata_conn_id=self.metadata_conn_id).settings
        message = self.compose(context, settings)
        if message is None:
            self.log.info("no mail address configured for %s: no mail", type(self).__name__)
            return
        self.to, self.subject, text = message
        self.html_content = f"<pre>{html.escape(text)}</pre>"
        self.log.info("mail to %s: %s", self.to, self.subject)
        super().notify(context)


def triggering_user(context) -> str | None:
    """Who triggered the run. The scheduler's callback context carries it; ``dag.test()`` builds the run's context
    without it, and there (in-process, Airflow's DB at hand) it is read from the run itself."""
    user = _attr(context.get("dag_run"), "triggering_user_name")
    if user:
        return user
    try:
        from airflow.models import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            return session.scalar(select(DagRun.triggering_user_name).where(
                DagRun.dag_id == context["dag"].dag_id, DagRun.run_id == context["run_id"]))
    except Exception:  # no DB access here (a dag-processor's child): nobody to tell
        return None


class PickEndedNotifier(EventIndexNotifier):
    """The requester's mail when a picking request ends: the outcome and the command that submits it again."""

    def compose(self, context, settings):
        dag_run = context.get("dag_run")
        to = notify.requester_address(triggering_user(context), settings.mail_domain)
        if to is None:
            return None
        run_id = context["run_id"]
        row = pick_request(MetadataHook(metadata_conn_id=self.metadata_conn_id).get_engine(), run_id) or {}
        options = {k: v for k, v in (_attr(dag_run, "conf") or row.get("params") or {}).items() if k != "events"}
        state = "success" if context.get("reason") == "success" else "failed"
        ti = context.get("ti")
        reason = f"step {ti.task_id}: {context.get('reason')} (see its log)" if ti else context.get("reason")
        subject, body = notify.pick_mail(run_id, state, row.get("summary"), options, reason)
        return to, subject, body


class SkimEndedNotifier(EventIndexNotifier):
    """The requester's mail when a skim ends: how many events went to which file and the command that makes the
    same skim again (the summary stored next to the file by this run), or the failing step's error."""

    def compose(self, context, settings):
        from eventindex.tag.skim import read_failure, read_summary

        to = notify.requester_address(triggering_user(context), settings.mail_domain)
        if to is None:
            return None
        run_id = context["run_id"]
        options = {**(context.get("params") or {}), **(_attr(context.get("dag_run"), "conf") or {})}
        output = options.get("output")
        state = "success" if context.get("reason") == "success" else "failed"
        try:
            if state == "failed":
                summary = read_failure(settings.skims_area, run_id)
            else:  # this run's summary, not another run's of the same name
                summary = read_summary(settings.skims_area, output) if isinstance(output, str) and output else None
                summary = summary if (summary or {}).get("run_id") == run_id else None
        except Exception as exc:  # a name the task refused, an unreachable store: the mail says what it can
            self.log.warning("no skim summary for %s: %s", run_id, exc)
            summary = None
        ti = context.get("ti")
        reason = f"step {ti.task_id}: {context.get('reason')} (see its log)" if ti else context.get("reason")
        subject, body = notify.skim_finished(run_id, state, summary, output, reason)
        return to, subject, body


class OperatorsNotifier(EventIndexNotifier):
    """The operators' mail when a task fails for good: ``kind`` "ingest" (a failed or stuck dataset) or
    "consistency" (findings)."""

    def __init__(self, *, kind: str = "ingest", **kwargs):
        super().__init__(**kwargs)
        if kind not in ("ingest", "consistency"):
            raise ValueError(f"kind: {kind!r} is not ingest or consistency")
        self.kind = kind

    def compose(self, context, settings):
        if not settings.operators_mail:
            return None
        reason = str(context.get("exception") or context.get("reason") or "")
        if self.kind == "consistency":
            subject, body = notify.consistency_mail(context["run_id"], reason)
        else:
            ti, params = context.get("ti"), context.get("params") or {}
            subject, body = notify.ingest_mail(context["dag"].dag_id, context["run_id"], params.get("dataset"),
                                               getattr(ti, "task_id", None), reason)
        return settings.operators_mail, subject, body

