"""One rule for every EventIndex task: what an error says about trying again.

``eventindex`` raises its own hierarchy (``eventindex.errors``). A ``TransientError`` (a service down, a DB locked) is
re-raised as is, so Airflow retries the task with the back-off its DAG declares. Every other ``EventIndexError``
(bad input, not found, validation, configuration, a schema behind the code) can never work by waiting: it becomes
``AirflowFailException``, which fails the task at once without retries, with the error's one line as its message.
Anything else (a bug, an unexpected library error) keeps Airflow's default: retried, then failed with its traceback
in the task log, where a developer looks.
"""

from __future__ import annotations

import functools

from airflow.sdk.exceptions import AirflowFailException

from eventindex.errors import EventIndexError, TransientError


def fail_fast_on_bad_input(method):
    """Decorates an operator's ``execute`` (or a sensor's ``poke``) with the rule above."""

    @functools.wraps(method)
    def classified(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except TransientError:
            raise
        except EventIndexError as exc:
            raise AirflowFailException(str(exc)) from None

    classified.fails_fast_on_bad_input = True  # for the test that every task follows the rule
    return classified
