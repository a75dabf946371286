"""The EventIndex web app: a FastAPI app served by Airflow's api-server as a plugin (``plugins/eventindex_web_plugin.py``),
with the catalogue's REST API and the operators' and analysts' pages. Routes and answers: ``API.md``.

It calls the use cases of :mod:`eventindex` (the CLI calls the same ones, so both answer alike) and asks Airflow's
auth manager who the caller is and what they may do."""
