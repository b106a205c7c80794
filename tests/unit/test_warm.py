"""retrain.warm: which Airflow processes preload, and what a preload reports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from retrain.warm import forks_tasks, preload


@pytest.mark.parametrize(
    ("argv", "executor", "expected"),
    [
        (["airflow", "scheduler", "--skip-serve-logs"], "LocalExecutor", True),
        (["airflow", "scheduler"], "CeleryExecutor,LocalExecutor", True),
        (["airflow", "scheduler"], "airflow.executors.local_executor.LocalExecutor", True),
        (["airflow", "scheduler"], "CeleryExecutor", False),  # Celery workers fork the tasks
        (["airflow", "scheduler"], "KubernetesExecutor", False),  # a pod per task
        (["airflow", "celery", "worker", "--queues", "default,heavy"], "CeleryExecutor", True),
        (["airflow", "celery", "flower"], "CeleryExecutor", False),
        (["airflow", "triggerer"], "LocalExecutor", False),
        (["airflow", "dag-processor"], "LocalExecutor", False),
        (["airflow", "api-server"], "LocalExecutor", False),
        (["python", "-m", "pytest"], "LocalExecutor", False),
    ],
)
def test_only_the_processes_that_fork_tasks_preload(argv, executor, expected):
    assert forks_tasks(argv, executor) is expected


def test_preload_imports_and_reports_what_failed():
    # A fresh interpreter, so that "imported" means imported by preload.
    code = (
        "import sys; from retrain.warm import preload; "
        "r = preload(['json', 'no_such_module_xyz']); "
        "print('json' in sys.modules, r.modules, r.failed[0][0], r.seconds >= 0); "
        "print(r.summary())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "True ('json',) no_such_module_xyz True"
    assert out[1].startswith("preloaded 1 module(s) in ")
    assert "not preloaded: no_such_module_xyz (ModuleNotFoundError" in out[1]


def test_an_empty_preload_imports_nothing():
    result = preload([])
    assert (result.modules, result.failed) == ((), ())
