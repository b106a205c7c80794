"""One load test over every DAG (Astronomer's project test): imports, schedules, task hygiene,
parse time, and the library's independence from Airflow."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from retrain.local.devstack import DAG_IDS, WATCHDOG_DAG_ID

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = PROJECT_ROOT / "dags"
PARSE_LIMIT_S = 2.0
SCORING_DAG_ID = "score"  # the model's consumer, started by a deploy
PIPELINE_DAG_IDS = tuple(dict.fromkeys((*DAG_IDS, SCORING_DAG_ID)))  # started by data or a deploy


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_the_dags_are_there(dagbag) -> None:
    assert set(dagbag.dag_ids) == {*PIPELINE_DAG_IDS, WATCHDOG_DAG_ID}


@pytest.mark.parametrize("dag_id", PIPELINE_DAG_IDS)
def test_dag_hygiene(dagbag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    schedule = dag.schedule
    assert schedule in (None, "@continuous") or _assets_of(schedule), (
        f"{dag_id}: schedule {schedule!r} is time-based; only events may start runs"
    )
    assert dag.tags and "retrain" in dag.tags
    if dag_id == "approve":  # its runs wait for people; each settles its record by CAS
        assert dag.max_active_runs > 1, "a waiting approval must not block a newer one"
    else:
        assert dag.max_active_runs == 1, "runs of one DAG must not race on the same prefixes"
    for task in dag.tasks:
        assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id}: owner"
        assert task.retries >= 1, f"{dag_id}.{task.task_id}: retries"
        assert isinstance(task.execution_timeout, timedelta), f"{dag_id}.{task.task_id}: timeout"
    _assert_alerting(dag)


def _assert_alerting(dag) -> None:
    """Nothing fails silently: every task alerts on failure, every run's success can close an
    incident."""
    from triggers.alerting import PipelineFailureNotifier

    assert dag.has_on_success_callback or dag.on_success_callback, f"{dag.dag_id}: success cb"
    for task in dag.tasks:
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert any(isinstance(c, PipelineFailureNotifier) for c in callbacks), (
            f"{dag.dag_id}.{task.task_id}: no failure alert"
        )


def test_the_watchdog_runs_on_a_timer_and_alerts(dagbag) -> None:
    """Monitoring may run on a timer (the pipeline may not): it must see what no run reports."""
    dag = dagbag.dags[WATCHDOG_DAG_ID]
    assert isinstance(dag.schedule, timedelta) and dag.schedule <= timedelta(hours=1)
    assert dag.max_active_runs == 1 and not dag.catchup
    _assert_alerting(dag)


def test_asset_graph(dagbag) -> None:
    """landing -> ingest -emits raw-> features -emits features-> retrain -emits model-> score;
    a deploy that waits for a person: retrain -emits pending_approval-> approve -emits model."""
    outlets = {
        dag_id: {a.name for t in dagbag.dags[dag_id].tasks for a in t.outlets}
        for dag_id in PIPELINE_DAG_IDS
    }
    assert outlets == {
        "ingest": {"raw"},
        "features": {"features"},
        "retrain": {"model", "pending_approval"},
        "score": set(),
        "approve": {"model"},
    }
    assert _assets_of(dagbag.dags["features"].schedule) == {"raw"}
    assert _assets_of(dagbag.dags["retrain"].schedule) == {"features"}
    assert _assets_of(dagbag.dags[SCORING_DAG_ID].schedule) == {"model"}
    assert _assets_of(dagbag.dags["approve"].schedule) == {"pending_approval"}
    emitters = {
        (dag_id, t.task_id): {a.name for a in t.outlets}
        for dag_id in ("retrain", "approve")
        for t in dagbag.dags[dag_id].tasks
        if t.outlets
    }
    assert emitters == {  # only a deploy emits the model asset: a held model never scores
        ("retrain", "deploy"): {"model"},
        ("retrain", "request_approval"): {"pending_approval"},
        ("approve", "settle"): {"model"},
    }


def test_scoring_scores_the_version_the_model_event_names() -> None:
    """The newest triggering model event's version (the deploy task's extra); none: None, and
    the library scores with the current champion."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    sys.path.insert(0, str(DAGS_FOLDER))
    try:
        from _shared.common import MODEL
        from scoring_dag import deployed_version
    finally:
        sys.path.remove(str(DAGS_FOLDER))

    def event(version: str | None, minute: int) -> SimpleNamespace:
        extra = {"version": version, "deployed": True} if version else {}
        return SimpleNamespace(extra=extra, timestamp=datetime(2026, 1, 1, 0, minute, tzinfo=UTC))

    events = [event("v2", 5), event("v1", 1), event(None, 9)]
    assert deployed_version({"triggering_asset_events": {MODEL: events}}) == "v2"
    assert deployed_version({"triggering_asset_events": {MODEL: [event(None, 1)]}}) is None
    assert deployed_version({"triggering_asset_events": {}}) is None
    assert deployed_version({}) is None


