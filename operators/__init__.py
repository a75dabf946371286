"""Airflow glue for EventIndex (importable as ``eventindex_airflow``), written the way Airflow's providers are:
:mod:`.hooks` (one per external system, built from a Connection, client cached), one module of operators per DAG
(:mod:`.ingest`, :mod:`.stomp`, :mod:`.tier0`, :mod:`.campaign`, :mod:`.consistency`, :mod:`.pick`,
:mod:`.conditions`),
:mod:`.triggers` (deferrable waits), :mod:`.notify` (mail through the SMTP provider's notifier), :mod:`.listeners`
(a picking run's note, set in the scheduler), and :mod:`.demo` (``make demo``: the DAGs run by ``dag.test()``).

Each operator is thin: it takes its inputs as templated constructor arguments and connection ids, and calls one
step of a use case in ``eventindex``.
"""
