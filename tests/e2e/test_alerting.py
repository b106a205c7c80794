"""Never silent, on the real stack: alerts travel through SNS (the amazon provider's notifier)
to an SQS queue on the local server, and are read back from there.

A stack of its own (started and stopped in this module), with a training set that can never
be big enough (every retrain fails its checkpoint), a run deadline of 3 s, and a watchdog
ticking every 15 s that calls a file waiting 30 s in landing/ stuck.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from conftest import (
    FAST,
    PROJECT_ROOT,
    explain_failure,
    tree_snapshot,
)

from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.local import devstack, inbox
from retrain.storage import S3Storage

pytestmark = pytest.mark.e2e

OVERRIDES = {
    **FAST,
    "RETRAIN__VALIDATION__TRAINING_MIN_ROWS": "1000000",
    "RETRAIN__WATCHDOG__INTERVAL_MINUTES": "0.25",
    "RETRAIN__WATCHDOG__MAX_LANDING_WAIT_MINUTES": "0.5",
    "RETRAIN__WATCHDOG__MAX_RUN_MINUTES": "0.05",  # 3 s: every retrain run misses its deadline
}
RUN_TIMEOUT = 240.0
START = datetime(2026, 11, 1)


@pytest.fixture(scope="module")
def tree_before() -> dict[str, tuple[int, int]]:
    return tree_snapshot()


@pytest.fixture(scope="module")
def alert_stack(
    tmp_path_factory: pytest.TempPathFactory, tree_before: dict
) -> Iterator[devstack.Stack]:
    """Started from a config file of its own (another dataset name, so other GX suite names),
    as a bring-your-own deployment would be."""
    root = tmp_path_factory.mktemp("alert-stack")
    config = root / "churn-alerts.toml"
    config.write_text(
        (PROJECT_ROOT / "retrain.toml")
        .read_text()
        .replace('name = "telco_churn"', 'name = "churn_alerts"', 1)
    )
    overrides = {**OVERRIDES, "RETRAIN_CONFIG": str(config)}
    try:
        yield devstack.start(root, bucket="retrain-alerts", overrides=overrides, parallelism=4)
    finally:
        devstack.stop(root)


@pytest.fixture(scope="module")
def cfg(alert_stack: devstack.Stack) -> Config:
    return alert_stack.config()


@pytest.fixture(scope="module")
def storage(alert_stack: devstack.Stack) -> S3Storage:
    return alert_stack.storage()


class Inbox:
    """Every alert that arrived on the stack's queue so far (reading takes them off it)."""

    def __init__(self, stack: devstack.Stack) -> None:
        self.stack, self.seen = stack, []

    def read(self) -> list[inbox.Received]:
        env = self.stack.env()
        self.seen += inbox.receive(
            self.stack.s3_endpoint,
            self.stack.alerts_queue_url,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        return self.seen

    def mark(self) -> int:
        """Where the alerts from now on start (an earlier test's slow run may have alerted)."""
        return len(self.read())

    def about(self, words: str, since: int = 0) -> list[inbox.Received]:
        return [r for r in self.read()[since:] if words in r.subject]

    def wait_for(
        self, words: str, count: int, timeout: float, since: int = 0
    ) -> list[inbox.Received]:
        return devstack.wait_for(
            lambda: (found := self.about(words, since)) and len(found) >= count and found,
            timeout,
            interval=1.0,
            what=f"{count} alert(s) about {words!r} (got {[r.subject for r in self.seen]})",
        )


@pytest.fixture(scope="module")
def alerts(alert_stack: devstack.Stack) -> Inbox:
    return Inbox(alert_stack)


def failed_retrains(stack: devstack.Stack) -> int:
    return sum(r.state == "failed" for r in stack.api.dag_runs("retrain"))


def upload(storage: S3Storage, cfg: Config, name: str, seed: int) -> str:
    key = f"{cfg.storage.landing_prefix}{name}"
    storage.put_bytes(key, write_batch(generate(200, seed=seed, start=START), "csv"))
    return key


def test_a_failing_retrain_alerts_once_then_says_still_failing(
    alert_stack: devstack.Stack, cfg: Config, storage: S3Storage, alerts: Inbox
) -> None:
    with explain_failure(alert_stack):
        for n in range(1, 4):
            upload(storage, cfg, f"round-{n}.csv", seed=100 + n)
            devstack.wait_for(
                lambda n=n: failed_retrains(alert_stack) >= n,
                RUN_TIMEOUT,
                interval=1.0,
                what=f"retrain run {n} to fail",
            )
            alerts.wait_for("retrain failed", n, 60)
    messages = alerts.about("retrain failed")
    assert [m.subject for m in messages] == [
        "[retrain] FAILED: retrain failed",
        "[retrain] STILL FAILING: retrain failed",
        "[retrain] STILL FAILING: retrain failed",
    ]
    first = messages[0].message
    assert "check_training_set: training set rejected" in first
    assert f"look: {alert_stack.api_url}/dags/retrain/runs/" in first  # the run in the UI
    # the report: a browser URL through the Airflow plugin, its s3:// URI beside it
    assert f"look: {alert_stack.api_url}/retrain-reports/training/" in first
    assert "(s3://retrain-alerts/reports/training/" in first
    assert "still failing since" in messages[2].message and "3 runs" in messages[2].message
    assert_quiet_log(alert_stack, "retrain", "check_training_set")
    # Airflow's deadline alert, called in the triggerer: the run existed, but took too long
    (overdue, *_) = alerts.wait_for("retrain run not finished after 0.05 min", 1, 60)
    assert overdue.subject.startswith("[retrain] NOTICE:")
    assert f"look: {alert_stack.api_url}/dags/retrain/runs/" in overdue.message
    # three in a row reach the watchdog's limit: one warning, not one per run
    (streak,) = alerts.wait_for("retrains keep failing", 1, 60)
    assert streak.subject == "[retrain] WARNING: retrains keep failing"
    assert "3 retrain runs in a row" in streak.message


def assert_quiet_log(stack: devstack.Stack, dag_id: str, task_id: str) -> None:
    """The task's log (the JSON lines Airflow writes) has the pipeline's own lines and the
    alert, and no library chatter below WARNING."""
    logs = stack.airflow_home / "logs" / f"dag_id={dag_id}"
    (path, *_) = sorted(logs.glob(f"run_id=*/task_id={task_id}/attempt=*.log"))
    records = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    chatter = [
        r
        for r in records
        if str(r.get("logger", "")).split(".")[0] in ("great_expectations", "botocore", "lightgbm")
        and r.get("level") in ("debug", "info")
    ]
    assert chatter == [], chatter[:3]
    events = [str(r.get("event")) for r in records]
    assert any("ALERT [retrain] FAILED: retrain failed" in e for e in events), events[-10:]


def test_a_file_stuck_in_landing_alerts_without_any_run_and_recovers(
    alert_stack: devstack.Stack, cfg: Config, storage: S3Storage, alerts: Inbox
) -> None:
    api = alert_stack.api
    ingest_runs = {r.run_id for r in api.dag_runs("ingest")}
    os.killpg(alert_stack.pids["triggerer"], signal.SIGKILL)
    restarted = False
    try:
        with explain_failure(alert_stack):
            start = alerts.mark()
            key = upload(storage, cfg, "stuck.csv", seed=7)
            (stuck,) = alerts.wait_for("files waiting in landing/", 1, 120, since=start)
            assert stuck.subject == "[retrain] WARNING: files waiting in landing/"
            assert key in stuck.message and "triggerer is down" in stuck.message
            assert {r.run_id for r in api.dag_runs("ingest")} == ingest_runs, "no run started"
            assert storage.exists(key), "still waiting"
            current = devstack.load(Path(alert_stack.root))
            assert current is not None
            devstack.restart(current, "triggerer")
            restarted = True
            cleared = alerts.wait_for("files waiting in landing/: cleared", 1, 180, since=start)
            assert cleared[0].subject.startswith("[retrain] RECOVERED:")
            assert not storage.exists(key), "the file was routed once the triggerer was back"
    finally:
        if not restarted:
            current = devstack.load(Path(alert_stack.root))
            if current is not None:
                devstack.restart(current, "triggerer")
    # once per incident: the watchdog ticked several times while the file waited
    assert len(alerts.about("WARNING: files waiting in landing/", since=start)) == 1


def history_names(storage: S3Storage, cfg: Config) -> set[str]:
    """Every name the deployment's report history lists (all pages)."""
    from retrain.history import History
    from retrain.layout import Layout

    history = History(storage, Layout.of(cfg))
    return {e.name for n in range(history.newest_page() + 1) for e in history.page(n)}


def test_two_deployments_from_one_checkout_report_only_their_own_files(
    alert_stack: devstack.Stack, cfg: Config, storage: S3Storage, stack: devstack.Stack
) -> None:
    """The shared stack (default config, its own bucket) starts beside this one, from the same
    checkout: each drops a file, each one's reports list exactly its own."""
    other_cfg, other_storage = stack.config(), stack.storage()
    assert other_cfg.storage.bucket != cfg.storage.bucket
    assert other_cfg.dataset.name != cfg.dataset.name
    here = upload(storage, cfg, "only-here.csv", seed=11)
    # a file with too few rows: quarantined, so the shared stack's later tests start no retrain
    there = f"{other_cfg.storage.landing_prefix}only-there.csv"
    other_storage.put_bytes(there, write_batch(generate(3, seed=12, start=START), "csv"))
    for s, key in ((storage, here), (other_storage, there)):
        devstack.wait_for(
            lambda s=s, key=key: not s.exists(key), RUN_TIMEOUT, what=f"{key} to be routed"
        )
    mine = devstack.wait_for(
        lambda: (names := history_names(storage, cfg)) and here in names and names,
        60,
        what="this deployment's history to list its file",
    )
    theirs = devstack.wait_for(
        lambda: (names := history_names(other_storage, other_cfg)) and there in names and names,
        60,
        what="the other deployment's history to list its file",
    )
    assert there not in mine and here not in theirs
    assert {n for n in mine if n.startswith("landing/")} == {
        f"{cfg.storage.landing_prefix}{name}"
        for name in ("round-1.csv", "round-2.csv", "round-3.csv", "stuck.csv", "only-here.csv")
    }
    assert theirs == {there}


def test_the_runs_wrote_nothing_under_the_checkout(
    alert_stack: devstack.Stack, cfg: Config, tree_before: dict
) -> None:
    """Everything above ran a deployment with another config (validation, training, alerts,
    the watchdog): its state is in its bucket, none of it in the code tree."""
    assert cfg.dataset.name == "churn_alerts"
    after = tree_snapshot()
    changed = {k for k in tree_before.keys() & after.keys() if tree_before[k] != after[k]}
    assert (set(after) - set(tree_before), set(tree_before) - set(after), changed) == (
        set(),
        set(),
        set(),
    )
