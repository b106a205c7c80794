"""Event-notification arrival on the real stack: the bucket notifies the S3-compatible server's
own SQS queue, an AssetWatcher in the triggerer reads it, and a reconciler sweeps landing/.

A stack of its own (started and stopped in this module) with ``arrival = "events"``, a
reconciler every 15 s sweeping objects older than 20 s, and the features DAG paused (these tests
are about arrival: nothing downstream of the raw asset has to run).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from conftest import FAST, explain_failure

from retrain.airflow_api import DagRun
from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.layout import Layout
from retrain.local import devstack, follow
from retrain.local.devstack import landing_notification, queue_depth
from retrain.steps.ingest import batch_id_for
from retrain.storage import S3Storage

pytestmark = pytest.mark.e2e

GRACE_S = 20.0
OVERRIDES = {
    **FAST,  # settle 2 s: the watcher gathers a burst for 2 quiet seconds
    "RETRAIN__ORCHESTRATION__ARRIVAL": "events",
    "RETRAIN__ORCHESTRATION__RECONCILE_MINUTES": "0.25",
    "RETRAIN__ORCHESTRATION__RECONCILE_GRACE_SECONDS": str(GRACE_S),
}
TIMEOUT = 180.0
START = datetime(2026, 11, 1)


@pytest.fixture(scope="module")
def events_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Stack]:
    root = tmp_path_factory.mktemp("events-stack")
    try:
        stack = devstack.start(root, bucket="retrain-events", overrides=OVERRIDES, parallelism=4)
        _pause(stack, "features")
        yield stack
    finally:
        devstack.stop(root)


def _pause(stack: devstack.Stack, dag_id: str) -> None:
    """Through the stack's client, which tries a busy api-server (HTTP 500) again."""
    assert stack.api.pause(dag_id) is True


@pytest.fixture(scope="module")
def cfg(events_stack: devstack.Stack) -> Config:
    return events_stack.config()


@pytest.fixture(scope="module")
def storage(events_stack: devstack.Stack) -> S3Storage:
    return events_stack.storage()


