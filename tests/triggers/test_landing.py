"""The landing trigger against a real S3-compatible server, driven by its own event loop."""

from __future__ import annotations

import asyncio
import json

import pytest

from retrain.s3server import S3Server
from retrain.storage import S3Storage
from triggers.landing import LandingSensor, LandingTrigger

CONN_ID = "landing_test"


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch, s3_server: S3Server) -> str:
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return CONN_ID


def _trigger(storage: S3Storage, settle: float = 0.6) -> LandingTrigger:
    return LandingTrigger(
        bucket=storage.bucket,
        prefix="landing/",
        aws_conn_id=CONN_ID,
        poll_interval=0.1,
        settle_seconds=settle,
    )


async def _first_event(trigger: LandingTrigger, timeout: float) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    return await asyncio.wait_for(first(), timeout)


def test_serializes_to_its_import_path_and_kwargs() -> None:
    trigger = LandingTrigger(
        bucket="b", prefix="landing/", aws_conn_id="c", poll_interval=2.0, settle_seconds=3.0
    )
    path, kwargs = trigger.serialize()
    assert path == "triggers.landing.LandingTrigger"
    assert LandingTrigger(**kwargs).serialize() == (path, kwargs)


def test_fires_with_every_file_of_a_settled_burst(connection, storage: S3Storage) -> None:
    async def scenario() -> dict:
        task = asyncio.create_task(_first_event(_trigger(storage), timeout=20))
        for i in range(3):  # a burst: each upload lands inside the settle window
            storage.put_bytes(f"landing/part-{i}.csv", b"a,b\n1,2\n")
            await asyncio.sleep(0.2)
        storage.put_bytes("landing/folder/", b"")  # a folder marker is not a file
        return await task

    payload = asyncio.run(scenario())
    assert payload["status"] == "success"
    assert [f["key"] for f in payload["files"]] == [f"landing/part-{i}.csv" for i in range(3)]
    assert all(f["size"] == 8 and f["etag"] for f in payload["files"])


def test_waits_while_landing_is_empty(connection, storage: S3Storage) -> None:
    storage.put_bytes("raw/elsewhere.csv", b"x")  # other prefixes do not count
    with pytest.raises(TimeoutError):
        asyncio.run(_first_event(_trigger(storage, settle=0.1), timeout=1.5))


def test_sensor_returns_the_files_and_fails_loudly_on_error_events() -> None:
    sensor = LandingSensor(task_id="wait", bucket="b", prefix="landing/", aws_conn_id="c")
    files = [{"key": "landing/a.csv", "etag": "e", "size": 1}]
    assert sensor.execute_complete({}, {"status": "success", "files": files}) == files
    with pytest.raises(RuntimeError, match="landing/"):
        sensor.execute_complete({}, {"status": "error", "message": "boom"})
