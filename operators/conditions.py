"""The conditions operators: copy new trigger menus and run periods from the conditions DB (COMA) into the metadata
DB (``eventindex.conditions.sync``), and announce a change to the DAGs that wait for one."""

from __future__ import annotations

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from eventindex import conditions
from eventindex.errors import BadInput, ConfigurationError, NotFound

from .failures import fail_fast_on_bad_input
from .hooks import CatalogHook, UpstreamHook


class ConditionsSyncOperator(BaseOperator):
    """Saves the menus and periods the metadata DB lacks; returns what changed (``SyncResult.to_json``). Idempotent:
    a rerun finds nothing new. A source that cannot be read now fails for a retry; a missing or malformed one fails
    without retries, except the default source of a world not simulated yet (nothing to sync: skipped)."""

    template_fields = ("conditions_conn_id", "catalog_conn_id", "files")

    def __init__(self, *, conditions_conn_id: str = "eventindex_conditions",
                 catalog_conn_id: str = "eventindex_catalog", files: list[str] | str = (), **kwargs):
        super().__init__(**kwargs)
        self.conditions_conn_id, self.catalog_conn_id, self.files = conditions_conn_id, catalog_conn_id, files

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        source = UpstreamHook(self.conditions_conn_id)
        url = source.get_url()
        try:
            result = conditions.sync(url, CatalogHook(self.catalog_conn_id).get_catalog(), files=self.files or ())
        except NotFound as exc:
            if url == conditions.world_source(source.settings.world_dir):
                raise AirflowSkipException(f"nothing to sync: {exc}") from None
            raise AirflowFailException(str(exc)) from None
        except (BadInput, ConfigurationError) as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("conditions source: %d menus, %d periods; new menus %s, new periods %s, changed periods %s",
                      result.source_menus, result.source_periods, result.menus_added or "none",
                      result.periods_added or "none", result.periods_updated or "none")
        return result.to_json()


class ConditionsChangedOperator(BaseOperator):
    """Succeeds (emitting the task's outlets) only when the sync changed something; skipped otherwise, so the
    Asset ``eventindex://conditions`` is updated on change only."""

    template_fields = ("result",)

    def __init__(self, *, result, **kwargs):
        super().__init__(**kwargs)
        self.result = result

    @fail_fast_on_bad_input
    def execute(self, context) -> dict:
        if not (self.result or {}).get("changed"):
            raise AirflowSkipException("the conditions did not change")
        return self.result
