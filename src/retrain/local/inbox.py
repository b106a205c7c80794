"""What arrived on the alerts topic of a local stack: its SQS queue, read over HTTP.

Local tooling (the demo, the end-to-end tests, ``retrain alerts``): in production the topic's
subscribers are people's inboxes, Slack or a pager. Reading takes the messages off the queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Received:
    subject: str
    message: str
    sent_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "message": self.message, "sent_at": self.sent_at}


def receive(endpoint_url: str, queue_url: str, **client_kwargs: Any) -> list[Received]:
    """Every message waiting in the queue, oldest first, deleted once read."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1", **client_kwargs)
    out: list[Received] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            break
        for msg in batch:
            out.append(_parse(msg["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
    return sorted(out, key=lambda r: r.sent_at)


def _parse(body: str) -> Received:
    """SNS's envelope (subject, message, timestamp), or a raw message."""
    try:
        envelope = json.loads(body)
    except json.JSONDecodeError:
        return Received("", body, "")
    if not isinstance(envelope, dict) or "Message" not in envelope:
        return Received("", body, "")
    return Received(
        envelope.get("Subject") or "", envelope["Message"], envelope.get("Timestamp") or ""
    )
