"""Deferrable wait for files under the landing prefix, settled into one batch.

The stock ``S3KeySensor`` imports the whole amazon provider at DAG parse time and fires as soon as
one key matches. This trigger is lighter (aiobotocore is imported only inside ``run``, in the
triggerer) and waits until the listing has stopped changing, so a burst of uploads becomes one
batch. It has no memory of its own: the ingest DAG empties ``landing/`` by routing every file to
``raw/`` or ``quarantine/``, so whatever is still there is unprocessed. Keys whose fate is
"ignore" (:mod:`retrain.keys`: folder markers, hidden and temporary upload names) stay in
``landing/`` and are left out of the listing, so they never start a batch; unsafe, too-long and
empty keys are kept, for the ingest DAG to quarantine.

How it waits (every figure is a keyword argument, from ``[orchestration]`` of the config):

- **idle**: while ``landing/`` is empty and unchanged, the pause between listings doubles from
  ``poll_interval`` up to ``idle_poll_interval`` (one LIST request per pause);
- **arriving**: any change of the listing (a new, changed or removed object) brings the pause
  back to ``poll_interval``, and the batch is taken as soon as the listing has been unchanged
  for ``settle_seconds`` (the quiet period; the last pause is cut to end exactly then);
- **bounded**: a listing that keeps changing (a steady trickle) is taken anyway
  ``max_settle_seconds`` after its first file was seen, and a listing of ``max_batch_files`` or
  more is taken at once. A batch holds at most ``max_batch_files`` files, the oldest first (by
  LastModified, then key); the rest stay in ``landing/`` for the next run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, StartTriggerArgs, TaskSuccessEvent, TriggerEvent

from retrain.batching import batch_reason, chunk_xcoms
from retrain.keys import classify_landing_key
from retrain.layout import format_last_modified

# (key, etag, size, last_modified as ISO 8601 UTC) of one landed object
Listed = tuple[str, str, int, str]


# Never fire sooner than this after the trigger starts, when a worker deferred the task. When
# files are already waiting as the sensor defers, an event within a few seconds can reach the
# scheduler before the deferring task process has reported back; the scheduler then sees
# "success" for a TI it already re-queued and marks it for retry (seen on Airflow 3.3.2 on a
# loaded 2-core machine: three tries, a failed run). A sensor that has been waiting is past the
# grace, so this only delays files that are there (or arrive) in the trigger's first seconds.
# LandingSensor avoids the race instead of waiting it out: by default the scheduler defers it
# straight into the triggerer (start_from_trigger), no task process runs before the wait, and
# its trigger gets no grace (benchmarks/arrival_latency.py checks a backlog on the real stack:
# no retries). Only a trigger deferred from a worker (start_from_trigger=False) keeps this one.
STARTUP_GRACE_S = 10.0

# Defaults of the keyword arguments added after the first version. A trigger serialized by that
# version (poll_interval, settle_seconds, startup_grace, no others) deserializes with these and
# keeps its old behaviour: the idle ceiling is never below its poll_interval (so a 5 s poll stays
# a 5 s poll), the quiet period is its settle_seconds as before, no batch cap.
DEFAULT_IDLE_POLL_S = 1.0
DEFAULT_MAX_SETTLE_S = 30.0
_EPSILON = 1e-6


class LandingTrigger(BaseTrigger):
    """Fires once with the settled listing of ``s3://bucket/prefix`` when it is not empty.

    With ``split_into`` (the number of validate tasks), it ends its task itself: a
    ``TaskSuccessEvent`` whose XComs are the batch split for the validate tasks
    (:func:`retrain.batching.chunk_xcoms`), so no worker process resumes the sensor between the
    batch and its validation. Without (a trigger serialized before ``split_into`` existed), the
    event's payload, for the sensor's ``execute_complete``: ``{"status": "success", "files":
    [{"key", "etag", "size", "last_modified"}, ...] (sorted by key), "left": <files left for the
    next run>, "reason": "quiet" | "max_settle" | "full"}``.
    """

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        aws_conn_id: str,
        poll_interval: float = 0.5,
        settle_seconds: float = 0.5,
        ignore_patterns: list[str] | tuple[str, ...] = (),
        startup_grace: float = STARTUP_GRACE_S,
        idle_poll_interval: float = DEFAULT_IDLE_POLL_S,
        max_settle_seconds: float = DEFAULT_MAX_SETTLE_S,
        max_batch_files: int = 0,
        split_into: int = 0,
        large_file_bytes: int | None = None,
    ) -> None:
        super().__init__()
        self.bucket = bucket
        self.prefix = prefix
        self.aws_conn_id = aws_conn_id
        self.poll_interval = float(poll_interval)
        self.settle_seconds = float(settle_seconds)
        self.startup_grace = float(startup_grace)
        self.ignore_patterns = tuple(ignore_patterns)
        self.idle_poll_interval = float(idle_poll_interval)
        self.max_settle_seconds = float(max_settle_seconds)
        self.max_batch_files = int(max_batch_files)  # 0: no cap
        self.split_into = int(split_into)  # 0: resume the sensor with the batch (old triggers)
        # Files this big go to the heavy validate task (chunk_xcoms' "chunk_large"); None, as in
        # a trigger serialized before the threshold existed: the shares only, as it always did.
        self.large_file_bytes = None if large_file_bytes is None else int(large_file_bytes)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "bucket": self.bucket,
                "prefix": self.prefix,
                "aws_conn_id": self.aws_conn_id,
                "poll_interval": self.poll_interval,
                "settle_seconds": self.settle_seconds,
                "startup_grace": self.startup_grace,
                "ignore_patterns": list(self.ignore_patterns),
                "idle_poll_interval": self.idle_poll_interval,
                "max_settle_seconds": self.max_settle_seconds,
                "max_batch_files": self.max_batch_files,
                "split_into": self.split_into,
                "large_file_bytes": self.large_file_bytes,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from aiobotocore.session import get_session

        client_kwargs = await client_kwargs_from_connection(self.aws_conn_id)
        async with get_session().create_client("s3", **client_kwargs) as client:
            pace = Pace(self, started=time.monotonic())
            while True:
                listing = await list_landing(client, self.bucket, self.prefix, self.ignore_patterns)
                reason = pace.observe(listing, time.monotonic())
                if reason:
                    batch = take_batch(listing, self.max_batch_files)
                    left = len(listing) - len(batch)
                    self.log.info(
                        "Batch of %d file(s) under s3://%s/%s (%s)%s: %s",
                        len(batch),
                        self.bucket,
                        self.prefix,
                        reason,
                        f", {left} left for the next run" if left else "",
                        [key for key, *_ in batch],
                    )
                    files = [
                        {"key": key, "etag": etag, "size": size, "last_modified": when}
                        for key, etag, size, when in batch
                    ]
                    if self.split_into:
                        yield TaskSuccessEvent(
                            xcoms=chunk_xcoms(files, self.split_into, self.large_file_bytes)
                        )
                    else:
                        yield TriggerEvent(
                            {"status": "success", "files": files, "left": left, "reason": reason}
                        )
                    return
                await asyncio.sleep(pace.next_pause(time.monotonic()))


class Pace:
    """When to list again and when a listing is settled: the trigger's timing, apart from I/O
    (so a test can drive it with made-up clocks and listings)."""

    def __init__(self, trigger: LandingTrigger, started: float) -> None:
        self.poll = max(trigger.poll_interval, 0.01)
        self.idle = max(trigger.idle_poll_interval, self.poll)
        self.settle = trigger.settle_seconds
        self.max_settle = max(trigger.max_settle_seconds, trigger.settle_seconds)
        self.max_batch = trigger.max_batch_files
        self.grace_ends = started + trigger.startup_grace
        self.previous: tuple[Listed, ...] | None = None
        self.changed_at = started  # when the listing was last seen to change
        self.first_seen: float | None = None  # when files were first seen in this wait
        self.pause = self.poll

    def observe(self, listing: tuple[Listed, ...], now: float) -> str:
        """Record a listing taken at ``now``; the reason to take the batch now, or ``""``."""
        if listing != self.previous:
            self.changed_at, self.pause = now, self.poll
            if self.previous is None or not self.previous or not listing:
                self.first_seen = now if listing else None
            self.previous = listing
        elif not listing:  # idle: back off
            self.pause = min(self.pause * 2, self.idle)
        if not listing or now + _EPSILON < self.grace_ends or self.first_seen is None:
            return ""
        return batch_reason(
            len(listing),
            now,
            changed_at=self.changed_at,
            first_at=self.first_seen,
            settle=self.settle,
            max_settle=self.max_settle,
            max_files=self.max_batch,
        )

    def next_pause(self, now: float) -> float:
        """Seconds until the next listing: the current pause, cut short to end at the moment the
        quiet period, the maximum wait or the startup grace would end."""
        pause = self.pause
        if self.previous:
            deadlines = [self.changed_at + self.settle, self.grace_ends]
            if self.first_seen is not None:
                deadlines.append(self.first_seen + self.max_settle)
            pending = [d - now for d in deadlines if d > now]
            pause = min([pause, *pending])
        return max(pause, 0.01)


def take_batch(listing: Sequence[Listed], max_files: int) -> list[Listed]:
    """At most ``max_files`` (0: all) of ``listing``, the oldest first by LastModified then key,
    returned sorted by key."""
    if not max_files or len(listing) <= max_files:
        return sorted(listing)
    oldest = sorted(listing, key=lambda item: (datetime.fromisoformat(item[3]), item[0]))
    return sorted(oldest[:max_files])


async def list_landing(
    client: Any, bucket: str, prefix: str, ignore_patterns: Sequence[str] = ()
) -> tuple[Listed, ...]:
    """Sorted (key, etag, size, last_modified) of every object under ``prefix`` whose fate is
    not "ignore" (see :mod:`retrain.keys`); keys to quarantine are kept for the ingest DAG."""
    found: list[Listed] = []
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key, size = obj["Key"], int(obj["Size"])
            if classify_landing_key(key, prefix, ignore_patterns, size).action == "ignore":
                continue
            found.append(
                (key, obj["ETag"].strip('"'), size, format_last_modified(obj["LastModified"]))
            )
    return tuple(sorted(found))


async def client_kwargs_from_connection(conn_id: str, service: str = "s3") -> dict[str, Any]:
    """aiobotocore client arguments for ``service`` from an Airflow ``aws`` connection.

    Reads the same fields as the amazon provider's hook for the common cases: key pair in
    login/password (else the default credential chain: env, IAM role), ``region_name`` and
    ``endpoint_url`` in the extras (top level or ``service_config.<service>``).
    """
    from airflow.sdk import Connection

    conn = await Connection.async_get(conn_id)
    extra = await conn.aextra_dejson()  # the sync property deadlocks in the triggerer
    service_extra = extra.get("service_config", {}).get(service, {})
    kwargs: dict[str, Any] = {"region_name": extra.get("region_name") or None}
    if endpoint := service_extra.get("endpoint_url") or extra.get("endpoint_url"):
        kwargs["endpoint_url"] = endpoint
    key_id = conn.login or extra.get("aws_access_key_id")
    secret = conn.password or extra.get("aws_secret_access_key")
    if key_id and secret:
        kwargs["aws_access_key_id"] = key_id
        kwargs["aws_secret_access_key"] = secret
    return kwargs


class LandingSensor(BaseOperator):
    """Defers to :class:`LandingTrigger`, which ends the task with the batch's files (key, etag,
    size, last_modified each) split into ``split_into`` lists of about equal bytes, one XCom per
    validate task (keys :func:`retrain.batching.chunk_key`): no planning task, and no worker
    process between the wait and the validation.

    While waiting it holds no worker slot: the task sits in the triggerer, where the scheduler
    puts it directly (``start_from_trigger``, default True: no task process runs before the
    wait). The wait ends with a failure after ``wait_timeout`` so a silent source shows up as a
    failed run, not as nothing. The timing arguments are the trigger's (see the module's
    docstring).
    """

    template_fields = ("bucket", "prefix")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        aws_conn_id: str,
        poll_interval: float = 0.5,
        settle_seconds: float = 0.5,
        ignore_patterns: list[str] | tuple[str, ...] = (),
        split_into: int = 1,
        wait_timeout: timedelta = timedelta(days=7),
        idle_poll_interval: float = DEFAULT_IDLE_POLL_S,
        max_settle_seconds: float = DEFAULT_MAX_SETTLE_S,
        max_batch_files: int = 0,
        large_file_bytes: int | None = None,
        start_from_trigger: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("execution_timeout", wait_timeout + timedelta(minutes=10))
        # The batch leaves as one XCom per key: a key that a trigger serialized by an older
        # version does not push (chunk_large, a share added since) resolves to None, an empty
        # share, for the validate task reading it, instead of failing the run after an upgrade.
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.bucket = bucket
        self.prefix = prefix
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval
        self.settle_seconds = settle_seconds
        self.idle_poll_interval = idle_poll_interval
        self.max_settle_seconds = max_settle_seconds
        self.max_batch_files = max_batch_files
        self.large_file_bytes = large_file_bytes
        self.ignore_patterns = list(ignore_patterns)
        self.split_into = split_into
        self.wait_timeout = wait_timeout
        # The scheduler defers the task itself, straight into the triggerer: no worker process
        # runs to defer it, so there is no deferring process whose exit could race the event,
        # and the trigger needs no startup grace (see STARTUP_GRACE_S).
        self.start_from_trigger = start_from_trigger
        if start_from_trigger:
            classpath, trigger_kwargs = self.trigger(startup_grace=0.0).serialize()
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=classpath,
                trigger_kwargs=trigger_kwargs,
                next_method="execute_complete",
                next_kwargs=None,
                timeout=wait_timeout,
            )

    def trigger(self, startup_grace: float = STARTUP_GRACE_S) -> LandingTrigger:
        return LandingTrigger(
            bucket=self.bucket,
            prefix=self.prefix,
            aws_conn_id=self.aws_conn_id,
            poll_interval=self.poll_interval,
            settle_seconds=self.settle_seconds,
            ignore_patterns=self.ignore_patterns,
            startup_grace=startup_grace,
            idle_poll_interval=self.idle_poll_interval,
            max_settle_seconds=self.max_settle_seconds,
            max_batch_files=self.max_batch_files,
            split_into=self.split_into,
            large_file_bytes=self.large_file_bytes,
        )

    def execute(self, context: Any) -> None:
        """Defer from a worker (only with ``start_from_trigger=False``: otherwise the scheduler
        defers the task itself, retries included): the trigger keeps the startup grace."""
        self.defer(
            trigger=self.trigger(), method_name="execute_complete", timeout=self.wait_timeout
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        """Only for a trigger serialized before ``split_into`` (a deployment upgraded while its
        sensor waited): the new trigger ends the task itself."""
        if event.get("status") != "success":
            raise RuntimeError(f"waiting for s3://{self.bucket}/{self.prefix} failed: {event}")
        self.log.info(
            "Batch of %d file(s) (%s%s): %s",
            len(event["files"]),
            event.get("reason", "settled"),
            f", {event['left']} left for the next run" if event.get("left") else "",
            [f["key"] for f in event["files"]],
        )
        xcoms = chunk_xcoms(event["files"], self.split_into, self.large_file_bytes)
        for key, chunk in xcoms.items():
            context["ti"].xcom_push(key=key, value=chunk)
