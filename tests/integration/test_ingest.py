"""Ingest against a real S3-compatible server: duplicates, hostile keys, claims under crashes,
retract and replay, and the training set that one file can no longer poison."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from retrain import id_overlap, spill
from retrain.config import Config
from retrain.curation import CurationError, replay, retract
from retrain.datagen import generate, write_batch
from retrain.layout import Layout
from retrain.ledger import Ledger
from retrain.local.devstack import wait_for
from retrain.steps import features, ingest, retrain, validate
from retrain.steps.training_set import staged_training_set
from retrain.storage import S3Storage

START = datetime(2026, 10, 1)


@pytest.fixture
def cfg(config: Config, storage: S3Storage) -> Config:
    return replace(config, storage=replace(config.storage, bucket=storage.bucket))


def frame(rows: int, seed: int, day: int = 1, scenario: str = "normal") -> pd.DataFrame:
    return generate(rows, seed=seed, scenario=scenario, start=START.replace(day=day))


def land(storage: S3Storage, cfg: Config, name: str, data: bytes | pd.DataFrame) -> dict:
    """Upload as a user would and return the file as the landing trigger lists it."""
    if isinstance(data, pd.DataFrame):
        data = write_batch(data, "parquet" if name.endswith(".parquet") else "csv")
    key = f"{cfg.storage.landing_prefix}{name}"
    storage.put_bytes(key, data)
    listed = [f for f in ingest.landed_files(storage, cfg) if f["key"] == key]
    assert listed, f"{key} is not listed as landed"
    return listed[0]


def where_is(storage: S3Storage, cfg: Config, name: str) -> list[str]:
    """Every data object (reports aside) whose name inside its partition is ``name``."""
    layout = Layout.of(cfg)
    found = []
    for prefix in (cfg.storage.landing_prefix, cfg.storage.raw_prefix):
        found += [o.key for o in storage.list_objects(prefix)]
    found += [
        o.key
        for o in storage.list_objects(cfg.storage.quarantine_prefix)
        if not o.key.endswith(".report.json")
    ]
    return [
        k
        for k in found
        if layout.name_in_partition(k) == name or k == cfg.storage.landing_prefix + name
    ]


def test_repeated_ids_inside_a_file_are_quarantined_at_ingest(storage, cfg) -> None:
    df = frame(300, seed=1)
    df.loc[10:14, "customer_id"] = df.loc[0, "customer_id"]
    batch = ingest.ingest_batch(storage, cfg, [land(storage, cfg, "rep.csv", df)], batch_id="b1")
    (bad,) = batch.quarantined
    assert "customer_id has duplicate values" in bad.reason
    assert storage.get_json(bad.report_key)["failed_expectations"]


@pytest.mark.parametrize("second_name", ["copy.csv", "first.csv"], ids=["other-name", "same"])
def test_the_same_bytes_uploaded_again_are_a_recorded_duplicate(storage, cfg, second_name) -> None:
    data = write_batch(frame(300, seed=2), "csv")
    listed = land(storage, cfg, "first.csv", data)
    first = ingest.ingest_batch(storage, cfg, [listed], batch_id="b1")
    (raw_key,) = first.raw_keys
    next_second(listed)  # S3 times have one-second resolution: a later upload is a new object
    again = ingest.ingest_batch(
        storage, cfg, [land(storage, cfg, second_name, data)], batch_id="b2"
    )
    (dup,) = again.quarantined
    assert dup.reason.startswith("duplicate:") and raw_key in dup.reason
    assert storage.get_json(dup.report_key)["duplicate_of"] == raw_key
    assert [o.key for o in storage.list_objects(cfg.storage.raw_prefix)] == [raw_key]
    assert storage.list_objects(cfg.storage.landing_prefix) == []


def next_second(listed: dict) -> None:
    """Wait (bounded) until an upload would get a later LastModified than ``listed``."""
    landed = datetime.fromisoformat(listed["last_modified"])
    wait_for(lambda: datetime.now(UTC) >= landed + timedelta(seconds=1.05), 5, 0.05, "a second")


def test_two_copies_in_one_batch_accept_exactly_one(storage, cfg) -> None:
    data = write_batch(frame(300, seed=3), "csv")
    files = [land(storage, cfg, "a.csv", data), land(storage, cfg, "b.csv", data)]
    batch = ingest.ingest_batch(storage, cfg, files, batch_id="b1")
    assert len(batch.raw_keys) == 1 and len(batch.quarantined) == 1
    assert storage.list_objects(f"{cfg.storage.ledger_prefix}staging/") == [], "nothing staged"


def test_ids_seen_in_an_earlier_batch_are_rejected_naming_the_earlier_file(storage, cfg) -> None:
    old = frame(400, seed=4)
    first = ingest.ingest_batch(storage, cfg, [land(storage, cfg, "old.csv", old)], batch_id="b1")
    new = frame(400, seed=5, day=8)
    new.loc[:49, "customer_id"] = old.loc[:49, "customer_id"].to_numpy()
    batch = ingest.ingest_batch(storage, cfg, [land(storage, cfg, "new.csv", new)], batch_id="b2")
    (bad,) = batch.quarantined
    assert "50 customer_id value(s) were already ingested" in bad.reason
    assert first.raw_keys[0] in bad.reason, "the reason names the earlier file"


def test_upsert_accepts_the_file_and_the_newest_row_wins_in_training(storage, cfg) -> None:
    cfg = replace(cfg, ingest=replace(cfg.ingest, duplicate_ids="upsert"))
    old = frame(600, seed=6)
    ingest.ingest_batch(storage, cfg, [land(storage, cfg, "old.csv", old)], batch_id="b1")
    new = frame(400, seed=7, day=8)  # a week later: its rows are the newer ones
    new.loc[:99, "customer_id"] = old.loc[:99, "customer_id"].to_numpy()
    batch = ingest.ingest_batch(storage, cfg, [land(storage, cfg, "new.csv", new)], batch_id="b2")
    assert len(batch.raw_keys) == 1 and "100 id(s) replace earlier rows" in batch.outcomes[0].reason
    features.build_features_for_new_raw(storage, cfg)
    checked = retrain.check_training_set(storage, cfg, run_name="run-1")
    assert checked.replaced_rows == 100 and checked.rows == 900
    with staged_training_set(storage, cfg, checked.feature_keys) as ts:
        trained = ts.frame(ts.rows, cfg)
    kept = trained.set_index("customer_id").loc[new.loc[:99, "customer_id"], "event_time"]
    assert (kept.to_numpy() >= pd.Timestamp(START.replace(day=8))).all(), "newest row wins"


@pytest.mark.parametrize("policy", ["reject", "upsert"])
@pytest.mark.parametrize("part_rows", [1_000_000, 40], ids=["one-partition", "partitions"])
def test_ids_overlapping_the_history_and_the_batch_are_decided_alike_in_any_partitions(
    storage, cfg, monkeypatch, policy, part_rows
) -> None:
    """One batch, in key order: a file overlapping the history, a fresh one, one overlapping
    the fresh one, one overlapping both. Many partitions (and markers around every file's
    reading) give the decisions of one."""
    monkeypatch.setattr(spill, "PART_ROWS", part_rows)
    monkeypatch.setattr(id_overlap, "MARK_ROWS", 0 if part_rows < 100 else id_overlap.MARK_ROWS)
    cfg = replace(cfg, ingest=replace(cfg.ingest, duplicate_ids=policy))
    old = frame(300, seed=30)
    first = ingest.ingest_batch(storage, cfg, [land(storage, cfg, "old.csv", old)], batch_id="b1")
    ids = {name: frame(200, seed=31 + n, day=8) for n, name in enumerate("abcd")}
    ids["a"].loc[:9, "customer_id"] = old.loc[:9, "customer_id"].to_numpy()
    ids["c"].loc[:4, "customer_id"] = ids["b"].loc[:4, "customer_id"].to_numpy()
    ids["d"].loc[:2, "customer_id"] = old.loc[20:22, "customer_id"].to_numpy()
    ids["d"].loc[3:6, "customer_id"] = ids["b"].loc[10:13, "customer_id"].to_numpy()
    files = [land(storage, cfg, f"{name}.csv", df) for name, df in ids.items()]
    batch = ingest.ingest_batch(storage, cfg, files, batch_id="b2")
    fates = {o.source_key.rsplit("/", 1)[-1]: o for o in batch.outcomes}
    (b_raw,) = [o.dest_key for name, o in fates.items() if name == "b.csv"]
    if policy == "reject":
        assert [fates[f"{n}.csv"].valid for n in "abcd"] == [False, True, False, False]
        assert "10 customer_id value(s) were already ingested" in fates["a.csv"].reason
        assert "5 customer_id value(s)" in fates["c.csv"].reason and b_raw in fates["c.csv"].reason
        both = fates["d.csv"].reason
        assert "7 customer_id value(s)" in both, "3 from the history, 4 from b"
        assert first.raw_keys[0] in both and b_raw in both, "both earlier files named"
    else:
        assert all(o.valid for o in batch.outcomes)
        replaced = {n: fates[f"{n}.csv"].reason for n in "abcd"}
        assert replaced == {
            "a": "passed; 10 id(s) replace earlier rows (upsert)",
            "b": "passed",
            "c": "passed; 5 id(s) replace earlier rows (upsert)",
            "d": "passed; 7 id(s) replace earlier rows (upsert)",
        }
    layout = Layout.of(cfg)
    assert storage.list_objects(f"{cfg.storage.ledger_prefix}staging/") == [], "nothing staged"
    assert storage.list_objects(layout.attempts_prefix) == [], "no marker left"
    accepted = [o for o in batch.outcomes if o.valid]
    assert len(storage.list_objects(layout.ids_prefix)) == 1 + len(accepted)


def test_a_training_set_rejection_names_the_files_responsible(storage, cfg) -> None:
    """Data that got past ingest by another way (an older version, a manual copy) still cannot
    stall retraining silently: the rejection names the files to retract."""
    layout = Layout.of(cfg)
    df = frame(400, seed=8)
    for name in ("x.csv", "y.csv"):  # the same rows twice, straight into raw/
        storage.put_bytes(layout.raw_key(name, "2026-10-01", "manual"), write_batch(df, "csv"))
    features.build_features_for_new_raw(storage, cfg)
    with pytest.raises(retrain.TrainingSetRejected) as rejected:
        retrain.check_training_set(storage, cfg, run_name="run-1")
    message = str(rejected.value)
    assert "files responsible" in message
    for name in ("x.csv", "y.csv"):
        assert layout.raw_key(name, "2026-10-01", "manual") in message


def test_retract_then_retrain_succeeds_and_replay_brings_the_file_back(storage, cfg) -> None:
    layout = Layout.of(cfg)
    good = frame(800, seed=9)
    ingest.ingest_batch(storage, cfg, [land(storage, cfg, "good.csv", good)], batch_id="b1")
    bad = frame(400, seed=10)
    poisoned = layout.raw_key("bad.csv", "2026-10-01", "manual")  # two copies: a stalled set
    for key in (poisoned, layout.raw_key("bad2.csv", "2026-10-01", "manual")):
        storage.put_bytes(key, write_batch(bad, "csv"))
    features.build_features_for_new_raw(storage, cfg)
    with pytest.raises(retrain.TrainingSetRejected):
        retrain.check_training_set(storage, cfg, run_name="stalled")

    done = retract(storage, cfg, "batch=manual", reason="exported twice", who="tester")
    assert len(done.raw_keys) == 2
    assert not any(storage.exists(k) for k in done.raw_keys + done.feature_keys)
    report = storage.get_json(layout.report_key(done.quarantine_keys[0]))
    assert report["retracted"]["by"] == "tester" and "exported twice" in report["reason"]
    checked = retrain.check_training_set(storage, cfg, run_name="after-retract")
    assert checked.rows == 800

    back = replay(storage, cfg, layout.retracted_key(poisoned), reason="fixed", who="tester")
    assert back.landing_key == cfg.storage.landing_prefix + "bad.csv"
    files = [f for f in ingest.landed_files(storage, cfg)]
    batch = ingest.ingest_batch(storage, cfg, files, batch_id="b3")
    assert len(batch.raw_keys) == 1, "retracted bytes no longer count as ingested"
    actions = Ledger(storage, layout).actions()
    assert [a["action"] for a in actions] == ["replay", "retract"]
    assert all(a["by"] == "tester" and a["at"] for a in actions)


def test_retract_and_replay_refuse_what_they_cannot_do(storage, cfg) -> None:
    with pytest.raises(CurationError, match="names no accepted file"):
        retract(storage, cfg, "nothing.csv", reason="x")
    with pytest.raises(CurationError, match="needs a reason"):
        retract(storage, cfg, "nothing.csv", reason=" ")
    with pytest.raises(CurationError, match="not a quarantined file"):
        replay(storage, cfg, "raw/x.csv")


HOSTILE = {
    "../raw/escape.csv": "quarantine",
    "a//b.csv": "quarantine",
    "bad\x01name.csv": "quarantine",  # moto refuses to store a key with a newline
    "x" * 300 + ".csv": "quarantine",
    "empty.csv": "quarantine",
    "upload.csv.part": "ignore",
    ".hidden.csv": "ignore",
    "sub/": "ignore",
    "notes.txt": "quarantine",
    "ok/nested.csv": "raw",
}


def test_hostile_keys_each_get_their_documented_fate(storage, cfg) -> None:
    body = write_batch(frame(100, seed=11), "csv")
    for name in HOSTILE:
        data = b"" if name in ("empty.csv", "sub/") else body
        if name == "ok/nested.csv":
            data = write_batch(frame(100, seed=12), "csv")
        storage.put_bytes(cfg.storage.landing_prefix + name, data)
    files = ingest.landed_files(storage, cfg)
    batch = ingest.ingest_batch(storage, cfg, files, batch_id="b1")
    fates = {o.source_key[len(cfg.storage.landing_prefix) :]: o for o in batch.outcomes}
    for name, fate in HOSTILE.items():
        if fate == "ignore":
            assert name not in fates and storage.exists(cfg.storage.landing_prefix + name)
            continue
        outcome = fates[name]
        assert outcome.valid == (fate == "raw"), (name, outcome.reason)
        prefix = cfg.storage.raw_prefix if fate == "raw" else cfg.storage.quarantine_prefix
        assert outcome.dest_key.startswith(prefix)
        assert ".." not in outcome.dest_key.split("/") and "\x01" not in outcome.dest_key
        assert len(outcome.dest_key.encode()) < 1024
        if fate == "quarantine":
            assert storage.get_json(outcome.report_key)["file"] == outcome.source_key
    every = [o.key for o in storage.list_objects("")]
    s = cfg.storage
    allowed = (s.landing_prefix, s.raw_prefix, s.quarantine_prefix, s.ledger_prefix)
    allowed += (s.reports_prefix,)
    assert all(k.startswith(allowed) for k in every), "nothing written outside its prefix"


class CrashAfterCopy(S3Storage):
    """Fault injection on the real server: the process dies between copy and delete."""

    def move(self, src: str, dst: str, *, if_etag: str | None = None) -> None:
        self.client.copy_object(
            Bucket=self.bucket, Key=dst, CopySource={"Bucket": self.bucket, "Key": src}
        )
        raise SystemExit("killed between copy and delete")


def test_a_crash_between_copy_and_delete_never_makes_a_second_copy(storage, cfg) -> None:
    files = [land(storage, cfg, "a.csv", frame(300, seed=13))]
    crashing = CrashAfterCopy(storage.client, storage.bucket)
    with pytest.raises(SystemExit):
        ingest.ingest_batch(crashing, cfg, files, batch_id="run-that-died")
    # the next run (a new batch id) lists the same object again
    again = ingest.ingest_batch(storage, cfg, ingest.landed_files(storage, cfg), batch_id="next")
    assert where_is(storage, cfg, "a.csv") == list(again.raw_keys)
    assert "batch=run-that-died" in again.raw_keys[0], "the claim fixed the destination"


def test_two_routers_racing_route_each_object_once(storage, cfg) -> None:
    files = [land(storage, cfg, f"f{i}.csv", frame(100, seed=20 + i)) for i in range(4)]
    verdicts = validate.validate_files(storage, cfg, files, batch_id="v")
    errors: list[BaseException] = []

    def route(batch_id: str) -> None:
        try:
            ingest.route_batch(storage, cfg, verdicts, batch_id=batch_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=route, args=(b,)) for b in ("r1", "r2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for i in range(4):
        assert len(where_is(storage, cfg, f"f{i}.csv")) == 1
    assert storage.list_objects(cfg.storage.landing_prefix) == []


def test_small_files_are_validated_together_and_judged_one_by_one(storage, cfg) -> None:
    """One GX run over the clean files, with one stored result naming them; the bad file in
    their midst gets its own run and its own result, and the order of the batch holds."""
    files = [land(storage, cfg, f"f{i}.csv", frame(100, seed=40 + i)) for i in range(5)]
    bad = frame(100, seed=99)
    bad.loc[3, "contract"] = "platinum"
    files.insert(2, land(storage, cfg, "bad.csv", bad))
    verdicts = validate.validate_files(storage, cfg, files, batch_id="g")
    assert [v.key for v in verdicts] == [f["key"] for f in files]
    assert [v.fate for v in verdicts] == ["accept"] * 2 + ["quarantine"] + ["accept"] * 3
    accepted = [v for v in verdicts if v.fate == "accept"]
    (shared,) = {v.result_key for v in accepted}
    assert shared is not None and "/group-" in shared
    stored = storage.get_json(shared)
    assert stored["success"] and stored["result"]["meta"]["files"] == 5
    assert [f["file"] for f in stored["files"]] == [v.key for v in accepted]
    layout = Layout.of(cfg)
    for v in accepted:  # staged for routing, as a file validated alone
        assert storage.exists(layout.staged_ids_key(v.sha256))
    rejected = verdicts[2]
    assert "contract has unknown values ['platinum'] (1 row)" in rejected.reason
    assert rejected.result_key == layout.validation_result_key("g", rejected.object_id)
    assert storage.get_json(rejected.result_key)["success"] is False


def test_a_file_of_many_chunks_is_validated_from_local_disk_and_leaves_nothing_behind(
    storage, cfg, monkeypatch, tmp_path
) -> None:
    """Chunks of 100 rows: the file is streamed to a local temporary file, its ids go to a
    local Parquet file a row group a chunk and are staged from it, the uniqueness check runs in
    many partitions, and every local file is gone when the step returns."""
    import pyarrow.parquet as pq

    from validation import gates

    monkeypatch.setattr(gates, "RAW_CHUNK_ROWS", 100)
    monkeypatch.setattr(spill, "PART_ROWS", 50)  # a few partitions for 250 rows
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    clean = frame(250, seed=61)
    twice = frame(250, seed=62)
    twice.loc[230, "customer_id"] = twice.loc[5, "customer_id"]  # in the first and last chunk
    files = [land(storage, cfg, "clean.csv", clean), land(storage, cfg, "twice.parquet", twice)]
    verdicts = validate.validate_files(storage, cfg, files, batch_id="big")
    assert [v.fate for v in verdicts] == ["accept", "quarantine"], [v.reason for v in verdicts]
    assert verdicts[0].rows == 250
    assert "customer_id has duplicate values" in verdicts[1].reason
    stored = storage.get_json(verdicts[1].result_key)
    assert stored["result"]["meta"]["chunks"] == 5  # Parquet in a light task: 50 rows a chunk
    unique = [
        r
        for r in stored["result"]["results"]
        if r["expectation_config"]["type"].endswith("to_be_unique")
    ]
    assert unique[0]["result"]["partial_unexpected_index_list"] == [5, 230]
    assert list(tmp_path.iterdir()) == [], "the step left local files behind"
    layout = Layout.of(cfg)
    staged = tmp_path / "staged.parquet"
    storage.download(layout.staged_ids_key(verdicts[0].sha256), staged)
    assert pq.ParquetFile(staged).metadata.num_row_groups == 3  # written chunk by chunk
    assert pd.read_parquet(staged)["id"].tolist() == clean["customer_id"].astype(str).tolist()
    staged.unlink()
    routed = ingest.route_batch(storage, cfg, verdicts, batch_id="big")
    assert [o.valid for o in routed.outcomes] == [True, False]
    assert Ledger(storage, layout).accepted_ids(verdicts[0].sha256).tolist() == (
        clean["customer_id"].astype(str).tolist()
    )
    assert list(tmp_path.iterdir()) == [], "route left local files behind"
