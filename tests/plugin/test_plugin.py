"""The reports plugin as Airflow loads it: through the entry point, light to import."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

from retrain.report_links import PLUGIN_PREFIX


def test_the_plugin_is_registered_by_the_installed_project():
    (found,) = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "retrain_reports"]
    assert found.value == "retrain_plugin.plugin:RetrainReportsPlugin"


def test_airflow_loads_it_with_a_nav_entry_and_a_view_per_dag_run():
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    (app,) = [a for a in apps if a["url_prefix"] == PLUGIN_PREFIX]
    assert app["name"] == "Retraining reports"
    external_views, _ = plugins_manager._get_ui_plugins()
    views = {v["destination"]: v for v in external_views if v["href"].startswith("retrain-")}
    assert views["nav"]["name"] == "Retraining reports"
    assert views["nav"]["href"] == "retrain-reports/index.html"  # relative: base_url prefixes
    assert views["dag_run"]["href"] == "retrain-reports/runs/{DAG_ID}/{RUN_ID}"
    assert views["nav"]["url_route"] != views["dag_run"]["url_route"]


def test_importing_the_plugin_leaves_the_app_and_airflow_security_for_the_api_server():
    """Every Airflow component loads plugins: the FastAPI app (and Airflow's security module,
    a second to import) is built on the first request, in the api-server."""
    code = (
        "import sys, retrain_plugin.plugin as p; "
        "print('airflow.api_fastapi.core_api.security' in sys.modules, "
        "'retrain_plugin.app' in sys.modules, 'boto3' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False", "False"], done.stdout + done.stderr
