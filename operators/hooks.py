"""Hooks: each owns one external system's client, built from an Airflow Connection, with the embedded default
when the connection is not defined (so a fresh clone runs with no configuration).

| conn id | what | default |
|---|---|---|
| eventindex_staging | staging area: ``extra.uri`` (folder or s3://...) | $EVENTINDEX_HOME/staging |
| eventindex_stomp | ActiveMQ STOMP: host, port, login, password, ``extra.queue`` | none (no messages) |
| eventindex_rucio | Rucio: ``conn_type`` rucio with host = server URL, login/password; or ``local`` | the local catalogue |
| eventindex_catalog | event store: ``extra.backend`` embedded or phoenix (host = query server) | embedded |
| eventindex_metadata | metadata DB: any SQLAlchemy URL in ``extra.url`` | $EVENTINDEX_HOME/metadata.sqlite |
| eventindex_panda | PanDA (picking backend): ``extra.url`` = server URL (as PANDA_URL), ``extra.site``, ``extra.auth`` (oidc), ``extra.vo``, ``extra.token_file``, ``extra.poll_seconds`` | $EVENTINDEX_PANDA_URL / $PANDA_URL |
"""

from __future__ import annotations

import os

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from eventindex.settings import Settings, StompTarget


def _connection(conn_id: str):
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


class EventIndexSettingsHook(BaseHook):
    """The settings object, with the metadata DB and staging area taken from their connections when defined."""

    def __init__(self, metadata_conn_id: str = "eventindex_metadata", staging_conn_id: str = "eventindex_staging"):
        super().__init__()
        self.metadata_conn_id, self.staging_conn_id = metadata_conn_id, staging_conn_id

    def get_settings(self) -> Settings:
        settings = Settings.from_env()
        meta, staging = _connection(self.metadata_conn_id), _connection(self.staging_conn_id)
        changes = {}
        if meta is not None and meta.extra_dejson.get("url"):
            changes["metadata_url"] = meta.extra_dejson["url"]
        if staging is not None and staging.extra_dejson.get("uri"):
            changes["staging"] = staging.extra_dejson["uri"]
        if changes:
            from dataclasses import replace

            settings = replace(settings, **changes)
        return settings


class CatalogHook(EventIndexSettingsHook):
    def __init__(self, catalog_conn_id: str = "eventindex_catalog", **kwargs):
        super().__init__(**kwargs)
        self.catalog_conn_id = catalog_conn_id

    def get_catalog(self):
        from eventindex.catalog import open_catalog

        conn = _connection(self.catalog_conn_id)
        backend = (conn.extra_dejson.get("backend") if conn else None) or "embedded"
        if backend == "phoenix" and conn is not None:
            os.environ.setdefault("EVENTINDEX_PHOENIX_URL", conn.host)
        return open_catalog(self.get_settings(), backend)


class RucioHook(EventIndexSettingsHook):
    def __init__(self, rucio_conn_id: str = "eventindex_rucio", **kwargs):
        super().__init__(**kwargs)
        self.rucio_conn_id = rucio_conn_id

    def get_client(self):
        from eventindex.ddm import LocalRucio, RealRucio

        conn = _connection(self.rucio_conn_id)
        if conn is None or conn.conn_type == "local":
            return LocalRucio(f"sqlite:///{self.get_settings().home / 'rucio.sqlite'}")
        extra = conn.extra_dejson
        if extra.get("config"):  # a rucio.cfg for what the connection does not say (CA, token cache, ...)
            os.environ["RUCIO_CONFIG"] = extra["config"]
        return RealRucio(rucio_host=conn.host, auth_host=extra.get("auth_host", conn.host),
                         account=extra.get("account", conn.login), auth_type=extra.get("auth_type", "userpass"),
                         creds={"username": conn.login, "password": conn.password})


class StompHook(BaseHook):
    def __init__(self, stomp_conn_id: str = "eventindex_stomp"):
        super().__init__()
        self.stomp_conn_id = stomp_conn_id

    def get_target(self) -> StompTarget | None:
        conn = _connection(self.stomp_conn_id)
        if conn is None:
            url = Settings.from_env().stomp_url
            return Settings.from_env().stomp if url else None
        return StompTarget(conn.host or "127.0.0.1", int(conn.port or 61613),
                           conn.extra_dejson.get("queue", "/queue/eventindex.producer"), conn.login, conn.password)


def upstream_url(conn_id: str) -> str:
    """An upstream database (Tier-0 table, production system) from ``extra.url``; default: the simulated world's."""
    conn = _connection(conn_id)
    if conn is not None and conn.extra_dejson.get("url"):
        return conn.extra_dejson["url"]
    return f"sqlite:///{EventIndexSettingsHook().get_settings().world_dir / 'upstream.sqlite'}"


class PandaHook(BaseHook):
    """Where extraction jobs go when a picking request asks for the PanDA backend."""

    def __init__(self, panda_conn_id: str = "eventindex_panda"):
        super().__init__()
        self.panda_conn_id = panda_conn_id

    def get_config(self):
        from eventindex.panda import PandaConfig

        conn = _connection(self.panda_conn_id)
        if conn is None:
            cfg = PandaConfig.from_env()
            if cfg is None:
                raise ValueError(f"backend panda, but no PanDA server is configured: define the connection "
                                 f"{self.panda_conn_id} or $EVENTINDEX_PANDA_URL")
            return cfg
        extra = conn.extra_dejson
        return PandaConfig(extra.get("url") or conn.host, extra.get("site", "ANALY_LOCAL"), extra.get("auth"),
                           extra.get("vo"), float(extra.get("poll_seconds", 30)), extra.get("token_file"))
