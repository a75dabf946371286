"""EventIndex: an event catalogue for particle-physics experiments.

The domain core: dataset nomenclature, the index record schema, trigger menus, the mini-ATLAS simulator,
the producer, and (later) the catalogue and its queries. Nothing in this package imports Airflow.
"""

__version__ = "0.1.0"
