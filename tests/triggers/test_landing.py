"""The landing trigger against a real S3-compatible server, driven by its own event loop."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import triggers.landing as landing
from retrain.config import ConfigError, IngestConfig, parse_config
from retrain.storage import S3Storage
from triggers.landing import STARTUP_GRACE_S, LandingSensor, LandingTrigger, Pace

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CONN_ID = "landing_test"  # registered by the connection fixture (conftest.py)
PATTERNS = IngestConfig().ignore_patterns
# Objects that are not data yet: their fate is "ignore" (retrain.keys), so they never fire.
NOT_DATA_YET = (
    "landing/x.csv.part",
    "landing/.hidden.csv",
    "landing/_tmp/y.csv",
    "landing/z.parquet.crdownload",
    "landing/folder/",
)


def _trigger(
    storage: S3Storage, settle: float = 0.6, grace: float = 0.0, **kwargs
) -> LandingTrigger:
    return LandingTrigger(
        bucket=storage.bucket,
        prefix="landing/",
        aws_conn_id=CONN_ID,
        poll_interval=kwargs.pop("poll_interval", 0.1),
        settle_seconds=settle,
        ignore_patterns=PATTERNS,
        startup_grace=grace,
        **kwargs,
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
        idle_poll_interval=20.0,
        max_settle_seconds=40.0,
        max_batch_files=7,
    )
    path, kwargs = trigger.serialize()
    assert path == "triggers.landing.LandingTrigger"
    assert kwargs["ignore_patterns"] == ["*.part", ".*"]  # JSON-friendly in the trigger table
    assert (kwargs["idle_poll_interval"], kwargs["max_settle_seconds"]) == (20.0, 40.0)
    assert kwargs["max_batch_files"] == 7
    json.dumps(kwargs)
    assert LandingTrigger(**kwargs).serialize() == (path, kwargs)
    assert LandingTrigger(**kwargs).ignore_patterns == ("*.part", ".*")


# What the first version stored in Airflow's trigger table (its serialize(), verbatim): a
# trigger deferred before an upgrade is re-created from this by the new triggerer.
FIRST_VERSION_KWARGS = {
    "bucket": "b",
    "prefix": "landing/",
    "aws_conn_id": "c",
    "poll_interval": 5.0,
    "settle_seconds": 5.0,
    "startup_grace": 10.0,
    "ignore_patterns": [".*", "*.part"],
}


def test_a_trigger_serialized_by_the_first_version_keeps_its_timing() -> None:
    trigger = LandingTrigger(**FIRST_VERSION_KWARGS)
    _, kwargs = trigger.serialize()
    assert {k: kwargs[k] for k in FIRST_VERSION_KWARGS} == FIRST_VERSION_KWARGS
    pace = Pace(trigger, started=0.0)
    # no backoff below its own poll, the same quiet period, the same grace
    assert (pace.poll, pace.idle, pace.settle, pace.grace_ends) == (5.0, 5.0, 5.0, 10.0)
    assert pace.max_batch == 0  # no cap: the whole listing, as before


def test_a_first_version_trigger_fires_on_the_real_server(connection, storage: S3Storage) -> None:
    old = {**FIRST_VERSION_KWARGS, "bucket": storage.bucket, "aws_conn_id": CONN_ID}
    old |= {"poll_interval": 0.1, "settle_seconds": 0.3, "startup_grace": 0.0}
    storage.put_bytes("landing/old.csv", b"a,b\n1,2\n")
    payload = asyncio.run(_first_event(LandingTrigger(**old), timeout=20))
    assert [f["key"] for f in payload["files"]] == ["landing/old.csv"]
    assert payload["status"] == "success"


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


class RecordingTI:
    """What execute_complete needs of the task instance: a place to push XComs."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_an_old_trigger_event_resumes_the_sensor_into_the_chunk_xcoms() -> None:
    """A trigger serialized before split_into (a deployment upgraded mid-wait) fires a plain
    event: execute_complete hands the batch on exactly as the new trigger does."""
    sensor = LandingSensor(
        task_id="wait", bucket="b", prefix="landing/", aws_conn_id="c", split_into=2
    )
    files = [
        {"key": f"landing/{i}.csv", "etag": "e", "size": 10 + i, "last_modified": "t"}
        for i in range(5)
    ]
    ti = RecordingTI()
    assert sensor.execute_complete({"ti": ti}, {"status": "success", "files": files}) is None
    assert set(ti.pushed) == {"chunk_0", "chunk_1"}
    chunks = list(ti.pushed.values())
    assert sorted(f["key"] for c in chunks for f in c) == sorted(f["key"] for f in files)
    with pytest.raises(RuntimeError, match="landing/"):
        sensor.execute_complete({"ti": ti}, {"status": "error", "message": "boom"})


