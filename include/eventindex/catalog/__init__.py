"""The event catalogue: where every event is, and what passes a selection.

``open_catalog()`` returns the backend the settings name: the embedded store (Parquet + DuckDB, the default) or
HBase through Apache Phoenix (``EVENTINDEX_CATALOG=phoenix`` with ``EVENTINDEX_PHOENIX_URL``). Both offer the same
API, the ``Catalog`` protocol of ``base.py``.
"""

from __future__ import annotations

from ..errors import BadSelection, ConfigurationError
from ..settings import Settings
from .base import Catalog
from .selection import Selection, make_selection

__all__ = ["BadSelection", "Catalog", "Selection", "make_selection", "open_catalog"]


def open_catalog(settings: Settings | None = None, backend: str | None = None) -> Catalog:
    """The catalogue ``backend`` names (default: the settings' ``catalog_backend``), configured from ``settings``.

    A backend that cannot be opened as configured raises ConfigurationError, whose message says what to set.
    """
    settings = settings or Settings.from_env()
    backend = backend or settings.catalog_backend
    if backend == "embedded":
        from .embedded import EmbeddedCatalog

        return EmbeddedCatalog(settings.catalog_dir, settings.metadata_url)
    if backend == "phoenix":
        if not settings.phoenix_url:
            raise ConfigurationError("the phoenix catalogue backend needs EVENTINDEX_PHOENIX_URL (the Phoenix query "
                                     "server, e.g. http://host:8765/)")
        from .phoenix import PhoenixCatalog

        return PhoenixCatalog(settings.phoenix_url, settings.metadata_url, auth=settings.phoenix_auth,
                              user=settings.phoenix_user, password=settings.phoenix_password, ca=settings.phoenix_ca)
    raise ConfigurationError(f"unknown catalogue backend {backend!r}: EVENTINDEX_CATALOG is embedded or phoenix")
