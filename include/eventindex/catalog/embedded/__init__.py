"""The embedded event store: one sorted Parquet file per dataset version, a memory-mapped key file for lookups and
cuts, a trigger index, and a manifest in the metadata DB; queried with numpy (lookups, selections) and DuckDB
(stream overlaps).

Layout under the catalogue folder::

    data/dataset=<name>/<load_id>.parquet      all index records of the dataset, sorted by (run, event)
    data/dataset=<name>/<load_id>.keys.arrow   uncompressed Arrow IPC: event, lumi block, BCID, trigger pattern
                                               and references, same order (runs once each); memory-mapped, so a
                                               lookup is two binary searches
    data/dataset=<name>/<load_id>.triggers.arrow  the distinct trigger patterns as bitmaps per trigger bit
    GENERATION                                 replaced after every commit; readers stat it to see changes

A load writes its files under new names, then switches the manifest row in one transaction: a crash before the
commit leaves the previous version fully visible (the orphan files are removed by ``gc``, as are replaced versions
some time after their replacement), and a reload replaces the dataset as a whole. Different datasets load concurrently from different processes.

Modules: ``store`` (the catalogue class), ``keys`` (the key file and lookups in it), ``patterns`` (the trigger
index), ``events`` (event-level cuts, counts and gathers), ``files`` (atomic writes), ``garbage`` (what ``gc`` may
remove).
"""

from ...errors import BadLoad
from ..records import LoadResult
from .store import EmbeddedCatalog

__all__ = ["BadLoad", "EmbeddedCatalog", "LoadResult"]  # BadLoad and LoadResult: where callers long found them
