"""The ``eventindex`` command: one module per noun (as Rucio's client), wired by ``main.py``.

Kept empty so that ``eventindex --help`` imports only what the parser needs; each command imports its use case
(and pyarrow, DuckDB, SQLAlchemy with it) when it runs.
"""