def test_the_trigger_ends_its_task_with_the_chunks_on_the_real_server(
    connection, storage: S3Storage
) -> None:
    """No worker resumes the sensor: the event is a TaskSuccessEvent carrying one XCom per
    validate task (an empty list for a task with nothing to do)."""
    from airflow.triggers.base import TaskSuccessEvent

    storage.put_bytes("landing/a.csv", b"a,b\n1,2\n")
    trigger = _trigger(storage, settle=0.2, split_into=3)
    assert trigger.serialize()[1]["split_into"] == 3

    async def first():
        async for event in trigger.run():
            return event
        raise AssertionError("trigger ended without an event")

    event = asyncio.run(asyncio.wait_for(first(), 20))
    assert isinstance(event, TaskSuccessEvent)
    assert set(event.xcoms) == {"chunk_0", "chunk_1", "chunk_2"}
    assert [f["key"] for f in event.xcoms["chunk_0"]] == ["landing/a.csv"]
    assert event.xcoms["chunk_1"] == event.xcoms["chunk_2"] == []


def test_files_waiting_at_start_fire_only_after_the_startup_grace(
    connection, storage: S3Storage
) -> None:
    """A backlog must not fire while the deferring task may still be reporting back."""
    storage.put_bytes("landing/waiting.csv", b"a,b\n1,2\n")
    start = time.monotonic()
    payload = asyncio.run(_first_event(_trigger(storage, settle=0.1, grace=1.5), timeout=20))
    assert time.monotonic() - start >= 1.5
    assert [f["key"] for f in payload["files"]] == ["landing/waiting.csv"]


# -- how the new trigger paces itself --------------------------------------------------------

BODY = b"a,b\n1,2\n"


def _listed(key: str, when: str = "2026-11-11T00:00:00+00:00") -> tuple[str, str, int, str]:
    return (key, "e", 8, when)


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int]]:
    """(monotonic time, number of files) of every listing the trigger takes."""
    seen: list[tuple[float, int]] = []
    real = landing.list_landing

    async def recording(*args, **kwargs):
        listing = await real(*args, **kwargs)
        seen.append((time.monotonic(), len(listing)))
        return listing

    monkeypatch.setattr(landing, "list_landing", recording)
    return seen


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def test_pace_backs_off_while_idle_and_ends_the_quiet_period_on_time() -> None:
    trigger = LandingTrigger(
        bucket="b",
        prefix="landing/",
        aws_conn_id="c",
        poll_interval=0.5,
        idle_poll_interval=4.0,
        settle_seconds=0.7,
        startup_grace=0.0,
    )
    pace, now, pauses = Pace(trigger, started=0.0), 0.0, []
    for _ in range(6):
        assert pace.observe((), now) == ""
        pauses.append(pace.next_pause(now))
        now += pauses[-1]
    assert pauses == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # doubling up to the idle ceiling
    arrived = (_listed("landing/a.csv"),)
    assert pace.observe(arrived, now) == ""  # a change: fast again, the quiet period starts
    assert pace.next_pause(now) == 0.5
    assert pace.observe(arrived, now + 0.5) == ""
    assert pace.next_pause(now + 0.5) == pytest.approx(0.2)  # cut to end the quiet period
    assert pace.observe(arrived, now + 0.7) == "quiet"


def test_take_batch_takes_the_oldest_first_then_by_key() -> None:
    listing = [
        _listed("landing/a.csv", "2026-11-11T00:00:02+00:00"),
        _listed("landing/b.csv", "2026-11-11T00:00:00.500000+00:00"),
        _listed("landing/c.csv", "2026-11-11T00:00:01+00:00"),
        _listed("landing/d.csv", "2026-11-11T00:00:01+00:00"),
    ]
    assert [k for k, *_ in landing.take_batch(listing, 3)] == [
        "landing/b.csv",
        "landing/c.csv",
        "landing/d.csv",
    ]
    assert len(landing.take_batch(listing, 0)) == len(landing.take_batch(listing, 9)) == 4


