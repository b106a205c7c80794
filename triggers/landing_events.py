"""S3 event notifications for landing/, read from SQS by an AssetWatcher in the triggerer.

The event-notification arrival mode (``[orchestration] arrival = "events"``): the bucket sends
an ``ObjectCreated`` notification for every object under ``landing/`` to an SQS queue, and
:class:`LandingQueueTrigger` (a ``BaseEventTrigger``, so an ``AssetWatcher`` can run it) turns
the messages into events of the ``landing`` asset, on which the ingest DAG is scheduled.

What it adds to the amazon provider's ``SqsSensorTrigger``, which deletes each message as soon
as it is received, before any run exists:

- **settled batches**: notifications are gathered with the polling trigger's rules
  (``settle_seconds``, ``max_settle_seconds``, ``max_batch_files``:
  :class:`retrain.arrivals.Gather`), so a burst of uploads is one event, one run, one retrain;
- **delete after persist**: it runs as an Airflow 3.3 shared stream in *ack mode*
  (:meth:`LandingQueueTrigger.create_shared_stream_producer`): a batch's messages are deleted
  only once the triggerer has stored the asset event in the metadata database. Until then they
  stay invisible (``visibility_timeout``); a triggerer that dies in between leaves them to SQS
  to redeliver, and the ingest run's batch selection makes a redelivery harmless
  (:func:`retrain.arrivals.select_batch`);
- messages naming nothing to ingest (``s3:TestEvent``, other prefixes, names the landing rules
  ignore, bodies that are not notifications) are deleted at once and fire nothing.

The event's payload (the asset event's ``extra["payload"]``): ``{"keys": [...], "messages": n,
"reason": "quiet" | "max_settle" | "full"}``. Keys are decoded (``landing%2Fa+b.csv`` arrives as
``landing/a b.csv``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Hashable, Sequence
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from retrain.arrivals import Gather, NotANotification, keys_from_message
from retrain.keys import classify_landing_key
from triggers.landing import client_kwargs_from_connection

LONG_POLL_S = 10  # an idle receive waits this long for a message (SQS allows 0-20)
SQS_BATCH = 10  # SQS returns and deletes at most 10 messages per call
# Messages of a batch stay invisible this long after the last receive, beyond the settle time:
# enough for the triggerer to store the event and acknowledge ([triggerer]
# shared_stream_ack_timeout, 300 s by default, bounds that wait).
VISIBILITY_MARGIN_S = 330


class LandingQueueTrigger(BaseEventTrigger):
    """Fires one event per settled batch of ``landing/`` notifications, for as long as it runs."""

    def __init__(
        self,
        *,
        queue_url: str,
        aws_conn_id: str,
        bucket: str,
        prefix: str,
        ignore_patterns: list[str] | tuple[str, ...] = (),
        poll_interval: float = 0.5,
        settle_seconds: float = 0.5,
        max_settle_seconds: float = 30.0,
        max_batch_files: int = 0,
    ) -> None:
        super().__init__()
        self.queue_url = queue_url
        self.aws_conn_id = aws_conn_id
        self.bucket = bucket
        self.prefix = prefix
        self.ignore_patterns = tuple(ignore_patterns)
        self.poll_interval = float(poll_interval)
        self.settle_seconds = float(settle_seconds)
        self.max_settle_seconds = float(max_settle_seconds)
        self.max_batch_files = int(max_batch_files)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "queue_url": self.queue_url,
                "aws_conn_id": self.aws_conn_id,
                "bucket": self.bucket,
                "prefix": self.prefix,
                "ignore_patterns": list(self.ignore_patterns),
                "poll_interval": self.poll_interval,
                "settle_seconds": self.settle_seconds,
                "max_settle_seconds": self.max_settle_seconds,
                "max_batch_files": self.max_batch_files,
            },
        )

    @property
    def visibility_timeout(self) -> int:
        return int(self.max_settle_seconds + VISIBILITY_MARGIN_S)

    # -- the shared stream in ack mode (how the triggerer runs it) ------------------------

    def shared_stream_key(self) -> Hashable | None:
        return ("retrain.landing-queue", self.queue_url)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        return LandingQueueProducer(cls(**kwargs))

    async def filter_shared_stream(
        self, shared_stream: AsyncIterator[Any]
    ) -> AsyncIterator[TriggerEvent]:
        async for batch in shared_stream:
            yield TriggerEvent(batch)

    # -- standalone (no shared stream): delete once the event is handed to the triggerer ----

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from aiobotocore.session import get_session

        kwargs = await client_kwargs_from_connection(self.aws_conn_id, service="sqs")
        async with get_session().create_client("sqs", **kwargs) as client:
            async for batch, handles in gather_batches(client, self):
                yield TriggerEvent(batch)
                await delete_messages(client, self.queue_url, handles)

    # -- what a message means -------------------------------------------------------------

    def keys_of(self, body: str) -> list[str]:
        """Landing keys to ingest that one message names ([] for anything else)."""
        try:
            keys = keys_from_message(body, self.bucket, self.prefix)
        except NotANotification as exc:
            self.log.warning("Deleting a message that is not an S3 notification: %s", exc)
            return []
        prefix, patterns = self.prefix, self.ignore_patterns
        return [k for k in keys if classify_landing_key(k, prefix, patterns).action != "ignore"]


class LandingQueueProducer(SharedStreamProducer):
    """The broker side of the shared stream: receives and settles, deletes on acknowledgement.

    Each raw event is one settled batch; its broker payload is the receipt handles of the
    messages that made it. ``advance`` deletes them only for batches every subscriber accepted
    (their asset events stored); others are left for SQS to redeliver.
    """

    def __init__(self, trigger: LandingQueueTrigger) -> None:
        self.trigger = trigger
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def _sqs(self) -> Any:
        if self._client is None:
            from aiobotocore.session import get_session

            kwargs = await client_kwargs_from_connection(self.trigger.aws_conn_id, service="sqs")
            self._client = await self._stack.enter_async_context(
                get_session().create_client("sqs", **kwargs)
            )
        return self._client

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        client = await self._sqs()
        async for batch, handles in gather_batches(client, self.trigger):
            yield batch, handles

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        done = [h for item in batch if item.outcome.is_clean for h in item.broker_payload]
        kept = sum(len(item.broker_payload) for item in batch if not item.outcome.is_clean)
        if kept:
            self.trigger.log.warning(
                "%d message(s) not acknowledged (event not stored): left for SQS to redeliver", kept
            )
        if done:
            await delete_messages(await self._sqs(), self.trigger.queue_url, done)

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._client = None


async def gather_batches(
    client: Any, trigger: LandingQueueTrigger
) -> AsyncIterator[tuple[dict[str, Any], list[str]]]:
    """Receive forever; yield ``(payload, receipt handles)`` per settled batch of keys.

    Messages that name no key to ingest are deleted as they come. A message received again
    while its batch is still gathering (a redelivery) only refreshes its receipt handle.
    """
    queue, log = trigger.queue_url, trigger.log
    gather = Gather(trigger.settle_seconds, trigger.max_settle_seconds, trigger.max_batch_files)
    handles: dict[str, str] = {}  # message id -> newest receipt handle
    while True:
        now = time.monotonic()
        idle = not gather.keys
        wait = LONG_POLL_S if idle else 0
        response = await client.receive_message(
            QueueUrl=queue,
            MaxNumberOfMessages=SQS_BATCH,
            WaitTimeSeconds=wait,
            VisibilityTimeout=trigger.visibility_timeout,
        )
        messages = response.get("Messages", [])
        noise: list[str] = []
        now = time.monotonic()
        for message in messages:
            keys = trigger.keys_of(message.get("Body", ""))
            if keys:
                handles[message["MessageId"]] = message["ReceiptHandle"]
                gather.add(keys, now)
            else:
                noise.append(message["ReceiptHandle"])
        if noise:
            await delete_messages(client, queue, noise)
        if reason := gather.ready(time.monotonic()):
            payload = {"keys": list(gather.keys), "messages": len(handles), "reason": reason}
            log.info(
                "%d landed key(s) notified on %s (%s, %d message(s))",
                len(gather.keys),
                queue,
                reason,
                len(handles),
            )
            yield payload, list(handles.values())
            gather.reset()
            handles = {}
        elif not idle and len(messages) < SQS_BATCH:
            # Gathering: the queue is drained for now; look again shortly, or at the deadline.
            await asyncio.sleep(min(trigger.poll_interval, gather.wait(time.monotonic())) + 0.001)


async def delete_messages(client: Any, queue_url: str, receipt_handles: Sequence[str]) -> None:
    """Delete messages by receipt handle, ten per call; a handle that failed is logged (its
    message comes back after its visibility timeout, which ingest treats as a redelivery)."""
    for start in range(0, len(receipt_handles), SQS_BATCH):
        chunk = receipt_handles[start : start + SQS_BATCH]
        response = await client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
        )
        if failed := response.get("Failed"):
            import logging

            logging.getLogger(__name__).warning(
                "SQS kept %d message(s) of %s: %s", len(failed), queue_url, failed[:3]
            )
