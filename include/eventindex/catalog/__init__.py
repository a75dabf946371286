"""The event catalogue: where every event is, and what passes a selection.

``open_catalog()`` returns the backend the settings name: the embedded store (Parquet + DuckDB, the default) or
HBase through Apache Phoenix (``EVENTINDEX_PHOENIX_URL``). Both offer the same API (see ``embedded.py``).
"""

from __future__ import annotations

import os

from ..settings import Settings
from ..errors import BadSelection
from .selection import Selection, make_selection

__all__ = ["BadSelection", "Selection", "make_selection", "open_catalog"]


def open_catalog(settings: Settings | None = None, backend: str | None = None):
    settings = settings or Settings.from_env()
    backend = backend or os.environ.get("EVENTINDEX_CATALOG", "embedded")
    if backend == "embedded":
        from .embedded import EmbeddedCatalog

        return EmbeddedCatalog(settings.catalog_dir, settings.metadata_url)
    if backend == "phoenix":
        from .phoenix import PhoenixCatalog

        url = os.environ.get("EVENTINDEX_PHOENIX_URL")
        if not url:
            raise BadSelection("EVENTINDEX_CATALOG=phoenix needs EVENTINDEX_PHOENIX_URL (the Phoenix query server)")
        return PhoenixCatalog(url, settings.metadata_url)
    raise BadSelection(f"unknown catalogue backend {backend!r} (embedded or phoenix)")
