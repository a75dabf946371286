"""Airflow glue for EventIndex (importable as ``eventindex_airflow``): hooks, operators, sensors and triggers.

Each piece is thin and calls into ``eventindex``; the ingestion and picking issues fill this package.
"""
