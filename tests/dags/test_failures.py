"""The Airflow layer's one rule for errors (operators/failures.py): bad input fails at once (AirflowFailException:
no retries, whatever the DAG allows), transient faults and unexpected errors keep Airflow's retries; and every
operator of the project follows it."""

from __future__ import annotations

import pytest
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from eventindex.errors import BadSelection, DDMError, SchemaOutOfDate
from eventindex_airflow.failures import fail_fast_on_bad_input


class _Raises(BaseOperator):
    def __init__(self, *, error: Exception, **kwargs):
        super().__init__(**kwargs)
        self.error = error

    @fail_fast_on_bad_input
    def execute(self, context):
        raise self.error


@pytest.mark.parametrize("error, kind", [(BadSelection("run 4294967296 is out of range"), AirflowFailException),
                                         (SchemaOutOfDate("run `eventindex db upgrade`"), AirflowFailException),
                                         (DDMError("Rucio did not answer"), DDMError),
                                         (KeyError("a bug"), KeyError)])
def test_eventindex_errors_fail_fast_and_transient_ones_stay_retryable(error, kind):
    with pytest.raises(kind) as exc:
        _Raises(task_id="t", error=error).execute({})
    assert str(exc.value) == str(error)


def test_every_task_of_the_project_follows_the_rule():
    """Each operator's execute (and a sensor's poke, a deferred task's execute_complete) is wrapped: a new operator
    that forgets it would retry bad input four times over minutes."""
    import inspect
    import pkgutil

    import eventindex_airflow

    unwrapped = []
    for info in pkgutil.iter_modules(eventindex_airflow.__path__):
        module = __import__(f"eventindex_airflow.{info.name}", fromlist=["*"])
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, BaseOperator) or cls.__module__ != module.__name__:
                continue
            for method in ("execute", "poke", "execute_complete"):
                fn = cls.__dict__.get(method)
                if fn is None:
                    continue
                chain = [fn]
                while hasattr(chain[-1], "__wrapped__"):
                    chain.append(chain[-1].__wrapped__)
                if not any(getattr(f, "fails_fast_on_bad_input", False) for f in chain):
                    unwrapped.append(f"{module.__name__}.{name}.{method}")
    assert unwrapped == []
