"""The REST API's routers, one per noun: datasets (and operations), queries, picks."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def settings():
    from eventindex.settings import Settings

    return Settings.from_env()


def catalog():
    """The catalogue, opened per request (cheap: it reads the manifest; queries see the newest loads)."""
    from eventindex.catalog import open_catalog

    return open_catalog(settings())


def engine():
    from eventindex.metadata import make_engine

    return make_engine(settings().metadata_url)
