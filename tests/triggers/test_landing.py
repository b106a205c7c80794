"""The landing trigger against a real S3-compatible server, driven by its own event loop."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from retrain.config import IngestConfig
from retrain.s3server import S3Server
from retrain.storage import S3Storage
from triggers.landing import LandingSensor, LandingTrigger

CONN_ID = "landing_test"
PATTERNS = IngestConfig().ignore_patterns
# Objects that are not data yet: their fate is "ignore" (retrain.keys), so they never fire.
NOT_DATA_YET = (
    "landing/x.csv.part",
    "landing/.hidden.csv",
    "landing/_tmp/y.csv",
    "landing/z.parquet.crdownload",
    "landing/folder/",
)


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


def _trigger(storage: S3Storage, settle: float = 0.6, grace: float = 0.0) -> LandingTrigger:
    return LandingTrigger(
        bucket=storage.bucket,
        prefix="landing/",
        aws_conn_id=CONN_ID,
        poll_interval=0.1,
        settle_seconds=settle,
        ignore_patterns=PATTERNS,
        startup_grace=grace,
    )


async def _first_event(trigger: LandingTrigger, timeout: float) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    return await asyncio.wait_for(first(), timeout)


def test_serializes_to_its_import_path_and_kwargs() -> None:
    trigger = LandingTrigger(
        bucket="b",
        prefix="landing/",
        aws_conn_id="c",
        poll_interval=2.0,
        settle_seconds=3.0,
        ignore_patterns=("*.part", ".*"),
    )
    path, kwargs = trigger.serialize()
    assert path == "triggers.landing.LandingTrigger"
    assert kwargs["ignore_patterns"] == ["*.part", ".*"]  # JSON-friendly in the trigger table
    json.dumps(kwargs)
    assert LandingTrigger(**kwargs).serialize() == (path, kwargs)
    assert LandingTrigger(**kwargs).ignore_patterns == ("*.part", ".*")


def test_sensor_hands_its_ignore_patterns_to_the_trigger() -> None:
    from airflow.sdk.exceptions import TaskDeferred

    sensor = LandingSensor(
        task_id="wait", bucket="b", prefix="landing/", aws_conn_id="c", ignore_patterns=PATTERNS
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["ignore_patterns"] == list(PATTERNS)


def test_fires_with_every_file_of_a_settled_burst(connection, storage: S3Storage) -> None:
    async def scenario() -> dict:
        task = asyncio.create_task(_first_event(_trigger(storage), timeout=20))
        for i in range(3):  # a burst: each upload lands inside the settle window
            storage.put_bytes(f"landing/part-{i}.csv", b"a,b\n1,2\n")
            await asyncio.sleep(0.2)
        storage.put_bytes("landing/folder/", b"")  # a folder marker is not a file
        return await task

    before = datetime.now(UTC) - timedelta(seconds=5)  # moto stamps whole seconds
    payload = asyncio.run(scenario())
    assert payload["status"] == "success"
    assert [f["key"] for f in payload["files"]] == [f"landing/part-{i}.csv" for i in range(3)]
    assert all(f["size"] == 8 and f["etag"] and '"' not in f["etag"] for f in payload["files"])
    for f in payload["files"]:
        when = datetime.fromisoformat(f["last_modified"])
        assert when.utcoffset() == timedelta(0)  # ISO 8601, UTC
        assert before <= when <= datetime.now(UTC) + timedelta(seconds=5)
    json.dumps(payload)  # the event is stored as JSON by the triggerer


def test_temporary_and_hidden_uploads_alone_never_fire(connection, storage: S3Storage) -> None:
    """Bounded wait with nothing but not-yet-data in landing/, then a real file ends it: the
    same trigger was polling all along and the batch holds only the real file."""
    for key in NOT_DATA_YET:
        storage.put_bytes(key, b"" if key.endswith("/") else b"a,b\n1,2\n")

    async def scenario() -> tuple[bool, dict]:
        task = asyncio.create_task(_first_event(_trigger(storage, settle=0.1), timeout=20))
        done, _ = await asyncio.wait({task}, timeout=1.5)  # ~10 settle windows, ~15 listings
        fired_early = bool(done)
        storage.put_bytes("landing/real.csv", b"a,b\n1,2\n")
        return fired_early, await task

    fired_early, payload = asyncio.run(scenario())
    assert not fired_early
    assert [f["key"] for f in payload["files"]] == ["landing/real.csv"]
    assert all(storage.exists(key) for key in NOT_DATA_YET)  # left untouched


def test_a_normal_file_next_to_temporary_uploads_fires_alone(
    connection, storage: S3Storage
) -> None:
    for key in NOT_DATA_YET:
        storage.put_bytes(key, b"" if key.endswith("/") else b"a,b\n1,2\n")
    storage.put_bytes("landing/2026/11/a.csv", b"a,b\n1,2\n")
    payload = asyncio.run(_first_event(_trigger(storage, settle=0.2), timeout=20))
    assert [f["key"] for f in payload["files"]] == ["landing/2026/11/a.csv"]


def test_keys_to_quarantine_are_kept_for_the_ingest_dag(connection, storage: S3Storage) -> None:
    """Unsafe, too long and empty objects must reach ingest to be moved out of landing/."""
    kept = [
        "landing/../raw/escape.csv",
        "landing/a//b.csv",
        "landing/bad\x01name.csv",  # moto's server refuses "\n" in a key, AWS takes it
        "landing/x\u202evsc.exe",
        "landing/empty.csv",
        "landing/" + "x" * 300 + ".csv",
    ]
    for key in kept:
        storage.put_bytes(key, b"" if key.endswith("empty.csv") else b"a,b\n1,2\n")
    storage.put_bytes("landing/x.csv.part", b"a,b\n")
    payload = asyncio.run(_first_event(_trigger(storage, settle=0.2), timeout=20))
    assert sorted(f["key"] for f in payload["files"]) == sorted(kept)
    assert {f["key"]: f["size"] for f in payload["files"]}["landing/empty.csv"] == 0


def test_waits_while_landing_is_empty(connection, storage: S3Storage) -> None:
    storage.put_bytes("raw/elsewhere.csv", b"x")  # other prefixes do not count
    with pytest.raises(TimeoutError):
        asyncio.run(_first_event(_trigger(storage, settle=0.1), timeout=1.5))


def test_sensor_returns_the_files_and_fails_loudly_on_error_events() -> None:
    sensor = LandingSensor(task_id="wait", bucket="b", prefix="landing/", aws_conn_id="c")
    files = [
        {
            "key": "landing/a.csv",
            "etag": "e",
            "size": 1,
            "last_modified": "2026-11-11T00:00:00+00:00",
        }
    ]
    assert sensor.execute_complete({}, {"status": "success", "files": files}) == [files]
    with pytest.raises(RuntimeError, match="landing/"):
        sensor.execute_complete({}, {"status": "error", "message": "boom"})


def test_sensor_splits_the_batch_for_the_parallel_validate_tasks() -> None:
    sensor = LandingSensor(
        task_id="wait", bucket="b", prefix="landing/", aws_conn_id="c", split_into=2
    )
    files = [
        {"key": f"landing/{i}.csv", "etag": "e", "size": 10 + i, "last_modified": "t"}
        for i in range(5)
    ]
    chunks = sensor.execute_complete({}, {"status": "success", "files": files})
    assert len(chunks) == 2
    assert sorted(f["key"] for c in chunks for f in c) == sorted(f["key"] for f in files)


def test_files_waiting_at_start_fire_only_after_the_startup_grace(
    connection, storage: S3Storage
) -> None:
    """A backlog must not fire while the deferring task may still be reporting back."""
    storage.put_bytes("landing/waiting.csv", b"a,b\n1,2\n")
    start = time.monotonic()
    payload = asyncio.run(_first_event(_trigger(storage, settle=0.1, grace=1.5), timeout=20))
    assert time.monotonic() - start >= 1.5
    assert [f["key"] for f in payload["files"]] == ["landing/waiting.csv"]
