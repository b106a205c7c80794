"""``RetrainReportsPlugin``: the reports in the Airflow UI.

Registered through the ``airflow.plugins`` entry point (pyproject.toml), so installing the
project installs the plugin: nothing is copied into a plugins folder. Every Airflow component
loads plugins, so this module stays light: the FastAPI app (and Airflow's security module, a
second or more to import) is built on the first request, in the api-server only.

- ``fastapi_apps``: the reports under ``/retrain-reports/`` (``app.py``); each route
  authenticates and authorizes itself, as Airflow's plugin docs require.
- ``external_views``: the nav entry "Retraining reports" (the index), and a "Reports" tab on
  every DAG run (``runs/{DAG_ID}/{RUN_ID}``: an ingest run's batch page, a retrain run's
  training-set check and decision, a score run's manifest, a watchdog run's findings).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from retrain.report_links import PLUGIN_PREFIX, RUNS


class LazyReportsApp:
    """An ASGI app that builds the real one (``app.create_app``) on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from retrain_plugin.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "retrain_plugin.app:create_app"


_ROUTE = PLUGIN_PREFIX.strip("/")


class RetrainReportsPlugin(AirflowPlugin):
    name = "retrain_reports"
    fastapi_apps = [
        {"app": LazyReportsApp(), "url_prefix": PLUGIN_PREFIX, "name": "Retraining reports"}
    ]
    external_views = [
        {
            "name": "Retraining reports",
            "href": f"{_ROUTE}/index.html",
            "destination": "nav",
            "url_route": _ROUTE,
        },
        {
            "name": "Reports",
            "href": f"{_ROUTE}/{RUNS}/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": f"{_ROUTE}-run",
        },
    ]
