"""The SQS notification trigger against the real S3-compatible server: the bucket notifies its
own SQS queue (as devstack configures it in events mode), and the trigger's receive loop and
its ack-mode producer run on their own event loop."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import boto3
import pytest
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

from retrain.config import IngestConfig
from retrain.local.devstack import landing_notification, queue_depth
from retrain.local.s3server import S3Server
from retrain.storage import S3Storage
from triggers.landing_events import (
    LandingQueueProducer,
    LandingQueueTrigger,
    gather_batches,
)

CONN_ID = "landing_test"  # registered by the connection fixture (conftest.py)
PATTERNS = IngestConfig().ignore_patterns


@pytest.fixture
def sqs(s3_server: S3Server) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=s3_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def queue_url(storage: S3Storage, sqs: Any) -> str:
    """A queue notified of every object created under landing/ of the test's bucket."""
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    storage.client.put_bucket_notification_configuration(
        Bucket=storage.bucket, NotificationConfiguration=landing_notification(arn, "landing/")
    )
    return url


def _trigger(storage: S3Storage, queue_url: str, **kwargs: Any) -> LandingQueueTrigger:
    return LandingQueueTrigger(
        queue_url=queue_url,
        aws_conn_id=CONN_ID,
        bucket=storage.bucket,
        prefix="landing/",
        ignore_patterns=PATTERNS,
        poll_interval=kwargs.pop("poll_interval", 0.1),
        settle_seconds=kwargs.pop("settle_seconds", 0.5),
        **kwargs,
    )


async def _first_batch(producer: LandingQueueProducer, timeout: float) -> tuple[dict, list[str]]:
    stream = producer.open_stream()
    try:
        return await asyncio.wait_for(anext(stream), timeout)
    finally:
        await stream.aclose()


def test_serializes_to_its_import_path_and_shares_one_stream_per_queue() -> None:
    trigger = LandingQueueTrigger(
        queue_url="http://q/1", aws_conn_id="c", bucket="b", prefix="landing/", max_batch_files=7
    )
    path, kwargs = trigger.serialize()
    assert path == "triggers.landing_events.LandingQueueTrigger"
    again = LandingQueueTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert again.shared_stream_key() == ("retrain.landing-queue", "http://q/1")
    # ack mode: the triggerer deletes messages only once their asset event is stored
    assert isinstance(
        LandingQueueTrigger.create_shared_stream_producer(kwargs), LandingQueueProducer
    )
    assert trigger.visibility_timeout > trigger.max_settle_seconds


def test_a_settled_burst_is_one_batch_of_decoded_keys(
    connection, storage: S3Storage, queue_url: str, sqs: Any
) -> None:
    """Notifications arrive as S3 sends them (TestEvent first, keys URL-encoded); a burst is one
    batch, noise is deleted at once, the batch's own messages stay until acknowledged."""
    storage.put_bytes("raw/elsewhere.csv", b"x")  # outside landing/: not notified
    storage.put_bytes("landing/a b+c.csv", b"1")
    storage.put_bytes("landing/sub/d.parquet", b"2")
    storage.put_bytes("landing/e.csv.part", b"3")  # not data yet: ignored
    producer = LandingQueueProducer(_trigger(storage, queue_url))

    async def scenario() -> tuple[dict, list[str]]:
        try:
            return await _first_batch(producer, timeout=20)
        finally:
            await producer.aclose()

    payload, handles = asyncio.run(scenario())
    assert sorted(payload["keys"]) == ["landing/a b+c.csv", "landing/sub/d.parquet"]
    assert payload["messages"] == 2 and payload["reason"] == "quiet"
    assert len(handles) == 2
    # the TestEvent and the .part notification are gone, the batch's two are in flight
    assert queue_depth(sqs, queue_url) == 2


def test_advance_deletes_only_what_was_stored(
    connection, storage: S3Storage, queue_url: str, sqs: Any
) -> None:
    storage.put_bytes("landing/one.csv", b"1")
    producer = LandingQueueProducer(_trigger(storage, queue_url))

    async def scenario() -> tuple[int, int]:
        try:
            _, handles = await _first_batch(producer, timeout=20)
            await producer.advance([AdvanceItem(handles, AdvanceOutcome(acked=0, failed=1))])
            not_stored = queue_depth(sqs, queue_url)
            await producer.advance([AdvanceItem(handles, AdvanceOutcome(acked=1, failed=0))])
            return not_stored, queue_depth(sqs, queue_url)
        finally:
            await producer.aclose()

    after_failure, after_ack = asyncio.run(scenario())
    assert after_failure == 1, "a batch whose event was not stored stays for redelivery"
    assert after_ack == 0


