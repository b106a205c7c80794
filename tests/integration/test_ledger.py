"""The ledger's ids on a real bucket: staged from a Series or a local file, promoted server-side
when their file is accepted, checked against the history a row group at a time; what a route
killed mid-way leaves behind is swept after the grace period, what it still has to finish is
kept."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retrain import id_overlap, spill
from retrain.config import Config
from retrain.id_overlap import IdWriter
from retrain.layout import Layout, format_last_modified, object_id
from retrain.ledger import Claim, Ledger
from retrain.storage import ObjectNotFound, S3Storage

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
    ledger.record_content(promoted)  # content recorded, ids promoted, staged copy not dropped
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


def test_ids_are_staged_from_a_series_or_a_local_file_and_promoted_server_side(
    storage: S3Storage, layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(storage, layout)
    monkeypatch.setattr(id_overlap, "ID_ROW_GROUP", 100)
    ledger.stage_ids("a" * 64, pd.Series(range(250)))  # numbers staged as text
    staged = storage.get_bytes(layout.staged_ids_key("a" * 64))
    meta = pq.ParquetFile(pa.BufferReader(staged)).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [100, 100, 50]
    assert list(ledger.staged_ids("a" * 64)[:2]) == ["0", "1"]

    with IdWriter(tmp_path / "ids.parquet") as w:
        w.add(pd.Series(["x", "y"]))
    ledger.stage_ids("b" * 64, tmp_path / "ids.parquet")  # uploaded as is
    assert (
        storage.get_bytes(layout.staged_ids_key("b" * 64))
        == (tmp_path / "ids.parquet").read_bytes()
    )
    pd.DataFrame({"customer_id": ["x"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="needs a column 'id'"):
        ledger.stage_ids("c" * 64, tmp_path / "bad.parquet")
    assert not storage.exists(layout.staged_ids_key("c" * 64))

    claim = claim_landed(storage, layout, "b.csv", "b" * 64, "raw")
    ledger.record_content(claim)
    promoted = storage.get_bytes(layout.ids_key("b" * 64))
    assert promoted == (tmp_path / "ids.parquet").read_bytes(), "the same bytes, copied"
    ledger.record_content(claim)  # again: harmless
    ledger.drop_staged_ids("b" * 64)
    ledger.record_content(claim)  # staged gone, ids promoted: an earlier finish did it all
    assert list(ledger.accepted_ids("b" * 64)) == ["x", "y"]
    lost = claim_landed(storage, layout, "lost.csv", "d" * 64, "raw")
    with pytest.raises(ObjectNotFound):
        ledger.record_content(lost)  # neither staged nor promoted: nothing to finish from


@pytest.mark.parametrize("part_rows", [1_000_000, 3], ids=["one-partition", "partitions"])
def test_the_batch_check_reads_the_history_from_the_bucket(
    storage: S3Storage,
    layout: Layout,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    part_rows: int,
) -> None:
    monkeypatch.setattr(spill, "PART_ROWS", part_rows)
    ledger = Ledger(storage, layout)
    for sha, ids in {
        "e": ["1", "2", "3"],
        "f": ["4", "5"],
        "n": ["3", "4", "9"],
        "m": ["9"],
    }.items():
        ledger.stage_ids(sha * 64, pd.Series(ids))
    for sha in ("e", "f"):  # accepted before
        ledger.record_content(claim_landed(storage, layout, f"{sha}.csv", sha * 64, "raw"))
    found = ledger.batch_overlap(["n" * 64, "m" * 64], tmp_path)
    assert found.parts == (1 if part_rows > 100 else 3)  # 9 ids
    assert found.overlap("n" * 64) == id_overlap.IdOverlap(2, ("3", "4"), ("e" * 64, "f" * 64))
    assert found.overlap("m" * 64).count == 0
    assert found.overlap("m" * 64, ["n" * 64]).earlier == ("n" * 64,)
    assert list(tmp_path.glob("*.parquet")) == [], "every download is gone once spilled"

    def no_download(*_: object) -> None:
        raise AssertionError("nothing to compare: nothing is downloaded")

    monkeypatch.setattr(storage, "download", no_download)
    storage.delete(layout.ids_key("e" * 64))
    storage.delete(layout.ids_key("f" * 64))
    assert ledger.batch_overlap(["n" * 64], tmp_path).parts == 0, "no history, one file"
    assert ledger.batch_overlap([], tmp_path).parts == 0
