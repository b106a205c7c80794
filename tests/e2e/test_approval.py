"""A person holds the deploy ([gate] approval), on the real stack: the four ways an approval
ends (approved, rejected, superseded, timed out), answered the way people and scripts answer
(`retrain approve|reject`, Airflow's HITL REST API), with no worker slot held while it waits.

A stack of its own: approval = "always", a 72 s timeout that holds, and a drift rule so tight
(and a non-inferiority margin so wide) that every retrain after the first deploys "after a
change", so every retrain asks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import pytest
from conftest import FAST

from retrain import cli
from retrain.approvals import APPROVE, Approvals
from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.local import devstack, follow
from retrain.local.devtools import open_browser
from retrain.registry import ModelRegistry
from retrain.status import gather
from retrain.storage import S3Storage

pytestmark = [pytest.mark.e2e, pytest.mark.beside]  # Makefile: in the second stream

TIMEOUT_HOURS = 0.02  # 72 s
OVERRIDES = {
    **FAST,
    "RETRAIN__GATE__APPROVAL": "always",
    "RETRAIN__GATE__APPROVAL_TIMEOUT_HOURS": str(TIMEOUT_HOURS),
    "RETRAIN__GATE__NON_INFERIORITY_MARGIN": "0.9",
    "RETRAIN__DRIFT__PSI_THRESHOLD": "0.0001",
    "RETRAIN__DRIFT__DISTANCE_THRESHOLD": "0.0001",
    "RETRAIN__DRIFT__SHARE_THRESHOLD": "0.01",
}
RUN_TIMEOUT = 300.0
APPROVAL_TASK = "wait_for_approval"  # dags/approve_dag.py
START = datetime(2026, 10, 1)


@pytest.fixture(autouse=True)
def own_environment() -> Iterator[None]:
    """`retrain` commands run in this process apply their stack's environment to it
    (cli.common.use_stack): it is put back after each test, so a stack started later in this
    process (the celery round's) starts from its own config, not this one's."""
    with mock.patch.dict(os.environ):
        yield


@pytest.fixture(scope="module")
def approval_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Stack]:
    root = tmp_path_factory.mktemp("approval-stack")
    try:
        yield devstack.start(root, bucket="retrain-approval", overrides=OVERRIDES, parallelism=4)
    finally:
        devstack.stop(root)


@pytest.fixture(scope="module")
def cfg(approval_stack: devstack.Stack) -> Config:
    return approval_stack.config()


@pytest.fixture(scope="module")
def storage(approval_stack: devstack.Stack) -> S3Storage:
    return approval_stack.storage()


def retrain_asking(stack: devstack.Stack, cfg: Config, storage: S3Storage, week: int) -> str:
    """Drop one week of data; wait for its retrain run and for the approve DAG to ask; return
    the challenger's version."""
    seen = follow.run_ids(stack.api, "retrain")
    df = generate(2000, seed=100 + week, start=START + timedelta(days=7 * week), days=7.0)
    storage.put_bytes(f"{cfg.storage.landing_prefix}week{week}.csv", write_batch(df, "csv"))
    run = follow.wait_new_run(stack.api, "retrain", seen, RUN_TIMEOUT)
    assert run.state == "success", stack.api.failed_task_logs(["retrain"], limit_runs=1)
    states = {t.task_id: t.state for t in stack.api.task_instances("retrain", run.run_id)}
    assert states["deploy"] == "skipped" and states["request_approval"] == "success"
    pending = Approvals(storage, cfg).pending()
    assert pending, "the retrain run asked for approval"
    version = pending[0].version
    devstack.wait_for(
        lambda: stack.api.hitl_requests("approve", answered=False, subject=version),
        RUN_TIMEOUT,
        what=f"the approve DAG to ask about {version}",
    )
    return version


def champion(storage: S3Storage, cfg: Config) -> str | None:
    current = ModelRegistry(storage, cfg.storage.models_prefix).champion()
    return current.version if current else None


def settled(storage: S3Storage, cfg: Config, version: str, status: str):
    return devstack.wait_for(
        lambda: (
            (got := Approvals(storage, cfg).get(version)) and got[0].status == status and got[0]
        ),
        RUN_TIMEOUT,
        what=f"the approval of {version} to be {status}",
    )


def test_approved_the_champion_moves_and_the_record_names_the_approver(
    approval_stack: devstack.Stack, cfg: Config, storage: S3Storage, capsys, tmp_path_factory
) -> None:
    stack = approval_stack
    version = retrain_asking(stack, cfg, storage, 1)
    assert champion(storage, cfg) is None, "nothing deploys before the answer"
    # Waiting holds no worker slot, checked as benchmarks/arrival_latency.py checks its sensor:
    # the run's task instances running or queued, and the default pool's running and queued
    # slots (polled: the watchdog's timer may hold one for a moment). The waiting task is
    # parked in awaiting_input, not deferred, so it holds no triggerer slot either.
    ti = stack.api.hitl_requests("approve", answered=False, subject=version)[0]["task_instance"]
    assert ti["state"] == "awaiting_input"
    states = [t.state for t in stack.api.task_instances("approve", ti["dag_run_id"])]
    assert sorted(map(str, states)) == ["None", "awaiting_input", "success"], states

    def pool_idle() -> bool:
        pool = stack.api.get_json("/api/v2/pools/default_pool")
        return pool["running_slots"] + pool["queued_slots"] == 0

    devstack.wait_for(pool_idle, 60, what="no worker slot in use while the approval waits")
    shots = Path(os.environ.get("RETRAIN_SCREENSHOT_DIR") or tmp_path_factory.mktemp("shots"))
    with open_browser() as page:  # what a person sees: the question in Required Actions
        run = quote(ti["dag_run_id"], safe="")
        page.goto(f"{stack.api_url}/dags/approve/runs/{run}/tasks/{APPROVAL_TASK}/required_actions")
        page.wait_for(f"document.body.innerText.includes('{version}')", 60, "the question")
        page.wait_for("document.body.innerText.includes('Approve')", 30, "its options")
        page.screenshot(shots / "approval-required-action.png")
    index = storage.get_bytes(f"{cfg.storage.reports_prefix}index.html").decode()
    assert (
        "awaiting approval" in index
        and Approvals(storage, cfg).get(version)[0].serving_version in index
    )
    status = gather(storage, cfg, api=stack.api)
    assert status.awaiting[0].version == version
    assert status.why.startswith(f"{status.awaiting[0].serving_version} (challenger {version})")

    root = ["--root", stack.root]
    assert cli.main([*root, "approve", version, "--comment", "checked the drift page"]) == 0
    out = capsys.readouterr().out
    assert f"approved {version}" in out and "approved: approved by " in out
    record = Approvals(storage, cfg).get(version)[0]
    assert record.status == "approved" and record.deployed and record.by
    assert record.comment == "checked the drift page"
    assert champion(storage, cfg) == record.serving_version
    promotion = ModelRegistry(storage, cfg.storage.models_prefix).promotions(limit=1)[0]
    assert promotion.version == record.serving_version and promotion.by == record.by


def test_rejected_the_champion_stays_and_a_hold_is_recorded(
    approval_stack: devstack.Stack, cfg: Config, storage: S3Storage
) -> None:
    stack = approval_stack
    before = champion(storage, cfg)
    version = retrain_asking(stack, cfg, storage, 2)
    root = ["--root", stack.root]
    assert cli.main([*root, "reject", version, "--comment", "not in the freeze week"]) == 0
    record = Approvals(storage, cfg).get(version)[0]
    assert (record.status, record.deployed) == ("rejected", False)
    assert record.by and record.comment == "not in the freeze week"
    assert record.outcome.startswith(f"rejected by {record.by}: not in the freeze week")
    assert champion(storage, cfg) == before
    assert cli.main([*root, "approve", version]) == 1, "an answered approval stays answered"


def test_a_newer_challenger_supersedes_the_waiting_one_which_then_times_out(
    approval_stack: devstack.Stack, cfg: Config, storage: S3Storage
) -> None:
    stack = approval_stack
    before = champion(storage, cfg)
    older = retrain_asking(stack, cfg, storage, 3)
    newer = retrain_asking(stack, cfg, storage, 4)
    record = Approvals(storage, cfg).get(older)[0]
    assert (record.status, record.superseded_by) == ("superseded", newer)
    # the older one's question still stands in Required Actions: approving it deploys nothing
    asked = stack.api.hitl_requests("approve", answered=False, subject=older)
    stack.api.respond(asked[0], [APPROVE], {"comment": "too late"})
    run_id = asked[0]["task_instance"]["dag_run_id"]
    devstack.wait_for(
        lambda: next(r for r in stack.api.dag_runs("approve") if r.run_id == run_id).finished,
        RUN_TIMEOUT,
        what="the superseded approval's run to end",
    )
    assert Approvals(storage, cfg).get(older)[0].status == "superseded"
    assert champion(storage, cfg) == before
    # nobody answers the newer one: after the timeout it holds, and says so
    timed_out = settled(storage, cfg, newer, "timed_out")
    assert not timed_out.deployed and timed_out.by == ""
    assert "no answer within 0.02 h" in timed_out.outcome
    assert champion(storage, cfg) == before
    alerts = gather(storage, cfg, api=stack.api).alerts
    assert any("no answer within" in a.reason for a in alerts), [a.subject for a in alerts]
