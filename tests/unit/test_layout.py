"""The key layout: every derived key stays under its prefix and round-trips its parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from retrain.config import StorageConfig
from retrain.layout import Layout, format_last_modified, object_id

L = Layout(StorageConfig())


def test_raw_quarantine_and_feature_keys_share_the_partition() -> None:
    raw = L.raw_key("sub/a.csv.gz", "2026-11-23", "abc123")
    assert raw == "raw/ingest_date=2026-11-23/batch=abc123/sub/a.csv.gz"
    assert L.feature_key(raw) == "features/ingest_date=2026-11-23/batch=abc123/sub/a.csv.gz.parquet"
    assert L.retracted_key(raw) == "quarantine/ingest_date=2026-11-23/batch=abc123/sub/a.csv.gz"
    assert L.name_in_partition(raw) == "sub/a.csv.gz" and L.batch_of(raw) == "abc123"
    assert L.ingest_day_of(raw) == L.ingest_day_of(L.feature_key(raw)) == "2026-11-23"
    assert L.ingest_day_of("raw/sub/ingest_date=nope/a.csv") is None
    q = L.quarantine_key("x.csv", "2026-11-23", "b")
    assert L.report_key(q) == q + ".report.json"


def test_files_differing_only_in_format_keep_separate_feature_files() -> None:
    csv, parquet = (L.raw_key(n, "2026-11-23", "b") for n in ("week.csv", "week.parquet"))
    assert L.feature_key(csv) != L.feature_key(parquet)


def test_keys_outside_their_prefix_are_refused() -> None:
    with pytest.raises(ValueError, match="not under"):
        L.feature_key("quarantine/x.csv")


def test_object_identity_changes_with_a_new_upload_only() -> None:
    a = object_id("landing/a.csv", '"e1"', "2026-11-23T10:00:00+00:00")
    assert a == object_id("landing/a.csv", "e1", "2026-11-23T10:00:00+00:00"), "quotes ignored"
    assert a != object_id("landing/a.csv", "e1", "2026-11-23T10:00:01+00:00")
    assert a != object_id("landing/a.csv", "e2", "2026-11-23T10:00:00+00:00")
    assert a != object_id("landing/b.csv", "e1", "2026-11-23T10:00:00+00:00")


def test_last_modified_is_spelled_the_same_from_any_lister() -> None:
    when = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    other_zone = when.astimezone(timezone(timedelta(hours=2)))
    naive = when.replace(tzinfo=None)
    assert format_last_modified(when) == format_last_modified(other_zone)
    assert format_last_modified(naive) == format_last_modified(when) == "2026-11-23T10:00:00+00:00"


def test_ledger_keys_live_under_the_ledger_prefix() -> None:
    when = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    for key in (
        L.claim_key("o1"),
        L.content_key("s1"),
        L.ids_key("s1"),
        L.staged_ids_key("s1"),
        L.action_key(when, "retract", "t"),
    ):
        assert key.startswith("ledger/")
    assert L.action_key(when, "a", "t") < L.action_key(when + timedelta(seconds=1), "a", "t")


def test_prediction_keys_keep_the_feature_files_partition() -> None:
    feature = L.feature_key(L.raw_key("sub/a.csv", "2026-11-23", "b1"))
    key = L.predictions_key("20261123T100000Z-abcdef", feature)
    assert (
        key
        == "predictions/20261123T100000Z-abcdef/ingest_date=2026-11-23/batch=b1/sub/a.csv.parquet"
    )
    other = L.predictions_key(
        "20261123T100000Z-abcdef", L.feature_key(L.raw_key("sub/a.csv", "2026-11-23", "b2"))
    )
    assert other != key, "the same name in two batches stays two prediction files"
    assert L.predictions_manifest_key("v1") == "predictions/v1/manifest.json"
    assert L.scoring_state_key == "predictions/_scored.json"


@pytest.mark.parametrize("version", ["", "../x", "_scored.json", "a/b", ".hidden"])
def test_prediction_keys_refuse_what_is_not_a_version(version: str) -> None:
    with pytest.raises(ValueError, match="not a model version"):
        L.predictions_key(version, "features/x.parquet")


def test_prediction_keys_need_a_feature_key() -> None:
    with pytest.raises(ValueError, match="not under"):
        L.predictions_key("v1", "raw/x.csv")
