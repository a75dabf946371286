"""The EventIndex web app inside Airflow: its FastAPI app at /eventindex (REST API + pages) and the pages linked
into Airflow's navigation under "EventIndex" (shown inside the UI at /plugin/eventindex-<page>)."""

from airflow.plugins_manager import AirflowPlugin

from eventindex_web.app import PAGES, TITLES, app


class EventIndexWebPlugin(AirflowPlugin):
    name = "eventindex_web"
    fastapi_apps = [{"app": app, "url_prefix": "/eventindex", "name": "EventIndex"}]
    external_views = [{"name": TITLES[page], "href": f"/eventindex/ui/{page}", "destination": "nav",
                       "category": "EventIndex", "url_route": f"eventindex-{page}"} for page in PAGES]
