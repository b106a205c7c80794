"""Deferrable wait for files under the landing prefix, settled into one batch.

The stock ``S3KeySensor`` imports the whole amazon provider at DAG parse time and fires as soon as
one key matches. This trigger is lighter (aiobotocore is imported only inside ``run``, in the
triggerer) and waits until the listing has stopped changing for ``settle_seconds``, so a burst of
uploads becomes one batch. It has no memory of its own: the ingest DAG empties ``landing/`` by
routing every file to ``raw/`` or ``quarantine/``, so whatever is still there is unprocessed.
Keys whose fate is "ignore" (:mod:`retrain.keys`: folder markers, hidden and temporary upload
names) stay in ``landing/`` and are left out of the listing, so they never start a batch; unsafe,
too-long and empty keys are kept, for the ingest DAG to quarantine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from retrain.batching import plan_chunks
from retrain.keys import classify_landing_key
from retrain.layout import format_last_modified

# (key, etag, size, last_modified as ISO 8601 UTC) of one landed object
Listed = tuple[str, str, int, str]


# Never fire sooner than this after the trigger starts. When files are already waiting as the
# sensor defers, an event within a few seconds can reach the scheduler before the deferring task
# process has reported back; the scheduler then sees "success" for a TI it already re-queued and
# marks it for retry (seen on Airflow 3.3.2 on a loaded 2-core machine: three tries, a failed
# run). A sensor that has been waiting is past the grace, so this only delays a backlog.
STARTUP_GRACE_S = 10.0


class LandingTrigger(BaseTrigger):
    """Fires once with the settled listing of ``s3://bucket/prefix`` when it is not empty."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        aws_conn_id: str,
        poll_interval: float = 5.0,
        settle_seconds: float = 5.0,
        ignore_patterns: list[str] | tuple[str, ...] = (),
        startup_grace: float = STARTUP_GRACE_S,
    ) -> None:
        super().__init__()
        self.bucket = bucket
        self.prefix = prefix
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval
        self.settle_seconds = settle_seconds
        self.startup_grace = startup_grace
        self.ignore_patterns = tuple(ignore_patterns)

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
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from aiobotocore.session import get_session

        client_kwargs = await client_kwargs_from_connection(self.aws_conn_id)
        async with get_session().create_client("s3", **client_kwargs) as client:
            previous: tuple[Listed, ...] = ()
            stable_since = 0.0
            started = time.monotonic()
            while True:
                listing = await list_landing(client, self.bucket, self.prefix, self.ignore_patterns)
                now = time.monotonic()
                if listing != previous:
                    previous, stable_since = listing, now
                if (
                    listing
                    and now - stable_since >= self.settle_seconds
                    and now - started >= self.startup_grace
                ):
                    self.log.info(
                        "%d file(s) settled under s3://%s/%s",
                        len(listing),
                        self.bucket,
                        self.prefix,
                    )
                    yield TriggerEvent(
                        {
                            "status": "success",
                            "files": [
                                {"key": key, "etag": etag, "size": size, "last_modified": when}
                                for key, etag, size, when in listing
                            ],
                        }
                    )
                    return
                await asyncio.sleep(self.poll_interval)


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


async def client_kwargs_from_connection(conn_id: str) -> dict[str, Any]:
    """aiobotocore client arguments from an Airflow ``aws`` connection.

    Reads the same fields as the amazon provider's hook for the common cases: key pair in
    login/password (else the default credential chain: env, IAM role), ``region_name`` and
    ``endpoint_url`` in the extras (top level or ``service_config.s3``).
    """
    from airflow.sdk import Connection

    conn = await Connection.async_get(conn_id)
    extra = await conn.aextra_dejson()  # the sync property deadlocks in the triggerer
    s3_extra = extra.get("service_config", {}).get("s3", {})
    kwargs: dict[str, Any] = {"region_name": extra.get("region_name") or None}
    if endpoint := s3_extra.get("endpoint_url") or extra.get("endpoint_url"):
        kwargs["endpoint_url"] = endpoint
    key_id = conn.login or extra.get("aws_access_key_id")
    secret = conn.password or extra.get("aws_secret_access_key")
    if key_id and secret:
        kwargs["aws_access_key_id"] = key_id
        kwargs["aws_secret_access_key"] = secret
    return kwargs


class LandingSensor(BaseOperator):
    """Defers to :class:`LandingTrigger`; returns the batch's files as XCom (key, etag, size,
    last_modified each), split into ``split_into`` lists of about equal bytes, ready for a mapped
    task (one list per parallel task) without a planning task in between.

    While waiting it holds no worker slot: the task sits in the triggerer. The wait ends with a
    failure after ``wait_timeout`` so a silent source shows up as a failed run, not as nothing.
    """

    template_fields = ("bucket", "prefix")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        aws_conn_id: str,
        poll_interval: float = 5.0,
        settle_seconds: float = 5.0,
        ignore_patterns: list[str] | tuple[str, ...] = (),
        split_into: int = 1,
        wait_timeout: timedelta = timedelta(days=7),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("execution_timeout", wait_timeout + timedelta(minutes=10))
        super().__init__(**kwargs)
        self.bucket = bucket
        self.prefix = prefix
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval
        self.settle_seconds = settle_seconds
        self.ignore_patterns = list(ignore_patterns)
        self.split_into = split_into
        self.wait_timeout = wait_timeout

    def execute(self, context: Any) -> None:
        self.defer(
            trigger=LandingTrigger(
                bucket=self.bucket,
                prefix=self.prefix,
                aws_conn_id=self.aws_conn_id,
                poll_interval=self.poll_interval,
                settle_seconds=self.settle_seconds,
                ignore_patterns=self.ignore_patterns,
            ),
            method_name="execute_complete",
            timeout=self.wait_timeout,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[list[dict[str, Any]]]:
        if event.get("status") != "success":
            raise RuntimeError(f"waiting for s3://{self.bucket}/{self.prefix} failed: {event}")
        self.log.info(
            "Batch of %d file(s): %s", len(event["files"]), [f["key"] for f in event["files"]]
        )
        return plan_chunks(event["files"], self.split_into)