def test_the_standalone_run_fires_and_then_deletes(
    connection, storage: S3Storage, queue_url: str, sqs: Any
) -> None:
    storage.put_bytes("landing/solo.csv", b"1")
    trigger = _trigger(storage, queue_url)

    async def scenario() -> tuple[dict, int]:
        runner = trigger.run()
        event = await asyncio.wait_for(anext(runner), 20)
        held = queue_depth(sqs, queue_url)
        # resuming the generator deletes; it then waits for more, so stop it there
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(runner), 1.5)
        await runner.aclose()
        return event.payload, held

    payload, held = asyncio.run(scenario())
    assert payload["keys"] == ["landing/solo.csv"]
    assert held == 1
    assert queue_depth(sqs, queue_url) == 0


def test_a_trickle_is_taken_at_the_maximum_wait(
    connection, storage: S3Storage, queue_url: str
) -> None:
    trigger = _trigger(storage, queue_url, settle_seconds=1.0, max_settle_seconds=2.0)
    producer = LandingQueueProducer(trigger)

    async def scenario() -> tuple[float, float, dict]:
        async def trickle() -> None:
            for i in range(8):
                await asyncio.to_thread(storage.put_bytes, f"landing/t{i}.csv", b"x")
                await asyncio.sleep(0.5)

        first = time.monotonic()
        task = asyncio.create_task(trickle())
        try:
            payload, _ = await _first_batch(producer, timeout=20)
            return first, time.monotonic(), payload
        finally:
            task.cancel()
            await producer.aclose()

    first, fired, payload = asyncio.run(scenario())
    assert payload["reason"] == "max_settle"
    assert 2.0 <= fired - first < 5.0
    assert 3 <= len(payload["keys"]) < 8


def test_gather_deletes_a_message_that_is_not_a_notification(
    connection, storage: S3Storage, queue_url: str, sqs: Any
) -> None:
    sqs.send_message(QueueUrl=queue_url, MessageBody="hello")
    storage.put_bytes("landing/real.csv", b"1")
    trigger = _trigger(storage, queue_url)

    async def scenario() -> dict:
        from aiobotocore.session import get_session

        from triggers.landing import client_kwargs_from_connection

        kwargs = await client_kwargs_from_connection(CONN_ID, service="sqs")
        async with get_session().create_client("sqs", **kwargs) as client:
            stream = gather_batches(client, trigger)
            try:
                payload, _ = await asyncio.wait_for(anext(stream), 20)
            finally:
                await stream.aclose()
            return payload

    payload = asyncio.run(scenario())
    assert payload["keys"] == ["landing/real.csv"]
    assert queue_depth(sqs, queue_url) == 1  # the batch's message only: "hello" was deleted


_PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder="dags")
dag = bag.dags["ingest"]
schedule = dag.schedule
(asset,) = schedule.asset_condition.objects
(watcher,) = asset.watchers
print(json.dumps({
    "errors": bag.import_errors,
    "schedule": type(schedule).__name__,
    "every_s": schedule.timetable.delta.total_seconds(),
    "asset": asset.name,
    "trigger": watcher.trigger.serialize(),
    "tasks": [t.task_id for t in dag.tasks],
}))
"""


def test_the_ingest_dag_in_events_mode_watches_the_queue_and_reconciles_on_a_timer() -> None:
    """Parsed in a process of its own, with the events-mode settings in its environment."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root / "dags"), str(root / "src"), str(root)]),
        "RETRAIN__ORCHESTRATION__ARRIVAL": "events",
        "RETRAIN__ORCHESTRATION__QUEUE_URL": "http://127.0.0.1:9/123456789012/landing",
        "RETRAIN__ORCHESTRATION__RECONCILE_MINUTES": "7",
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert found["schedule"] == "AssetOrTimeSchedule"
    assert found["every_s"] == 7 * 60
    assert found["asset"] == "landing"
    path, kwargs = found["trigger"]
    assert path == "triggers.landing_events.LandingQueueTrigger"
    assert kwargs["queue_url"] == "http://127.0.0.1:9/123456789012/landing"
    assert kwargs["prefix"] == "landing/" and kwargs["max_batch_files"] == 500
    assert found["tasks"] == [
        "take_batch",
        "validate_0",
        "validate_1",
        "validate_large",
        "route",
        "publish_raw",
    ]