@pytest.fixture(scope="module")
def sqs(events_stack: devstack.Stack) -> Any:
    env = events_stack.env()
    return boto3.client(
        "sqs",
        endpoint_url=events_stack.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def upload(storage: S3Storage, cfg: Config, name: str, seed: int) -> str:
    key = f"{cfg.storage.landing_prefix}{name}"
    storage.put_bytes(key, write_batch(generate(200, seed=seed, start=START), "csv"))
    return key


def run_of_batch(stack: devstack.Stack, batch_id: str) -> DagRun:
    (run,) = [r for r in stack.api.dag_runs("ingest") if batch_id_for(r.run_id) == batch_id]
    return run


def batch_of(routed: follow.Routed) -> str:
    (part,) = [p for p in routed.dest_key.split("/") if p.startswith("batch=")]
    return part.removeprefix("batch=")


def copies_in(storage: S3Storage, cfg: Config, name: str) -> list[str]:
    """Every raw/ or quarantine/ object named like the landed file ``name``."""
    prefixes = (cfg.storage.raw_prefix, cfg.storage.quarantine_prefix)
    return [
        o.key
        for prefix in prefixes
        for o in storage.iter_objects(prefix)
        if o.key.rsplit("/", 1)[-1] == name
    ]


def _started(ti: dict[str, Any]) -> datetime | None:
    return datetime.fromisoformat(ti["start_date"]) if ti.get("start_date") else None


def test_notified_files_are_one_batch_processed_once(
    events_stack: devstack.Stack, cfg: Config, storage: S3Storage, sqs: Any
) -> None:
    assert events_stack.landing_queue_url and cfg.orchestration.arrival == "events"
    with explain_failure(events_stack):
        put_at = datetime.now().astimezone()
        keys = [upload(storage, cfg, f"burst-{n}.csv", seed=300 + n) for n in range(2)]
        routed = follow.wait_routed(storage, cfg, keys, TIMEOUT)
    assert all(r.valid for r in routed), [r.reason for r in routed]
    batches = {batch_of(r) for r in routed}
    assert len(batches) == 1, f"a burst is one batch: {batches}"
    run = run_of_batch(events_stack, batches.pop())
    assert run.run_type == "asset_triggered", "taken by a notification, not by the sweep"
    # each file once: exactly one copy, and the notifications are acknowledged (deleted)
    for key in keys:
        assert len(copies_in(storage, cfg, key.rsplit("/", 1)[-1])) == 1
    devstack.wait_for(
        lambda: queue_depth(sqs, events_stack.landing_queue_url) == 0,
        30,
        interval=0.5,
        what="the notifications to be deleted once their asset event was stored",
    )
    tis = events_stack.api.get_json(
        f"/api/v2/dags/ingest/dagRuns/{quote_plus(run.run_id)}/taskInstances"
    )["task_instances"]
    starts = [s for t in tis if t["task_id"].startswith("validate_") and (s := _started(t))]
    latency = (min(starts) - put_at).total_seconds()
    print(f"PUT -> validate running: {latency:.1f} s (settle 2 s included)")
    assert latency < 60


def _redeliver(sqs: Any, queue_url: str, bucket: str, key: str) -> None:
    """The notification S3 sent for ``key``, sent again (as SQS does after a lost delete)."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": 1}},
    }
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"Records": [record]}))


def test_a_redelivered_notification_makes_no_second_batch(
    events_stack: devstack.Stack, cfg: Config, storage: S3Storage, sqs: Any
) -> None:
    api = events_stack.api
    key = f"{cfg.storage.landing_prefix}burst-0.csv"  # routed by the previous test
    name = key.rsplit("/", 1)[-1]
    assert len(copies_in(storage, cfg, name)) == 1
    seen = {r.run_id for r in api.dag_runs("ingest")}
    claims_prefix = Layout.of(cfg).claims_prefix
    claims_before = {o.key for o in storage.iter_objects(claims_prefix)}
    with explain_failure(events_stack):
        _redeliver(sqs, events_stack.landing_queue_url, storage.bucket, key)

        def notified_run() -> DagRun | None:
            new = [
                r
                for r in api.dag_runs("ingest")
                if r.run_id not in seen and r.run_type == "asset_triggered" and r.finished
            ]
            return new[0] if new else None

        run = devstack.wait_for(notified_run, TIMEOUT, interval=1.0, what="the redelivery's run")
    states = {t.task_id: t.state for t in api.task_instances("ingest", run.run_id)}
    assert run.state == "success"
    assert states["take_batch"] == "skipped", states
    assert states["route"] == "skipped" and states["publish_raw"] == "skipped", states
    assert len(copies_in(storage, cfg, name)) == 1, "no second copy"
    claims = {o.key for o in storage.iter_objects(claims_prefix)}
    assert claims == claims_before, "no new claim"


def test_a_lost_notification_is_recovered_by_the_reconciler(
    events_stack: devstack.Stack, cfg: Config, storage: S3Storage, sqs: Any
) -> None:
    client, bucket = storage.client, storage.bucket
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=events_stack.landing_queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    with explain_failure(events_stack):
        # the notification is dropped on purpose: the bucket notifies nobody for this upload
        client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        try:
            key = upload(storage, cfg, "unnotified.csv", seed=400)
        finally:
            client.put_bucket_notification_configuration(
                Bucket=bucket,
                NotificationConfiguration=landing_notification(
                    queue_arn, cfg.storage.landing_prefix
                ),
            )
        (routed,) = follow.wait_routed(storage, cfg, [key], TIMEOUT)
    assert routed.valid, routed.reason
    run = run_of_batch(events_stack, batch_of(routed))
    assert run.run_type == "scheduled", "taken by the reconciler's sweep"
    assert len(copies_in(storage, cfg, "unnotified.csv")) == 1