def _assets_of(schedule) -> set[str]:
    """Names of the assets a DAG is scheduled on (empty for anything else)."""
    from airflow.sdk import Asset

    if isinstance(schedule, list | tuple) and all(isinstance(a, Asset) for a in schedule):
        return {a.name for a in schedule}
    return set()


def test_waiting_happens_in_the_triggerer(dagbag) -> None:
    from triggers.landing import LandingSensor

    first = dagbag.dags["ingest"].get_task("wait_for_files")
    assert isinstance(first, LandingSensor)
    assert first.execution_timeout > first.wait_timeout


def test_ingest_validates_in_parallel_and_routes_once(dagbag) -> None:
    """Validation fans out (one task per share of the batch, as many as the config says),
    routing is one task: exactly-once needs one router per batch, and the sensor ignores the
    same upload names as ingest does."""
    from retrain.config import load_config

    dag = dagbag.dags["ingest"]
    ingest_cfg = load_config(PROJECT_ROOT / "retrain.toml").ingest
    shares = {f"validate_{i}" for i in range(ingest_cfg.validate_tasks)} | {"validate_large"}
    assert {t for t in dag.task_ids if t.startswith("validate")} == shares
    route = dag.get_task("route")
    assert not route.is_mapped and route.upstream_task_ids == shares
    assert dag.get_task("publish_raw").upstream_task_ids == {"route"}
    sensor = dag.get_task("wait_for_files")
    assert tuple(sensor.ignore_patterns) == ingest_cfg.ignore_patterns
    assert sensor.split_into == ingest_cfg.validate_tasks
    assert (
        sensor.large_file_bytes
        == load_config(PROJECT_ROOT / "retrain.toml").resources.large_file_mb * 2**20
    )
    for share in shares:
        assert dag.get_task(share).upstream_task_ids == {"wait_for_files"}


