"""Registers :mod:`eventindex_airflow.listeners` (a finished picking run gets its outcome as its note)."""

from airflow.plugins_manager import AirflowPlugin

from eventindex_airflow import listeners


class EventIndexListenersPlugin(AirflowPlugin):
    name = "eventindex_listeners"
    listeners = [listeners]
