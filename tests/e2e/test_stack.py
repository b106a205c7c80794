"""End to end on the real stack: S3-compatible server, Airflow scheduler, triggerer,
dag-processor and api-server on free ports in a temp AIRFLOW_HOME. Nothing is triggered by hand:
files are dropped into landing/ and the DAGs run by themselves.

Waits are bounded and generous (the machine is small); speed is measured in benchmarks/.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrain import devstack
from retrain.config import Config, load_config
from retrain.demo import DemoFile, run_round
from retrain.registry import ModelRegistry
from retrain.reports import index_key, report_keys
from retrain.storage import S3Storage

pytestmark = pytest.mark.e2e
PROJECT_ROOT = Path(__file__).resolve().parents[2]
FAST = {  # the triggerer polls landing/ every second and settles a batch after 2 s
    "RETRAIN__ORCHESTRATION__POLL_INTERVAL": "1",
    "RETRAIN__ORCHESTRATION__SETTLE_SECONDS": "2",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Stack]:
    root = tmp_path_factory.mktemp("stack")
    gx_root = root / "gx-root"  # checkpoint results go to a private copy, not the repo
    shutil.copytree(
        PROJECT_ROOT / "validation" / "gx",
        gx_root / "gx",
        ignore=shutil.ignore_patterns("uncommitted"),
    )
    overrides = {**FAST, "RETRAIN_GX_ROOT": str(gx_root)}
    try:
        yield devstack.start(root, bucket="retrain-e2e", overrides=overrides, parallelism=4)
    finally:
        devstack.stop(root)
        assert devstack.load(root) is None


@pytest.fixture(scope="module")
def cfg(stack: devstack.Stack) -> Config:
    return load_config(PROJECT_ROOT / "retrain.toml", env={**stack.env(), **FAST})


@pytest.fixture(scope="module")
def storage(cfg: Config, stack: devstack.Stack) -> S3Storage:
    env = stack.env()
    return S3Storage.from_config(
        cfg.storage,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@contextlib.contextmanager
def explain_failure(stack: devstack.Stack) -> Iterator[None]:
    """A red run prints the logs of the failed Airflow tasks, so CI explains itself."""
    try:
        yield
    except BaseException:
        print(stack.api.failed_task_logs(list(devstack.DAG_IDS), limit_runs=5))
        for name in ("scheduler", "triggerer", "dag-processor"):
            log_path = Path(stack.root) / "logs" / f"{name}.log"
            print(f"--- {name} log tail\n{devstack.tail_log(log_path)}")
        raise


def test_a_dropped_batch_is_validated_featurized_trained_and_deployed(stack, cfg, storage):
    files = (
        DemoFile("week.csv", "normal", "csv", 3000, 14),
        DemoFile("week.parquet", "normal", "parquet", 3000, 14),
    )
    with explain_failure(stack):
        summary = run_round(stack, cfg, storage, files, seed=7)
    assert [f["valid"] for f in summary["files"]] == [True, True]
    assert all(f["dest_key"].startswith(cfg.storage.raw_prefix) for f in summary["files"])
    assert not storage.list_objects(cfg.storage.landing_prefix), "landing/ must be empty again"
    assert (summary["ingest"], summary["features"], summary["retrain"]) == ("success",) * 3
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    champion = registry.champion()
    assert champion is not None and champion.version == summary["version"]
    assert summary["decision"]["deploy"] is True
    assert champion.metrics["auc"] > 0.7
    assert storage.exists(report_keys(cfg.storage.reports_prefix, champion.version).decision)
    assert storage.exists(index_key(cfg.storage.reports_prefix))
    assert storage.exists(f"{cfg.storage.reports_prefix}gx/index.html")


def test_a_corrupt_file_is_quarantined_and_nothing_is_retrained(stack, cfg, storage):
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    champion_before = registry.champion()
    assert champion_before is not None, "runs after the first test"
    runs_before = {d: {r.run_id for r in stack.api.dag_runs(d)} for d in ("features", "retrain")}
    with explain_failure(stack):
        bad = (DemoFile("bad.csv", "corrupt", "csv", 300, 1),)
        summary = run_round(stack, cfg, storage, bad, seed=8)
    (routed,) = summary["files"]
    assert routed["valid"] is False
    assert routed["dest_key"].startswith(cfg.storage.quarantine_prefix)
    report = storage.get_json(routed["dest_key"] + ".report.json")
    assert report["failed_expectations"] and report["reason"]
    tasks = {t.task_id: t for t in stack.api.task_instances("ingest", summary["ingest_run"])}
    assert tasks["publish_raw"].state == "skipped", "no raw asset event without valid files"
    # the task log (what a red CI prints) says what happened and where to look
    log = stack.api.task_log(tasks["validate_and_route"])
    assert "QUARANTINED" in log and routed["dest_key"] + ".report.json" in log
    for dag_id, before in runs_before.items():
        assert {r.run_id for r in stack.api.dag_runs(dag_id)} == before, f"{dag_id} ran"
    assert registry.champion() == champion_before
