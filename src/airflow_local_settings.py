"""Airflow's start-up hook for every component (imported from ``$AIRFLOW_HOME/config`` or
PYTHONPATH): it warms the processes that fork task processes (``retrain.warm``), so a task
starts with GX, pandas and the pipeline's steps already imported. ``[resources] preload``
lists the modules; an empty list turns it off.

The local stack finds this file on PYTHONPATH (``src``); the image copies it to
``/opt/airflow/config/`` (Dockerfile).
"""

from __future__ import annotations

import sys


def _warm() -> None:
    from airflow.configuration import conf

    from retrain.warm import forks_tasks, preload

    if not forks_tasks(sys.argv, conf.get("core", "executor", fallback="")):
        return
    from retrain.config import ConfigError, load_config

    try:
        modules = load_config().resources.preload
    except ConfigError as exc:  # the DAGs report it where users look; the process still starts
        print(f"[retrain] nothing preloaded: {exc}", file=sys.stderr, flush=True)
        return
    if modules:
        print(f"[retrain] {preload(modules).summary()}", file=sys.stderr, flush=True)


_warm()