def test_backs_off_while_idle_and_polls_fast_once_files_arrive(
    connection, storage: S3Storage, listings: list[tuple[float, int]]
) -> None:
    trigger = _trigger(storage, settle=0.5, poll_interval=0.05, idle_poll_interval=0.4)

    async def scenario() -> tuple[float, float, dict]:
        task = asyncio.create_task(_first_event(trigger, timeout=20))
        await _until(lambda: len(listings) >= 7, 10, "seven idle listings")
        storage.put_bytes("landing/a.csv", BODY)
        put_at = time.monotonic()
        payload = await task
        return put_at, time.monotonic(), payload

    put_at, fired_at, payload = asyncio.run(scenario())
    assert [f["key"] for f in payload["files"]] == ["landing/a.csv"]
    idle = [t for t, n in listings if t < put_at]
    gaps = [b - a for a, b in itertools.pairwise(idle)]
    # the back-off starts from the fast pause (the first gap may also hold the client's
    # connection set-up: 0.53 s once on a busy machine, then 0.1, 0.2, 0.4)
    assert min(gaps[:2]) < 0.2, f"the first pauses are the fast ones: {gaps}"
    assert 0.35 <= gaps[-1] < 0.8, f"backed off to the 0.4 s ceiling: {gaps}"
    busy = [t for t, n in listings if n]
    busy_gaps = [b - a for a, b in itertools.pairwise(busy)]
    assert len(busy) >= 4 and max(busy_gaps) < 0.2, f"fast while files wait: {busy_gaps}"
    # noticed within one idle pause, then taken after the 0.5 s quiet period
    assert 0.5 <= fired_at - put_at < 0.4 + 0.5 + 1.0


def test_a_burst_is_one_batch_taken_soon_after_its_last_upload(
    connection, storage: S3Storage
) -> None:
    trigger = _trigger(storage, settle=0.5, poll_interval=0.05, idle_poll_interval=0.2)

    async def scenario() -> tuple[float, float, bool, dict]:
        task = asyncio.create_task(_first_event(trigger, timeout=20))
        for i in range(5):  # 0.15 s apart: shorter than the quiet period
            storage.put_bytes(f"landing/burst-{i}.csv", BODY)
            done, _ = await asyncio.wait({task}, timeout=0.15)
        last_put = time.monotonic()
        fired_early = bool(done)
        payload = await task
        return last_put, time.monotonic(), fired_early, payload

    last_put, fired_at, fired_early, payload = asyncio.run(scenario())
    assert not fired_early
    assert [f["key"] for f in payload["files"]] == [f"landing/burst-{i}.csv" for i in range(5)]
    assert payload["reason"] == "quiet" and payload["left"] == 0
    assert 0.5 - 0.15 <= fired_at - last_put < 0.5 + 1.0  # the last upload + the quiet period


def test_a_steady_trickle_is_taken_at_the_maximum_wait(connection, storage: S3Storage) -> None:
    trigger = _trigger(
        storage, settle=0.5, poll_interval=0.05, idle_poll_interval=0.1, max_settle_seconds=1.5
    )

    async def scenario() -> tuple[float, float, int, dict]:
        task = asyncio.create_task(_first_event(trigger, timeout=20))
        first_put, n = 0.0, 0
        while not task.done():  # a new file every 0.2 s: never 0.5 s quiet
            assert n < 50, "the trickle was never cut"
            storage.put_bytes(f"landing/t-{n:03d}.csv", BODY)
            first_put, n = first_put or time.monotonic(), n + 1
            await asyncio.wait({task}, timeout=0.2)
        return first_put, time.monotonic(), n, await task

    first_put, fired_at, uploaded, payload = asyncio.run(scenario())
    assert payload["reason"] == "max_settle"
    assert 1.5 <= fired_at - first_put < 1.5 + 1.0
    taken = [f["key"] for f in payload["files"]]
    assert 5 <= len(taken) <= uploaded
    assert taken == [f"landing/t-{i:03d}.csv" for i in range(len(taken))]


def test_a_full_batch_is_taken_at_once_oldest_first(connection, storage: S3Storage) -> None:
    for key in ("landing/z-old-1.csv", "landing/z-old-2.csv"):
        storage.put_bytes(key, BODY)
    old = max(o.last_modified for o in storage.iter_objects("landing/"))

    async def next_second() -> None:  # S3 times have whole seconds: the new files come later
        await _until(lambda: datetime.now(UTC) >= old + timedelta(seconds=1), 5, "a new second")

    asyncio.run(next_second())
    for i in (1, 2, 3):
        storage.put_bytes(f"landing/a-new-{i}.csv", BODY)
    assert min(o.last_modified for o in storage.iter_objects("landing/a-")) > old
    trigger = _trigger(storage, settle=30.0, max_settle_seconds=60.0, max_batch_files=3)
    start = time.monotonic()
    payload = asyncio.run(_first_event(trigger, timeout=20))
    assert time.monotonic() - start < 5, "full: taken without waiting for the quiet period"
    assert [f["key"] for f in payload["files"]] == [
        "landing/a-new-1.csv",
        "landing/z-old-1.csv",
        "landing/z-old-2.csv",
    ]
    assert (payload["reason"], payload["left"]) == ("full", 2)


