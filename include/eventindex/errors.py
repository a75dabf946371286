"""Every exception the ``eventindex`` package raises, in one small hierarchy (as uproot keeps its own in one module).

Callers catch by kind, never by matching message text:

- :class:`BadInput`: the caller gave something that can never work (a malformed name, a corrupt file, an unknown
  trigger, a bad picking request). Retrying changes nothing; the message names what is wrong.
- :class:`NotFound`: a definite "does not exist" answer (a dataset, a data identifier in Rucio, a world folder).
- :class:`ValidationFailed`: data that does not agree with itself, its announcement or Rucio; carries the problems.
- :class:`ConfigurationError`: the system is not set up for what was asked (no PanDA server, no Phoenix URL).
- :class:`TransientError`: a service could not be reached or answered with an error; trying again later may work.

Every message is fit to show to a user as is: the CLI prints it and exits non-zero, the Airflow layer fails the task
without retries for the first four kinds and retries the last.
"""

from __future__ import annotations

from dataclasses import dataclass


class EventIndexError(Exception):
    """Base of every error whose message is fit to show to a user as is."""


class BadInput(EventIndexError, ValueError):
    """Input that can never be processed; nothing was changed."""


class NotFound(EventIndexError, LookupError):
    """A definite answer that something does not exist (not a transient fault)."""


class ConfigurationError(EventIndexError):
    """The system is not configured for what was asked; the message says what to set."""


class TransientError(EventIndexError):
    """A service could not be reached or refused a call for now: the caller retries."""


class SchemaOutOfDate(ConfigurationError):
    """The metadata DB is missing or its schema is not the one this code needs: only ``eventindex db upgrade``
    migrates (opening a DB never does: reads never write)."""


# --- bad input ---------------------------------------------------------------------------------------------------


class MalformedDatasetName(BadInput):
    """A dataset name does not follow the ATLAS nomenclature."""


class UnknownTrigger(BadInput, KeyError):
    """A trigger item or chain name is not in the menu."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BadSelection(BadInput):
    """A selection (or one of its values) that no catalogue can answer."""


class MenuMissing(BadSelection):
    """A trigger selection reads datasets whose trigger menu (SMK) the catalogue does not hold yet: counting would
    answer 0 for want of the menu. The message names the datasets and SMKs; syncing the conditions fixes it."""


class NoTriggerInformation(BadSelection):
    """A trigger selection reads datasets whose events carry no trigger decisions (e.g. real xAOD files)."""


class BadLoad(BadInput):
    """Records that cannot be loaded as the dataset named; nothing was changed."""


class ProducerError(BadInput):
    """A producer job refused its input; nothing was written or announced."""


class PoisonMessage(BadInput):
    """A message that can never be processed; it goes to the dead-letter queue."""


class BadRequest(BadInput):
    """A picking request that cannot be run; the message names the offending line or parameter."""


# --- not found ---------------------------------------------------------------------------------------------------


class DatasetNotFound(NotFound, BadSelection):
    """The dataset is not in the catalogue (a selection naming it can never be answered)."""


class DIDNotFound(NotFound):
    """The data identifier (or its scope) does not exist in Rucio: a definite answer."""


# --- validation --------------------------------------------------------------------------------------------------


@dataclass
class Problem:
    """One validation finding: the dataset, the file (GUID or LFN) if one is to blame, and what is wrong."""

    dataset: str
    file: str | None
    what: str


class ValidationFailed(EventIndexError):
    """The dataset's index does not agree with itself, its announcement or Rucio; nothing was loaded."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "; ".join(f"{p.file or '-'}: {p.what}" for p in problems[:10])
        more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{problems[0].dataset}: {len(problems)} validation problem(s): {lines}{more}")


class VerificationFailed(ValidationFailed):
    """A picking output does not hold every found event exactly once."""

    def __init__(self, message: str):
        self.problems = [Problem("", None, message)]
        EventIndexError.__init__(self, message)


# --- transient ---------------------------------------------------------------------------------------------------


class AnnounceError(TransientError):
    """The broker could not be reached or did not confirm a message."""


class DDMError(TransientError):
    """Rucio (or the local data catalogue) cannot answer now."""


class PandaError(TransientError):
    """PanDA could not be reached or refused a call."""


class DatabaseBusy(TransientError):
    """A database is locked by another process or cannot be reached now (SQLite's "database is locked", a PostgreSQL
    server down); the message names the DB."""


class NoSpace(TransientError):
    """A disk or quota filled up while writing (ENOSPC, EDQUOT); what was being written was removed and nothing
    changed. Transient, not bad input: the data are fine and the same call works once an operator frees space, so
    the CLI exits 75 and Airflow retries with back-off (a disk freed within the retries heals the run by itself)."""


class AirflowAPIError(TransientError):
    """Airflow's REST API could not be reached or refused a call."""
