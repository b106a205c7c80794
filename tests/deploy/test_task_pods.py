"""KubernetesExecutor sizes each task's pod from [resources]: the chart's pod template gives
every pod a light task's memory (values-kubernetes.yaml), and the DAGs give each task an
executor_config pod_override (dags/_shared/common.py), heavy tasks task_memory_mb +
[training] memory_budget_mb. Checked on the real DAGs, parsed under each executor in a
subprocess (the figures are fixed when dags/_shared/common.py is imported), with the kubernetes
client's real V1Pod, and through Airflow's DAG serialization (what the dag-processor stores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import ModuleType
from typing import Any

import deploy_static
import pytest

from retrain.config import Config

DAGS_FOLDER = deploy_static.PROJECT_ROOT / "dags"


def _common() -> ModuleType:
    """dags/_shared/common.py, imported as the DAG files import it."""
    sys.path.insert(0, str(DAGS_FOLDER))
    try:
        from _shared import common
    finally:
        sys.path.remove(str(DAGS_FOLDER))
    return common


pod_resources = _common().pod_resources
uses_kubernetes_executor = _common().uses_kubernetes_executor

KUBERNETES_EXECUTOR_PATH = (
    "airflow.providers.cncf.kubernetes.executors.kubernetes_executor.KubernetesExecutor"
)
# Parses every DAG, and prints per task: its pool and the base container's resources of its
# pod_override, as parsed and after the round trip through JSON the dag-processor makes (None: no
# executor_config).
PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
from kubernetes.client import ApiClient

def base(task):
    pod = (task.executor_config or {}).get("pod_override")
    if pod is None:
        return None
    spec = ApiClient().sanitize_for_serialization(pod)["spec"]
    return {c["name"]: c.get("resources") for c in spec["containers"]}

bag = DagBag(dag_folder=DAGS)
assert not bag.import_errors, bag.import_errors
out = {}
for dag_id, dag in bag.dags.items():
    stored = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))
    for task in dag.tasks:
        out[f"{dag_id}.{task.task_id}"] = {
            "pool": task.pool,
            "parsed": base(task),
            "stored": base(stored.get_task(task.task_id)),
        }
print(json.dumps(out))
"""


def _parse_dags(executor: str, tmp_path) -> dict[str, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAIN__")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(
                [
                    str(DAGS_FOLDER),
                    str(deploy_static.PROJECT_ROOT / "src"),
                    str(deploy_static.PROJECT_ROOT),
                ]
            ),
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "RETRAIN_CONFIG": str(deploy_static.PROJECT_ROOT / "retrain.toml"),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", f"DAGS = {str(DAGS_FOLDER)!r}\n{PROBE}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the pure parts ------------------------------------------------------------------------------


def test_pod_resources_are_memory_as_request_and_limit_and_a_cpu_request():
    assert pod_resources(512, 1.0) == {
        "requests": {"cpu": "1000m", "memory": "512Mi"},
        "limits": {"memory": "512Mi"},
    }
    heavy = pod_resources(1536, 0.5)
    assert heavy["requests"] == {"cpu": "500m", "memory": "1536Mi"}
    assert heavy["limits"] == {"memory": "1536Mi"}


def test_pod_resources_read_as_the_figures_they_came_from(cfg: Config):
    """The quantities parse back (with the same parser as the chart's values) to [resources]."""
    figures = pod_resources(deploy_static.heavy_memory_mb(cfg), cfg.resources.task_cpu)
    for kind in ("requests", "limits"):
        assert deploy_static.memory_mb(figures[kind]["memory"]) == deploy_static.heavy_memory_mb(
            cfg
        )
    assert deploy_static.cpu_cores(figures["requests"]["cpu"]) == cfg.resources.task_cpu


@pytest.mark.parametrize(
    ("executor", "expected"),
    [
        ("KubernetesExecutor", True),
        ("LocalExecutor", False),
        ("CeleryExecutor", False),
        ("", False),
        ("LocalExecutor,KubernetesExecutor", True),
        ("CeleryExecutor, KubernetesExecutor", True),
        (KUBERNETES_EXECUTOR_PATH, True),
        (f"k8s:{KUBERNETES_EXECUTOR_PATH}", True),
        ("LocalExecutor;team_a=KubernetesExecutor", True),
        ("my.plugin.NotKubernetesExecutor", False),
    ],
)
def test_the_configured_executor_is_read_as_airflow_reads_it(executor, expected):
    assert uses_kubernetes_executor(executor) is expected


# -- the real DAGs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def on_kubernetes(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return _parse_dags("KubernetesExecutor", tmp_path_factory.mktemp("k8s-home"))


def test_every_task_pod_asks_for_its_memory_under_kubernetes(on_kubernetes, cfg: Config):
    """Heavy tasks (the heavy pool) get task_memory_mb + memory_budget_mb, every other task
    task_memory_mb; as parsed and as the dag-processor stores it."""
    res = cfg.resources
    light = pod_resources(res.task_memory_mb, res.task_cpu)
    heavy = pod_resources(deploy_static.heavy_memory_mb(cfg), res.task_cpu)
    assert heavy["limits"]["memory"] == (f"{res.task_memory_mb + cfg.training.memory_budget_mb}Mi")
    for name, task in on_kubernetes.items():
        expected = heavy if task["pool"] == res.heavy_pool else light
        for stage in ("parsed", "stored"):
            assert task[stage] == {"base": expected}, f"{name} ({stage}): {task[stage]}"
    # the heavy work itself, by name (tests/dags pins the full list of heavy tasks)
    for name in ("retrain.train_challenger", "features.build_features", "ingest.validate_large"):
        assert on_kubernetes[name]["parsed"] == {"base": heavy}, name
    assert on_kubernetes["ingest.route"]["parsed"] == {"base": light}


def test_no_executor_config_under_local_executor(tmp_path):
    found = _parse_dags("LocalExecutor", tmp_path)
    assert found
    assert {name: t["parsed"] for name, t in found.items() if t["parsed"] is not None} == {}
    assert all(t["stored"] is None for t in found.values())