def test_every_dag_file_parses_fast(tmp_path: Path) -> None:
    """`airflow dags report` per-file parse durations, each under the limit."""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run(
        [airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )
    out = subprocess.run(
        [airflow, "dags", "report", "-o", "json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    report = json.loads(out[out.index("[{") :])
    durations = {row["file"]: _seconds(row["duration"]) for row in report}
    print("parse durations:", durations)
    assert set(durations) == {p.name for p in DAGS_FOLDER.glob("*_dag.py")}
    assert all(d < PARSE_LIMIT_S for d in durations.values()), durations


def _seconds(duration: str) -> float:
    h, m, s = duration.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_library_has_no_airflow_imports() -> None:
    offenders = []
    for path in (PROJECT_ROOT / "src" / "retrain").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "airflow"]
    assert offenders == []


LOCAL_TOOLING = ("retrain.local", "retrain.cli")  # the local stack, the demo, the command line


def test_nothing_a_dag_trigger_or_task_imports_reaches_the_local_tooling() -> None:
    """Every DAG file, trigger, the plugin, the warm-up and every task step, imported in a fresh
    interpreter (as a worker, the triggerer or the api-server imports them): none of the local
    stack's tooling comes along, so workers never need it."""
    code = f"""
import importlib, json, pkgutil, sys
sys.path[:0] = [{str(DAGS_FOLDER)!r}, {str(PROJECT_ROOT)!r}]
import retrain.steps, validation
names = [m.name for m in pkgutil.iter_modules(retrain.steps.__path__, "retrain.steps.")]
names += [m.name for m in pkgutil.iter_modules(validation.__path__, "validation.")]
names += ["retrain.warm", "retrain_plugin.plugin", "retrain_plugin.app"]
names += ["triggers.landing", "triggers.landing_events", "triggers.alerting"]
names += [p.split("/")[-1][:-3] for p in {sorted(str(p) for p in DAGS_FOLDER.glob("*_dag.py"))!r}]
for name in names:
    importlib.import_module(name)
local, below = {LOCAL_TOOLING!r}, tuple(f"{{p}}." for p in {LOCAL_TOOLING!r})
print(json.dumps(sorted(m for m in sys.modules if m in local or m.startswith(below))))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("path", sorted(DAGS_FOLDER.rglob("*.py")), ids=lambda p: p.name)
def test_dag_files_import_nothing_heavy_at_module_level(path: Path) -> None:
    heavy = {"pandas", "numpy", "great_expectations", "lightgbm", "boto3", "pyarrow", "validation"}
    top = [
        n for n in ast.parse(path.read_text()).body if isinstance(n, ast.Import | ast.ImportFrom)
    ]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in top if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.split(".")[0] in heavy]


HEAVY_TASKS = {
    "retrain": {
        "check_training_set",
        "train_challenger",
        "evaluate_and_decide",
        "refit_for_serving",
    },
    "features": {"build_features"},
    "ingest": {"validate_large"},
}


def test_heavy_work_has_its_own_queue_and_pool_and_every_task_its_resources(dagbag) -> None:
    """[resources]: heavy tasks on the heavy queue and in the heavy pool, every other task on
    the default queue in the default pool; every task's CPUs and RAM from the config."""
    from retrain.config import load_config

    cfg = load_config(PROJECT_ROOT / "retrain.toml")
    res = cfg.resources
    for dag_id in (*PIPELINE_DAG_IDS, WATCHDOG_DAG_ID):
        for task in dagbag.dags[dag_id].tasks:
            heavy = task.task_id in HEAVY_TASKS.get(dag_id, set())
            where = (task.queue, task.pool)
            if heavy:
                assert where == (res.heavy_queue, res.heavy_pool), f"{dag_id}.{task.task_id}"
            else:
                assert where == (res.default_queue, "default_pool"), f"{dag_id}.{task.task_id}"
            ram = res.task_memory_mb + (cfg.training.memory_budget_mb if heavy else 0)
            assert task.resources is not None, f"{dag_id}.{task.task_id}: no resources"
            assert (task.resources.cpus.qty, task.resources.ram.qty) == (res.task_cpu, ram)
    for dag_id, names in HEAVY_TASKS.items():
        assert names <= set(dagbag.dags[dag_id].task_ids), f"{dag_id}: {names}"


def test_queues_and_pool_follow_the_config(tmp_path: Path) -> None:
    """Another [resources] in the environment moves the tasks, without a code change."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(DAGS_FOLDER), str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)]
        ),
        "AIRFLOW_HOME": str(tmp_path),
        "RETRAIN__RESOURCES__DEFAULT_QUEUE": "light-q",
        "RETRAIN__RESOURCES__HEAVY_QUEUE": "big-q",
        "RETRAIN__RESOURCES__HEAVY_POOL": "big-pool",
        "RETRAIN__RESOURCES__TASK_MEMORY_MB": "300",
    }
    probe = (
        "import json; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={str(DAGS_FOLDER)!r}); "
        "print(json.dumps({f'{d}.{t.task_id}': [t.queue, t.pool, t.resources.ram.qty] "
        "for d, dag in bag.dags.items() for t in dag.tasks}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["retrain.train_challenger"][:2] == ["big-q", "big-pool"]
    assert found["ingest.validate_large"][:2] == ["big-q", "big-pool"]
    assert found["ingest.route"] == ["light-q", "default_pool", 300]
