"""Hooks: each owns one external system's client, built once from an Airflow Connection (with the embedded default
when the connection is not defined, so a fresh clone runs with no configuration) and cached on the hook.

| conn id | hook | what | default |
|---|---|---|---|
| eventindex_metadata | MetadataHook | metadata DB: any SQLAlchemy URL in ``extra.url`` | $EVENTINDEX_HOME/metadata.sqlite |
| eventindex_staging | (every hook) | staging area ``extra.uri`` and work area ``extra.work_uri`` (folder or s3://...) | $EVENTINDEX_HOME/staging, /work |
| eventindex_catalog | CatalogHook | event store: ``extra.backend`` embedded or phoenix (host = query server URL) | embedded |
| eventindex_rucio | RucioHook | Rucio: host = server URL, login/password, ``extra.auth_host/account/auth_type/config``; or conn type ``local`` | the local catalogue |
| eventindex_stomp | StompHook | ActiveMQ STOMP: host, port, login, password, ``extra.queue`` | $EVENTINDEX_STOMP_URL, else none |
| eventindex_tier0, eventindex_prodsys, eventindex_conditions | UpstreamHook | an upstream database (Tier-0, production system, conditions DB): SQLAlchemy URL in ``extra.url`` | the simulated world's upstream.sqlite |
| eventindex_panda | PandaHook | PanDA: ``extra.url`` (as PANDA_URL), ``extra.site``, ``extra.auth`` (oidc), ``extra.vo``, ``extra.token_file``, ``extra.poll_seconds`` | $EVENTINDEX_PANDA_URL / $PANDA_URL |
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from eventindex.errors import ConfigurationError
from eventindex.settings import Settings, StompTarget


def _connection(conn_id: str | None):
    if not conn_id:
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


class EventIndexHook(BaseHook):
    """The settings object, with the metadata DB, staging and work areas taken from their connections when defined."""

    def __init__(self, metadata_conn_id: str | None = "eventindex_metadata",
                 staging_conn_id: str | None = "eventindex_staging", **kwargs):
        super().__init__(**kwargs)
        self.metadata_conn_id, self.staging_conn_id = metadata_conn_id, staging_conn_id

    @cached_property
    def settings(self) -> Settings:
        settings = Settings.from_env()
        meta, staging = _connection(self.metadata_conn_id), _connection(self.staging_conn_id)
        changes = {}
        if meta is not None and meta.extra_dejson.get("url"):
            changes["metadata_url"] = meta.extra_dejson["url"]
        if staging is not None and staging.extra_dejson.get("uri"):
            changes["staging"] = staging.extra_dejson["uri"]
        if staging is not None and staging.extra_dejson.get("work_uri"):
            changes["work"] = staging.extra_dejson["work_uri"]
        return replace(settings, **changes) if changes else settings


class MetadataHook(EventIndexHook):
    """The metadata DB (datasets, reports, announcements, picking requests). Never migrates it (a task, a sensor's
    poke must not): `eventindex db upgrade` does, and a DB behind the code fails the task with that advice."""

    def get_engine(self):
        return self._engine

    @cached_property
    def _engine(self):
        from eventindex.metadata import make_engine

        return make_engine(self.settings.metadata_url)


class CatalogHook(EventIndexHook):
    def __init__(self, catalog_conn_id: str | None = "eventindex_catalog", **kwargs):
        super().__init__(**kwargs)
        self.catalog_conn_id = catalog_conn_id

    def get_catalog(self):
        return self._catalog

    @cached_property
    def _catalog(self):
        from eventindex.catalog import open_catalog

        conn = _connection(self.catalog_conn_id)
        settings = self.settings
        backend = (conn.extra_dejson.get("backend") if conn else None) or settings.catalog_backend
        if backend == "phoenix" and conn is not None and conn.host:
            settings = replace(settings, phoenix_url=conn.host)
        return open_catalog(settings, backend)


class RucioHook(EventIndexHook):
    def __init__(self, rucio_conn_id: str | None = "eventindex_rucio", **kwargs):
        super().__init__(**kwargs)
        self.rucio_conn_id = rucio_conn_id

    def get_client(self):
        return self._client

    @cached_property
    def _client(self):
        from eventindex.ddm import LocalRucio, RealRucio

        conn = _connection(self.rucio_conn_id)
        if conn is None or conn.conn_type == "local":
            return LocalRucio(self.settings.local_rucio_url)
        extra = conn.extra_dejson
        return RealRucio(config=extra.get("config"), rucio_host=conn.host, auth_host=extra.get("auth_host", conn.host),
                         account=extra.get("account", conn.login), auth_type=extra.get("auth_type", "userpass"),
                         creds={"username": conn.login, "password": conn.password})


class StompHook(EventIndexHook):
    def __init__(self, stomp_conn_id: str | None = "eventindex_stomp", **kwargs):
        super().__init__(**kwargs)
        self.stomp_conn_id = stomp_conn_id

    def get_target(self) -> StompTarget | None:
        conn = _connection(self.stomp_conn_id)
        if conn is None:
            return self.settings.stomp
        return StompTarget(conn.host or "127.0.0.1", int(conn.port or 61613),
                           conn.extra_dejson.get("queue", "/queue/eventindex.producer"), conn.login, conn.password)


class UpstreamHook(EventIndexHook):
    """An upstream database (the Tier-0 table, the production system's tasks, the conditions DB)."""

    def __init__(self, upstream_conn_id: str, **kwargs):
        super().__init__(**kwargs)
        self.upstream_conn_id = upstream_conn_id

    def get_url(self) -> str:
        conn = _connection(self.upstream_conn_id)
        if conn is not None and conn.extra_dejson.get("url"):
            return conn.extra_dejson["url"]
        return f"sqlite:///{self.settings.world_dir / 'upstream.sqlite'}"


class PandaHook(EventIndexHook):
    """Where extraction jobs go when a picking request asks for the PanDA backend."""

    def __init__(self, panda_conn_id: str | None = "eventindex_panda", **kwargs):
        super().__init__(**kwargs)
        self.panda_conn_id = panda_conn_id

    def get_config(self):
        return self._config(_connection(self.panda_conn_id))

    async def aget_config(self):
        """The same from the triggerer's event loop."""
        try:
            conn = await self.aget_connection(self.panda_conn_id) if self.panda_conn_id else None
        except AirflowNotFoundException:
            conn = None
        return self._config(conn)

    def get_jobs(self):
        return self._jobs

    @cached_property
    def _jobs(self):
        from eventindex.panda import PandaJobs

        return PandaJobs(self.get_config())

    def _config(self, conn):
        from eventindex.panda import PandaConfig

        if conn is None:
            cfg = PandaConfig.from_settings(self.settings)
            if cfg is None:
                raise ConfigurationError(f"backend panda, but no PanDA server is configured: define the connection "
                                         f"{self.panda_conn_id} or $EVENTINDEX_PANDA_URL")
            return cfg
        extra = conn.extra_dejson
        return PandaConfig(extra.get("url") or conn.host, extra.get("site", "ANALY_LOCAL"), extra.get("auth"),
                           extra.get("vo"), float(extra.get("poll_seconds", 30)), extra.get("token_file"))
