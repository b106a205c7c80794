"""The demo's story on the real stack: a good batch is deployed (by workers running from a
read-only tree) and scored, a drifted week is decided by the deploy policy, a corrupt file is
quarantined, duplicates and repeated ids never reach training, a retraction retrains without
the file. The first batch, the read-only tree and where heavy work ran are checked on the celery
profile too (``celery`` marker, see conftest.py).

Waits are bounded and generous (the machine is small); speed is measured in benchmarks/.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from retrain.airflow_api import DagRun
from retrain.datagen import generate, write_batch
from retrain.layout import Layout
from retrain.local import follow
from retrain.local.demo import DemoFile, run_round
from retrain.local.devstack import CELERY_WORKERS
from retrain.registry import ModelRegistry
from retrain.reports import index_key, report_keys

pytestmark = pytest.mark.e2e
PROJECT_ROOT = Path(__file__).resolve().parents[2]
FOLLOWED = ("ingest", "features", "retrain")


@pytest.mark.celery
def test_a_dropped_batch_is_validated_featurized_trained_and_deployed(stack, cfg, storage, explain):
    files = (
        DemoFile("week.csv", "normal", "csv", 3000, 14),
        DemoFile("week.parquet", "normal", "parquet", 3000, 14),
    )
    with explain():
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
    trained_on = set(registry.load_metadata(champion.version)["feature_keys"])
    mine = {Layout.of(cfg).feature_key(f["dest_key"]) for f in summary["files"]}
    assert len(mine) == 2 and mine <= trained_on, "week.csv and week.parquet: two feature files"
    decided = summary["decision"]["version"]  # the evaluated model; the champion is its refit
    assert registry.load_metadata(champion.version)["refit_of"] == decided
    assert storage.exists(report_keys(cfg.storage.reports_prefix, decided).decision)
    assert storage.exists(index_key(cfg.storage.reports_prefix))
    results = storage.list_objects(f"{cfg.storage.reports_prefix}validations/")
    assert any(o.key.endswith(".json") for o in results), "each file's GX result is in the bucket"
    # the deploy set off the scoring DAG: the new champion scored the newest accepted files
    assert summary["score"] == "success"
    predictions = summary["predictions"]
    assert predictions["version"] == champion.version and 0 < predictions["rows"] <= 6000
    assert {f["feature_key"] for f in predictions["files"]} <= mine


@pytest.mark.celery
def test_the_workers_ran_from_a_read_only_tree(stack, read_only_tree):
    """The run above went through DAGs, library and config of a tree nothing can write to."""
    with pytest.raises(OSError):
        (read_only_tree / "dags" / "written-at-run-time.txt").write_text("x")
    for dag_id in FOLLOWED:
        fileloc = stack.api.get_json(f"/api/v2/dags/{dag_id}/details")["fileloc"]
        assert Path(fileloc).is_relative_to(read_only_tree), fileloc
    for name in ("scheduler", "triggerer", "dag-processor", *CELERY_WORKERS):
        if name not in stack.pids:  # the workers: celery profile only
            continue
        pid = stack.pids[name]
        assert Path(f"/proc/{pid}/cwd").resolve() == read_only_tree
        if name in CELERY_WORKERS:  # Celery's long process title overwrites /proc/<pid>/environ
            continue
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        path = next(v for v in environ if v.startswith(b"PYTHONPATH=")).decode()
        assert path.split("=", 1)[1].split(":")[:2] == [
            str(read_only_tree / "src"),
            str(read_only_tree),
        ]


@pytest.mark.celery
def test_the_processes_that_fork_tasks_started_warm(stack, cfg):
    """airflow_local_settings preloaded [resources] preload in the processes that fork task
    processes (the scheduler's LocalExecutor, or each Celery worker), and only there."""
    warm = set(CELERY_WORKERS) if stack.profile == "celery" else {"scheduler"}
    line = f"[retrain] preloaded {len(cfg.resources.preload)} module(s) in "
    for name in ("scheduler", "triggerer", "dag-processor", "api-server", *CELERY_WORKERS):
        if name not in stack.pids:
            continue
        log = (Path(stack.root) / "logs" / f"{name}.log").read_text(errors="replace")
        assert (line in log) is (name in warm), name
        assert "not preloaded" not in log, name


@pytest.mark.celery
def test_heavy_work_ran_on_its_queue_and_in_its_pool(stack, cfg):
    """The first batch's runs: heavy tasks (feature build, training-set gate, training,
    evaluation, refit) on the heavy queue and in the heavy pool of the config's size, light ones
    on the default queue; on the celery profile, every task went through the Celery workers."""
    res = cfg.resources
    pool = stack.api.get_json(f"/api/v2/pools/{res.heavy_pool}")
    assert pool["slots"] == res.heavy_pool_slots
    heavy = {
        "features": {"build_features"},
        "retrain": {"check_training_set", "train_challenger", "evaluate_and_decide"},
    }
    ran: list = []
    for dag_id, names in heavy.items():
        first = min(stack.api.dag_runs(dag_id), key=lambda r: r.run_id)
        tis = stack.api.get_json(
            f"/api/v2/dags/{dag_id}/dagRuns/{quote(first.run_id, safe='')}/taskInstances"
        )["task_instances"]
        for ti in tis:
            where = (ti["queue"], ti["pool"])
            if ti["task_id"] in names | {"refit_for_serving"}:
                assert where == (res.heavy_queue, res.heavy_pool), ti["task_id"]
            else:
                assert where == (res.default_queue, "default_pool"), ti["task_id"]
            if ti["state"] == "success":
                ran.append(ti)
        assert names <= {t["task_id"] for t in ran}, f"{dag_id}: heavy tasks did not run"
    if stack.profile != "celery":
        return
    logs = "\n".join(
        (Path(stack.root) / "logs" / f"{name}.log").read_text(errors="replace")
        for name in CELERY_WORKERS
    )
    for ti in ran:
        assert ti["id"] in logs, f"{ti['dag_id']}.{ti['task_id']} did not run on a Celery worker"


def test_a_drifted_week_is_decided_by_the_policy_with_its_reasons(stack, cfg, storage, explain):
    """Right after the first deploy, a week after a price change: the drift check finds it, the
    policy states why it deploys (something changed, the challenger is non-inferior on the
    drifted rows), the refit on every row serves, and the scoring DAG scores the week with it."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    before = registry.champion()
    before_keys = registry.load_metadata(before.version)["feature_keys"]
    drifted = (DemoFile("drifted-week.csv", "drifted", "csv", 4000, 3),)
    with explain():
        summary = run_round(stack, cfg, storage, drifted, seed=70)
    assert (summary["ingest"], summary["features"], summary["retrain"]) == ("success",) * 3
    decision = summary["decision"]
    drift = decision["drift"]
    assert drift["data_drifted"] and drift["drifted"], drift.get("summary")
    # judged on the rows the champion never trained on: the drifted week
    assert decision["evaluated_on"] == "new data"
    evaluated = registry.load_metadata(decision["version"])
    (week,) = [Layout.of(cfg).feature_key(f["dest_key"]) for f in summary["files"]]
    assert evaluated["new_keys"] == [week] and week not in before_keys
    # the week's newest half; the challenger learned from the older half
    assert decision["comparison"]["n_rows"] == evaluated["n_holdout"] == 2000
    assert decision["policy"]["gate"]["non_inferiority_margin"] == cfg.gate.non_inferiority_margin
    assert (decision["deploy"], decision["rule"]) == (True, "non_inferior_after_change")
    assert decision["reason"].startswith("deploy: data drifted"), decision["reason"]
    champion = registry.champion()
    assert champion.version == decision["serving_version"] != before.version
    serving = registry.load_metadata(champion.version)
    assert serving["refit_of"] == decision["version"]
    assert serving["n_train"] == decision["training_rows"], "the refit saw every row"
    assert summary["score"] == "success"
    scored = {f["feature_key"]: f["rows"] for f in summary["predictions"]["files"]}
    assert scored[week] == 4000, "the drifted week, scored by its refit"


def test_a_corrupt_file_is_quarantined_and_nothing_is_retrained(stack, cfg, storage, explain):
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    champion_before = registry.champion()
    assert champion_before is not None, "runs after the first test"
    runs_before = {d: {r.run_id for r in stack.api.dag_runs(d)} for d in ("features", "retrain")}
    with explain():
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
    log = stack.api.task_log(tasks["route"])
    assert "QUARANTINED" in log and routed["dest_key"] + ".report.json" in log
    for dag_id, before in runs_before.items():
        assert {r.run_id for r in stack.api.dag_runs(dag_id)} == before, f"{dag_id} ran"
    assert registry.champion() == champion_before


def drop_and_follow(stack, cfg, storage, uploads: dict[str, bytes]) -> tuple[list, DagRun]:
    """Upload ``{name: bytes}`` into landing/ and wait until ingest has routed them."""
    seen = follow.run_ids(stack.api, "ingest", finished_only=True)
    keys = [cfg.storage.landing_prefix + name for name in uploads]
    for key, data in zip(keys, uploads.values(), strict=True):
        storage.put_bytes(key, data)
    routed = follow.wait_routed(storage, cfg, keys, 300)
    return routed, follow.wait_new_run(stack.api, "ingest", seen, 300)


def test_duplicates_repeated_ids_and_hostile_keys_never_reach_training(
    stack, cfg, storage, explain
):
    layout = Layout.of(cfg)
    accepted = [o.key for o in storage.list_objects(cfg.storage.raw_prefix)]
    assert accepted, "runs after the first test"
    repeated = generate(300, seed=31, start=datetime(2026, 11, 1))
    repeated.loc[5:9, "customer_id"] = repeated.loc[0, "customer_id"]
    uploads = {
        "copy-of-accepted.csv": storage.get_bytes(accepted[0]),
        "repeated-ids.csv": write_batch(repeated, "csv"),
        "../raw/escape.csv": write_batch(
            generate(100, seed=32, start=datetime(2026, 11, 1)), "csv"
        ),
    }
    partial = cfg.storage.landing_prefix + "still-uploading.csv.part"
    storage.put_bytes(partial, b"half a file")
    runs_before = {d: {r.run_id for r in stack.api.dag_runs(d)} for d in ("features", "retrain")}
    try:
        with explain():
            routed, run = drop_and_follow(stack, cfg, storage, uploads)
        assert run.state == "success"
        assert [r.valid for r in routed] == [False, False, False]
        reports = {r.landing_key: storage.get_json(layout.report_key(r.dest_key)) for r in routed}
        copy, ids, escape = (reports[cfg.storage.landing_prefix + n] for n in uploads)
        assert copy["duplicate_of"] == accepted[0]
        assert "customer_id has duplicate values" in ids["reason"]
        assert "_unsafe/" in escape["quarantined_as"] and escape["file"].endswith("escape.csv")
        assert storage.exists(partial), "a temporary upload name is left alone"
        tasks = {t.task_id: t for t in stack.api.task_instances("ingest", run.run_id)}
        assert tasks["publish_raw"].state == "skipped"
        for dag_id, before in runs_before.items():
            assert {r.run_id for r in stack.api.dag_runs(dag_id)} == before, f"{dag_id} ran"
    finally:
        storage.delete(partial)


def test_a_retraction_retrains_without_the_file_and_a_replay_brings_it_back(
    stack, cfg, storage, explain
):
    layout = Layout.of(cfg)
    raw_keys = [o.key for o in storage.list_objects(cfg.storage.raw_prefix)]
    target = raw_keys[-1]
    seen = {d: follow.run_ids(stack.api, d) for d in ("features", "retrain")}
    cli = [str(PROJECT_ROOT / ".venv" / "bin" / "retrain"), "--root", stack.root]
    done = subprocess.run(
        [*cli, "retract", target, "--reason", "customer asked to delete"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "features asset re-emitted" in done.stdout
    with explain():
        run = follow.wait_new_run(stack.api, "retrain", seen["retrain"], 600)
    assert run.state == "success", "the retrain without the retracted file succeeds"
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    latest = registry.load_metadata(registry.list_versions()[-1])
    assert layout.feature_key(target) not in latest["feature_keys"]
    assert not storage.exists(target) and storage.exists(layout.retracted_key(target))

    status = subprocess.run(
        [*cli, "status"], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT
    )
    assert "retract" in status.stdout and "customer asked to delete" in status.stdout

    seen = {d: follow.run_ids(stack.api, d, finished_only=d == "ingest") for d in FOLLOWED}
    done = subprocess.run(
        [*cli, "replay", layout.retracted_key(target), "--reason", "consent renewed"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    with explain():
        for dag_id in FOLLOWED:  # the replayed file goes the whole way again
            assert follow.wait_new_run(stack.api, dag_id, seen[dag_id], 600).state == "success"
    assert storage.exists(layout.landing_key(layout.name_in_partition(target))) is False
