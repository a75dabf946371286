"""What a notification says and to whom: the end of a picking request or of a skim (to its requester), a failed or
stuck ingestion and consistency findings (to the operators). Pure functions over plain values; the Airflow layer sends
the text (the SMTP provider's notifier) and puts the summary in the run's note.

Who gets a request's mail: the Airflow user who triggered the run, as ``<user>@<EVENTINDEX_MAIL_DOMAIN>`` (a user
name that is already an address is used as it is). No domain, or no user: no mail. The operators' address is
``EVENTINDEX_OPERATORS_MAIL``; unset: no mail.
"""

from __future__ import annotations

import re
import shlex

from .picking.request import DEFAULTS

# request parameter -> the flag of `eventindex pick` (include/eventindex/cli/pick.py)
PICK_FLAGS = {"datatype": "--type", "project": "--project", "stream": "--stream", "version": "--version",
              "output": "--out", "max_events": "--max", "backend": "--backend", "files_per_job": "--files-per-job",
              "job_timeout_minutes": "--job-timeout"}
ADDRESS_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$|^[A-Za-z0-9._%+-]+@localhost$")
USER_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_ERROR = 500


def requester_address(user: str | None, domain: str | None) -> str | None:
    """The mail address of the Airflow user who submitted a request, or None (no rule configured, no user)."""
    if not user:
        return None
    if "@" in user:
        return user if ADDRESS_RE.fullmatch(user) else None
    if not domain or not USER_RE.fullmatch(user):
        return None
    return f"{user}@{domain.lstrip('@')}"


def reproduce_command(options: dict, events_file: str = "FILE") -> str:
    """The `eventindex pick` command that submits the same request again (the events from ``events_file``). Only
    what differs from the defaults is spelled, except the data type, which the CLI requires."""
    words = ["eventindex", "pick", "--events", events_file]
    for name, flag in PICK_FLAGS.items():
        value = options.get(name)
        if value in (None, "") or (name != "datatype" and value == DEFAULTS.get(name)):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        words += [flag, str(value)]
    return shlex.join(words)


def _short(text: str | None) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR - 3] + "..."


def pick_outcome(state: str, summary: dict | None, reason: str | None = None) -> list[str]:
    """A request's outcome in a few lines: found/missing, output dataset, where its files are, or the error."""
    summary = summary or {}
    if state == "success" and "found" in summary:
        nfiles = len(summary.get("files") or [])
        lines = [f"found {summary['found']:,}, missing {summary['missing']:,}",
                 f"output dataset: {summary.get('output_dataset')}"]
        if summary.get("output_uri"):
            lines.append(f"{nfiles} file{'' if nfiles == 1 else 's'} in {summary['output_uri']}")
        if summary.get("rerun"):
            lines.append(f"already done by {summary.get('request_id')}: nothing changed")
        return lines
    if state == "success":
        return ["done"]
    return [f"failed: {_short(summary.get('error') or reason or 'no reason recorded')}"]


def pick_note(state: str, summary: dict | None, reason: str | None = None) -> str:
    """The DAG run's note (markdown): the outcome of the request."""
    lines = pick_outcome(state, summary, reason)
    word = "done" if state == "success" else "failed"
    return "\n".join([f"**{word}** {lines[0].removeprefix('failed: ')}", *(f"- {x}" for x in lines[1:])])


def pick_mail(request_id: str, state: str, summary: dict | None, options: dict, reason: str | None = None,
              url: str | None = None) -> tuple[str, str]:
    """Subject and body (plain text) of the mail a requester gets when the request ends."""
    word = "done" if state == "success" else "failed"
    body = [f"Your event-picking request {request_id} {'is done' if state == 'success' else 'failed'}.", "", *pick_outcome(state, summary, reason), "",
            "To submit the same request again (FILE: your file of 'run event' pairs):",
            f"  {reproduce_command(options)}"]
    if url:
        body += ["", f"The run: {url}"]
    return f"[EventIndex] picking request {request_id} {word}", "\n".join(body)


def skim_finished(run_id: str, state: str, summary: dict | None, output: str | None = None,
                  reason: str | None = None, url: str | None = None) -> tuple[str, str]:
    """Subject and body of the mail a requester gets when a skim (a run of ``eventindex_skim``) ends: how many
    events went to which file, and the command that makes the same skim again; or the error."""
    summary = summary or {}
    done = state == "success" and "events" in summary
    word = "done" if state == "success" else "failed"
    body = [f"Your skim {run_id} {'is done' if state == 'success' else 'failed'}.", ""]
    if done:
        body += [f"{summary['events']:,} events written to {summary.get('output')} "
                 f"({summary.get('bytes', 0):,} bytes)",
                 f"attributes: {', '.join(summary.get('attributes') or [])}",
                 f"references: {', '.join(summary.get('formats') or [])}", "",
                 "To make the same skim again:", f"  {summary.get('command')}"]
    elif state == "success":
        body += ["done"]
    else:
        body += [f"output: {output or '-'}",
                 f"failed: {_short(summary.get('error') or reason or 'no reason recorded')}"]
    if url:
        body += ["", f"The run: {url}"]
    return f"[EventIndex] skim {run_id} {word}", "\n".join(body)


def ingest_mail(dag_id: str, run_id: str, dataset: str | None, task_id: str | None, reason: str | None,
                url: str | None = None) -> tuple[str, str]:
    """Subject and body of the operators' mail for a failed (or stuck) ingestion run."""
    stuck = "stuck" in (reason or "")
    what = "stuck" if stuck else "failed"
    body = [f"The ingestion run {run_id} of {dag_id} {what}.", "", f"dataset: {dataset or '-'}",
            f"step: {task_id or '-'}", f"reason: {_short(reason) or '-'}"]
    if url:
        body += ["", f"The run: {url}"]
    return f"[EventIndex] ingestion of {dataset or run_id} {what}", "\n".join(body)


def consistency_mail(run_id: str, reason: str | None, url: str | None = None) -> tuple[str, str]:
    """Subject and body of the operators' mail when the consistency check finds something (or cannot run)."""
    found = "inconsistencies" in (reason or "")
    body = [f"The consistency check {run_id} {'found inconsistencies' if found else 'failed'}.", "",
            _short(reason) or "-", "", "The findings are in the metadata DB's consistency reports and the task log."]
    if url:
        body += ["", f"The run: {url}"]
    return f"[EventIndex] consistency {'findings' if found else 'check failed'}", "\n".join(body)


def ingest_note(dataset: object, progress_row: dict | None = None) -> str | None:
    """A failed ingestion run's note (markdown, one line): why it failed, where the user who triggered it looks.

    A malformed name: the rule of the nomenclature it breaks (``naming.parse``'s message). The DAG's form takes any
    text (a JSON-schema pattern could only answer with the whole regular expression), so the first task is where the
    name is checked, and this note is what says why. Otherwise the dataset's own account (``dataset_progress``: stuck,
    unknown to Rucio, a malformed summary) when it has one; None when nothing beyond the failed task is known."""
    from .errors import MalformedDatasetName
    from .naming import parse

    try:
        parse(dataset if isinstance(dataset, str) else "")
    except MalformedDatasetName as exc:
        return f"**refused** {exc}"
    detail = (progress_row or {}).get("detail")
    if (progress_row or {}).get("state") in ("failed", "stuck") and detail:
        return f"**{progress_row['state']}** {' '.join(str(detail).split())[:MAX_ERROR]}"
    return None
