"""The ledger's staged ids on a real bucket: what a route killed mid-way leaves behind is swept
after the grace period; what a route still has to finish is kept."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from retrain.config import Config
from retrain.layout import Layout, format_last_modified, object_id
from retrain.ledger import Claim, Ledger
from retrain.storage import S3Storage

GRACE = timedelta(hours=1)


@pytest.fixture
def layout(config: Config, storage: S3Storage) -> Layout:
    return Layout.of(replace(config, storage=replace(config.storage, bucket=storage.bucket)))


def claim_landed(storage: S3Storage, layout: Layout, name: str, sha: str, verdict: str) -> Claim:
    """``name`` landed and claimed, not moved yet: a route killed after claiming it."""
    key = layout.landing_key(name)
    storage.put_bytes(key, b"id,x\n1,2\n")
    obj = next(o for o in storage.iter_objects(key))
    last_modified = format_last_modified(obj.last_modified)
    dest = layout.raw_key(name, "2026-12-07", "b1") if verdict == "raw" else f"quarantine/{name}"
    return Claim(
        object_id=object_id(key, obj.etag, last_modified),
        key=key,
        etag=obj.etag.strip('"'),
        last_modified=last_modified,
        size=obj.size,
        sha256=sha,
        batch_id="b1",
        verdict=verdict,  # type: ignore[arg-type]
        dest_key=dest,
        reason="passed" if verdict == "raw" else "duplicate",
        decided_at="2026-12-07T10:00:00+00:00",
    )


def test_staged_ids_left_behind_are_swept_after_the_grace_period(
    storage: S3Storage, layout: Layout
) -> None:
    ledger = Ledger(storage, layout)
    ids = pd.Series(["1", "2"])
    pending = ledger.claim(claim_landed(storage, layout, "pending.csv", "d" * 64, "raw"))
    ledger.claim(claim_landed(storage, layout, "dup.csv", "f" * 64, "quarantine"))
    promoted = replace(pending, object_id="o-b", sha256="b" * 64, key="landing/gone-b.csv")
    recorded = replace(pending, object_id="o-c", sha256="c" * 64, key="landing/gone-c.csv")
    for sha in ("a", "b", "c", "d", "f"):
        ledger.stage_ids(sha * 64, ids)
    ledger.record_content(promoted, ids)  # content and ids written, staged copy not dropped
    storage.put_json(layout.content_key(recorded.sha256 or ""), {"sha256": recorded.sha256})
    staged = {sha: layout.staged_ids_key(sha * 64) for sha in ("a", "b", "c", "d", "f")}

    assert ledger.sweep_staged_ids(GRACE) == (), "everything is within the grace period"

    later = datetime.now(UTC) + 2 * GRACE
    swept = ledger.sweep_staged_ids(GRACE, now=later)
    assert sorted(swept) == [staged["a"], staged["b"], staged["f"]]
    # kept: recorded but not promoted (c), and the accepted claim still in landing/ (d)
    assert {s for s, key in staged.items() if storage.exists(key)} == {"c", "d"}
    assert storage.exists(layout.ids_key("b" * 64)), "the promoted ids stay"

    ledger.record_content(pending)  # the next run finishes the claim from the staged copy
    assert list(ledger.accepted_ids("d" * 64)) == ["1", "2"]
    ledger.drop_staged_ids("d" * 64)
    assert ledger.sweep_staged_ids(GRACE, now=later) == ()
