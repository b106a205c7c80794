"""Event-notification arrival: what an S3 notification names, and what an ingest run takes.

Stdlib only: the SQS trigger (``triggers/landing_events.py``) parses messages with it inside the
triggerer, and the ingest DAG's first task picks its batch with it in a worker.

A notification is a hint, never the truth. S3 delivers it at least once (SQS redelivers what was
not deleted in time, a triggerer restart drops acknowledgements kept in memory) and may not
deliver it at all (a misconfigured or purged queue, a message deleted before its run existed).
So a run takes, from one listing of ``landing/``:

- the keys its notifications name that are still there (a redelivered notification for an object
  already routed finds nothing: no second batch), and
- any object older than the grace period, notified or not (the reconciler's sweep: an object
  whose notification was lost still gets its run).

What happens to each key after that (ignore, quarantine, raw/) is decided by :mod:`retrain.keys`
and the route step's ledger, the same as in poll mode.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from retrain.batching import batch_reason

TEST_EVENT = "s3:TestEvent"


class NotANotification(ValueError):
    """A queue message that is not an S3 event notification (or an SNS envelope of one)."""


def keys_from_message(body: str, bucket: str, prefix: str) -> list[str]:
    """The object keys under ``s3://bucket/prefix`` that one SQS message body reports created.

    Reads S3's event notification format (``{"Records": [...]}``, keys URL-encoded as S3 sends
    them: ``landing%2Fa+b.csv`` is ``landing/a b.csv``), also wrapped in an SNS envelope (S3 ->
    SNS -> SQS fan-out). ``s3:TestEvent`` (sent when the notification is configured), other
    buckets, other prefixes and non-create events name nothing. Raises
    :class:`NotANotification` for a body that is none of these.
    """
    try:
        doc = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise NotANotification(f"not JSON: {str(body)[:80]!r}") from exc
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        return keys_from_message(doc["Message"], bucket, prefix)  # an SNS envelope
    if not isinstance(doc, dict):
        raise NotANotification(f"not an S3 notification: {str(body)[:80]!r}")
    if doc.get("Event") == TEST_EVENT:
        return []
    records = doc.get("Records")
    if not isinstance(records, list):
        raise NotANotification(f"not an S3 notification: {str(body)[:80]!r}")
    keys: list[str] = []
    for record in records:
        try:
            name = record["eventName"]
            s3 = record["s3"]
            record_bucket = s3["bucket"]["name"]
            key = unquote_plus(s3["object"]["key"])
        except (KeyError, TypeError) as exc:
            raise NotANotification(f"S3 record without {exc}: {str(record)[:80]!r}") from exc
        if not name.startswith("ObjectCreated:") or record_bucket != bucket:
            continue
        if key.startswith(prefix) and key not in keys:
            keys.append(key)
    return keys


def notified_keys(extras: Iterable[dict[str, Any] | None]) -> list[str]:
    """Every key named by the asset events that triggered a run (the ``extra`` of each: the
    watcher's payload under ``"payload"``), in order, each once."""
    keys: list[str] = []
    for extra in extras:
        payload = (extra or {}).get("payload") or {}
        for key in payload.get("keys") or ():
            if key not in keys:
                keys.append(key)
    return keys


def select_batch(
    listing: Sequence[dict[str, Any]],
    notified: Iterable[str],
    *,
    now: datetime,
    grace_seconds: float,
    max_files: int,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """What a run takes from ``listing`` (``landing/`` as the landing trigger lists it: dicts
    with key, etag, size, last_modified), and counts saying why.

    Taken: every listed key in ``notified``, and every listed object whose LastModified is at
    least ``grace_seconds`` before ``now`` (notified or not). At most ``max_files`` (0: no cap),
    the oldest first; the rest stay in ``landing/`` for the next run or sweep. The batch is
    returned sorted by key. Counts: ``notified`` (keys the events named), ``gone`` (named but no
    longer in landing/: already routed, a redelivery), ``swept`` (taken without a notification
    in this run), ``left`` (over the cap).
    """
    wanted = set(notified)
    listed = {item["key"] for item in listing}
    taken, swept = [], 0
    for item in listing:
        age = (now - datetime.fromisoformat(item["last_modified"])).total_seconds()
        if item["key"] in wanted:
            taken.append(item)
        elif age >= grace_seconds:
            taken.append(item)
            swept += 1
    taken.sort(key=lambda item: (datetime.fromisoformat(item["last_modified"]), item["key"]))
    left = max(0, len(taken) - max_files) if max_files else 0
    if left:
        taken = taken[:max_files]
    counts = {
        "notified": len(wanted),
        "gone": len(wanted - listed),
        "swept": swept,
        "left": left,
    }
    return sorted(taken, key=lambda item: item["key"]), counts


class Gather:
    """When notifications received so far make a batch: the SQS trigger's timing, apart from I/O
    (the same rules as the polling trigger's, so a burst becomes one batch in either mode).

    ``ready`` answers ``"full"`` once ``max_files`` keys are in (0: no cap), ``"quiet"`` once no
    new key came for ``settle_seconds``, ``"max_settle"`` ``max_settle_seconds`` after the first
    key (a steady trickle), else ``""``.
    """

    def __init__(self, settle_seconds: float, max_settle_seconds: float, max_files: int) -> None:
        self.settle = settle_seconds
        self.max_settle = max(max_settle_seconds, settle_seconds)
        self.max_files = max_files
        self.keys: list[str] = []
        self.first_at: float | None = None
        self.changed_at: float | None = None

    def add(self, keys: Iterable[str], now: float | None = None) -> int:
        """Record keys received at ``now``; returns how many were new."""
        now = time.monotonic() if now is None else now
        new = [k for k in keys if k not in self.keys]
        if new:
            self.keys.extend(new)
            self.changed_at = now
            if self.first_at is None:
                self.first_at = now
        return len(new)

    def ready(self, now: float) -> str:
        if self.first_at is None or self.changed_at is None:
            return ""
        return batch_reason(
            len(self.keys),
            now,
            changed_at=self.changed_at,
            first_at=self.first_at,
            settle=self.settle,
            max_settle=self.max_settle,
            max_files=self.max_files,
        )

    def wait(self, now: float) -> float:
        """Seconds until the batch would be ready if nothing else arrives (0 when ready)."""
        if self.first_at is None or self.changed_at is None:
            return float("inf")
        deadlines = (self.changed_at + self.settle, self.first_at + self.max_settle)
        return max(0.0, min(deadlines) - now)

    def reset(self) -> None:
        self.keys, self.first_at, self.changed_at = [], None, None
