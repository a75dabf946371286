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
