"""The Airflow plugin that serves the deployment's reports through the api-server, behind
Airflow's own login (``plugin.py`` registers it through the ``airflow.plugins`` entry point;
``app.py`` is the FastAPI app). Airflow imports are here, never in ``retrain``."""