def test_the_sensor_starts_in_the_triggerer_without_the_startup_grace() -> None:
    from airflow.sdk.exceptions import TaskDeferred

    timing = {
        "poll_interval": 0.3,
        "idle_poll_interval": 3.0,
        "settle_seconds": 0.7,
        "max_settle_seconds": 9.0,
        "max_batch_files": 11,
    }
    common = {"bucket": "b", "prefix": "landing/", "aws_conn_id": "c", **timing}
    sensor = LandingSensor(task_id="wait", wait_timeout=timedelta(hours=2), **common)
    assert sensor.start_from_trigger
    args = sensor.start_trigger_args
    assert args.trigger_cls == "triggers.landing.LandingTrigger"
    assert (args.next_method, args.timeout) == ("execute_complete", timedelta(hours=2))
    assert args.trigger_kwargs == {**sensor.trigger().serialize()[1], "startup_grace": 0.0}
    assert {k: args.trigger_kwargs[k] for k in timing} == timing
    json.dumps(args.trigger_kwargs)
    assert LandingTrigger(**args.trigger_kwargs).serialize()[1] == args.trigger_kwargs

    in_worker = LandingSensor(task_id="wait", start_from_trigger=False, **common)
    assert not in_worker.start_from_trigger
    with pytest.raises(TaskDeferred) as deferred:
        in_worker.execute({})
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["startup_grace"] == STARTUP_GRACE_S  # a worker deferred it: the race exists
    assert {k: kwargs[k] for k in timing} == timing


def test_the_ingest_dag_hands_the_configured_timing_to_the_scheduler() -> None:
    """What the scheduler reads (the serialized DAG) starts the wait in the triggerer with
    [orchestration]'s timing."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.trigger import Trigger
    from airflow.serialization.serialized_objects import DagSerialization

    from retrain.config import load_config

    orch = load_config().orchestration  # what the DAG file loads
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "ingest_dag.py"))
    assert bag.import_errors == {}
    dag = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["ingest"]))
    task = dag.get_task("wait_for_files")
    assert task.start_from_trigger
    args = task.start_trigger_args
    # the scheduler stores these as the trigger row; the triggerer reads them back from it
    kwargs = Trigger(classpath=args.trigger_cls, kwargs=args.trigger_kwargs).kwargs
    assert LandingTrigger(**kwargs).serialize()[1] == kwargs
    assert kwargs["startup_grace"] == 0.0
    for name in (
        "poll_interval",
        "idle_poll_interval",
        "settle_seconds",
        "max_settle_seconds",
        "max_batch_files",
    ):
        assert kwargs[name] == getattr(orch, name), name


def _shipped_raw() -> dict:
    import tomllib

    return tomllib.loads((PROJECT_ROOT / "retrain.toml").read_text())


@pytest.mark.parametrize(
    "bad",
    [
        {"poll_interval": 0.0},
        {"idle_poll_interval": -1.0},
        {"settle_seconds": -0.5},
        {"settle_seconds": 5.0, "max_settle_seconds": 2.0},
        {"max_batch_files": -1},
    ],
)
def test_the_config_rejects_timings_the_trigger_cannot_use(bad: dict) -> None:
    raw = _shipped_raw()
    raw["orchestration"] = {**raw["orchestration"], **bad}
    with pytest.raises(ConfigError, match=r"\[orchestration\]"):
        parse_config(raw, env={})


def test_the_shipped_timing_and_its_overrides() -> None:
    orch = parse_config(_shipped_raw(), env={}).orchestration
    assert orch.poll_interval <= orch.idle_poll_interval
    assert orch.settle_seconds <= orch.max_settle_seconds and orch.max_batch_files >= 1
    env = {
        "RETRAIN__ORCHESTRATION__MAX_BATCH_FILES": "3",
        "RETRAIN__ORCHESTRATION__IDLE_POLL_INTERVAL": "7",
    }
    orch = parse_config(_shipped_raw(), env=env).orchestration
    assert (orch.max_batch_files, orch.idle_poll_interval) == (3, 7.0)
