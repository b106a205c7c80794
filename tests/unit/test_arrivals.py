"""Event-notification arrival, pure parts: what a notification names, what a run takes, when a
burst of notifications is settled."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from retrain.arrivals import (
    Gather,
    NotANotification,
    keys_from_message,
    notified_keys,
    select_batch,
)

# As the S3-compatible server (moto 5) sends them; AWS's format is the same.
TEST_EVENT = (
    '{"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-12-01T04:04:34.617Z", '
    '"Bucket": "bkt1"}'
)
PUT = (
    '{"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", '
    '"eventTime": "2026-12-01T04:04:34.623Z", "eventName": "ObjectCreated:Put", "s3": '
    '{"s3SchemaVersion": "1.0", "configurationId": "x", "bucket": {"name": "bkt1", "arn": '
    '"arn:aws:s3:::bkt1"}, "object": {"key": "landing%2Fa+b%2Bc.csv", "size": 1, "eTag": '
    '"9dd4e461268c8034f5c8564e155c67a6"}}}]}'
)


def _record(key: str, event: str = "ObjectCreated:Put", bucket: str = "bkt1") -> dict:
    return {"eventName": event, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}


def test_a_put_names_its_key_url_decoded() -> None:
    assert keys_from_message(PUT, "bkt1", "landing/") == ["landing/a b+c.csv"]


def test_the_test_event_names_nothing() -> None:
    assert keys_from_message(TEST_EVENT, "bkt1", "landing/") == []


def test_other_buckets_prefixes_and_events_name_nothing() -> None:
    body = json.dumps(
        {
            "Records": [
                _record("landing%2Fother.csv", bucket="elsewhere"),
                _record("raw%2Fx.csv"),
                _record("landing%2Fgone.csv", event="ObjectRemoved:Delete"),
                _record("landing%2Fkept.csv", event="ObjectCreated:CompleteMultipartUpload"),
                _record("landing%2Fkept.csv", event="ObjectCreated:Copy"),  # once only
            ]
        }
    )
    assert keys_from_message(body, "bkt1", "landing/") == ["landing/kept.csv"]


def test_an_sns_envelope_is_unwrapped() -> None:
    envelope = json.dumps({"Type": "Notification", "Message": PUT})
    assert keys_from_message(envelope, "bkt1", "landing/") == ["landing/a b+c.csv"]


@pytest.mark.parametrize(
    "body",
    ["hello", "[1, 2]", '{"foo": 1}', '{"Records": [{"eventName": "ObjectCreated:Put"}]}'],
)
def test_a_body_that_is_not_a_notification_is_refused(body: str) -> None:
    with pytest.raises(NotANotification):
        keys_from_message(body, "bkt1", "landing/")


def test_notified_keys_from_the_triggering_events_in_order_once() -> None:
    extras = [
        {"from_trigger": True, "payload": {"keys": ["landing/b.csv", "landing/a.csv"]}},
        {"from_trigger": True, "payload": {"keys": ["landing/a.csv", "landing/c.csv"]}},
        {},
        None,
    ]
    assert notified_keys(extras) == ["landing/b.csv", "landing/a.csv", "landing/c.csv"]


NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def _landed(key: str, age_s: float) -> dict:
    when = (NOW - timedelta(seconds=age_s)).isoformat()
    return {"key": key, "etag": "e", "size": 1, "last_modified": when}


def test_a_run_takes_its_notified_keys_and_what_the_sweep_finds() -> None:
    listing = [
        _landed("landing/new.csv", 2),  # notified, fresh
        _landed("landing/lost.csv", 120),  # never notified, old: the sweep's
        _landed("landing/in-flight.csv", 3),  # fresh, not notified yet: the next run's
    ]
    batch, counts = select_batch(
        listing, ["landing/new.csv"], now=NOW, grace_seconds=60, max_files=0
    )
    assert [f["key"] for f in batch] == ["landing/lost.csv", "landing/new.csv"]
    assert counts == {"notified": 1, "gone": 0, "swept": 1, "left": 0}


def test_a_redelivered_notification_finds_nothing() -> None:
    batch, counts = select_batch(
        [_landed("landing/in-flight.csv", 1)],
        ["landing/already-routed.csv"],
        now=NOW,
        grace_seconds=60,
        max_files=0,
    )
    assert batch == []
    assert counts["gone"] == 1


def test_the_cap_takes_the_oldest_first() -> None:
    listing = [_landed(f"landing/{i}.csv", 100 - i) for i in range(5)]
    batch, counts = select_batch(listing, [], now=NOW, grace_seconds=0, max_files=2)
    assert [f["key"] for f in batch] == ["landing/0.csv", "landing/1.csv"]
    assert counts["left"] == 3


def test_gather_settles_a_burst_and_bounds_a_trickle() -> None:
    gather = Gather(settle_seconds=1.0, max_settle_seconds=3.0, max_files=0)
    assert gather.ready(0.0) == "" and gather.wait(0.0) == float("inf")
    assert gather.add(["a"], now=0.0) == 1
    assert gather.add(["a"], now=0.5) == 0  # a redelivery is not news
    assert gather.ready(0.9) == ""
    assert gather.ready(1.0) == "quiet"
    for t in (0.8, 1.6, 2.4):  # a trickle: never quiet for a second
        gather.add([f"k{t}"], now=t)
    assert gather.ready(2.9) == ""
    assert gather.wait(2.9) == pytest.approx(0.1)
    assert gather.ready(3.0) == "max_settle"
    gather.reset()
    assert gather.keys == [] and gather.ready(10.0) == ""


def test_gather_is_full_at_the_cap() -> None:
    gather = Gather(settle_seconds=5.0, max_settle_seconds=30.0, max_files=2)
    gather.add(["a", "b"], now=0.0)
    assert gather.ready(0.0) == "full"
