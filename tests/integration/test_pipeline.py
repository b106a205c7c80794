"""The pipeline's steps in order against a real S3-compatible server, outside Airflow:
what each DAG task does, with real GX checkpoints and real LightGBM models."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest

from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.registry import ModelRegistry
from retrain.steps import features, ingest, retrain
from retrain.storage import S3Storage

START = datetime(2026, 10, 1)


@pytest.fixture
def cfg(config: Config, storage: S3Storage) -> Config:
    return replace(config, storage=replace(config.storage, bucket=storage.bucket))


def _land(
    storage: S3Storage, cfg: Config, name: str, scenario: str, rows: int, seed: int, days=0.0
) -> dict:
    fmt = "parquet" if name.endswith(".parquet") else "csv"
    df = generate(rows, seed=seed, scenario=scenario, start=START.replace(day=1 + int(days)))
    key = f"landing/{name}"
    storage.put_bytes(key, write_batch(df, fmt))
    (listed,) = [f for f in ingest.landed_files(storage, cfg) if f["key"] == key]
    return listed


def _run_all(storage: S3Storage, cfg: Config, files: list[dict], run: str):
    batch = ingest.ingest_batch(storage, cfg, files, batch_id=ingest.batch_id_for(run))
    built = features.build_features_for_new_raw(storage, cfg)
    checked = retrain.check_training_set(storage, cfg, run_name=run)
    challenger = retrain.train_challenger(storage, cfg, list(checked.feature_keys))
    record = retrain.evaluate_and_decide(
        storage, cfg, list(checked.feature_keys), challenger.version
    )
    serving = retrain.refit_for_serving(storage, cfg, record.as_dict())
    return batch, built, challenger, record, retrain.deploy(storage, cfg, serving)


def test_first_batch_routes_files_and_deploys_a_first_model(storage: S3Storage, cfg) -> None:
    files = [
        _land(storage, cfg, "a.csv", "normal", 2500, seed=1),
        _land(storage, cfg, "b.parquet", "normal", 2500, seed=2),
        _land(storage, cfg, "broken.csv", "corrupt", 200, seed=3),
    ]
    batch, built, challenger, record, deployed = _run_all(storage, cfg, files, "run-1")

    assert len(batch.raw_keys) == 2 and len(batch.quarantined) == 1
    bad = batch.quarantined[0]
    assert bad.dest_key.startswith("quarantine/") and bad.dest_key.endswith("broken.csv")
    report = storage.get_json(bad.report_key)
    assert report["failed_expectations"], "the report says which expectations failed"
    assert storage.list_objects("landing/") == [], "every landed file was routed"
    assert len(built.written) == 2 and built.rows == 5000
    assert challenger.metrics["auc"] > 0.7
    assert record.deploy and record.champion_version is None
    assert (record.rule, record.evaluated_on) == ("first_model", "time")
    assert deployed.deployed
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    champion = registry.champion()
    assert champion is not None and champion.version == deployed.version != challenger.version
    serving = registry.load_metadata(champion.version)
    assert serving["refit_of"] == challenger.version and serving["n_train"] == 5000
    # the drift baseline belongs to what serves: the refit has one, the challenger none
    assert registry.load_reference(champion.version)["features"]
    assert not storage.exists(f"models/{challenger.version}/reference.json")
    with pytest.raises(ValueError, match="without its refit for serving"):
        retrain.deploy(storage, cfg, record.as_dict())
    assert serving["best_iteration"] == challenger.best_iteration
    index = storage.get_bytes("reports/index.html").decode()
    assert challenger.version in index and "broken.csv" in index
    # the batch's files, then the training-set check: one history page each, newest linked
    assert 'href="history/page-000001.html"' in index
    files = storage.get_bytes("reports/history/page-000000.html").decode()
    assert files.count('href="../validations/') == 3
    check = storage.get_bytes("reports/history/page-000001.html").decode()
    assert "training set" in check and 'href="../training/' in check
    # ... and carries the files' page forward: one page shows both, nothing older to link
    assert check.count('href="../validations/') == 3 and "older" not in check
    # one decision, reachable by either id; the refit says what it learned from
    pages = {
        v: storage.get_bytes(f"reports/decisions/{v}.html")
        for v in (challenger.version, champion.version)
    }
    assert pages[challenger.version] == pages[champion.version]
    assert b"Deployed as " + champion.version.encode() in pages[champion.version]
    assert (serving["n_train"], serving["sampled_from"]) == (5000, 0)
    evaluated = registry.load_decision(challenger.version)
    assert evaluated["serving_version"] == champion.version
    assert evaluated == registry.load_decision(champion.version)
    assert evaluated["serving_n_train"] == 5000 and evaluated["serving_sampled_from"] == 0
    page = bad.result_key.removesuffix(".json") + ".html"
    assert "expect_column_values_to_be_in_set" in storage.get_bytes(page).decode()


def test_the_decision_uses_the_challengers_own_holdout_scores(storage: S3Storage, cfg) -> None:
    """train_challenger keeps its holdout scores; the decision reads them instead of scoring the
    same rows again (the metrics agree), and scores again when they do not fit the rows."""
    _run_all(storage, cfg, [_land(storage, cfg, "w1.csv", "normal", 3000, seed=1)], "run-1")
    _land(storage, cfg, "w2.csv", "normal", 3000, seed=2, days=7)
    ingest.ingest_batch(storage, cfg, ingest.landed_files(storage, cfg), batch_id="b2")
    features.build_features_for_new_raw(storage, cfg)
    keys = list(retrain.check_training_set(storage, cfg, run_name="run-2").feature_keys)
    challenger = retrain.train_challenger(storage, cfg, keys)
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    scores = registry.load_holdout_scores(challenger.version)
    assert scores is not None and len(scores) == challenger.n_holdout == 1500
    record = retrain.evaluate_and_decide(storage, cfg, keys, challenger.version)
    assert record.challenger_metrics == challenger.metrics
    # what the decision reads: scores that rank every holdout row the other way round
    key = f"{cfg.storage.models_prefix}{challenger.version}/holdout_scores.npy"
    buf = io.BytesIO()
    np.save(buf, 1 - scores)
    storage.put_bytes(key, buf.getvalue())
    flipped = retrain.evaluate_and_decide(storage, cfg, keys, challenger.version)
    assert flipped.challenger_metrics["auc"] == pytest.approx(1 - challenger.metrics["auc"])
    np.save(buf := io.BytesIO(), scores[:-1])  # not the holdout's rows: scored again
    storage.put_bytes(key, buf.getvalue())
    again = retrain.evaluate_and_decide(storage, cfg, keys, challenger.version)
    assert again.challenger_metrics == challenger.metrics


def test_retry_of_ingest_routes_nothing_twice(storage: S3Storage, cfg) -> None:
    files = [_land(storage, cfg, "a.csv", "normal", 500, seed=1)]
    first = ingest.ingest_batch(storage, cfg, files, batch_id="b1")
    again = ingest.ingest_batch(storage, cfg, files, batch_id="b1")
    assert again.raw_keys == first.raw_keys
    assert [o.key for o in storage.list_objects("raw/")] == list(first.raw_keys)


def test_second_batch_is_compared_with_the_champion(storage: S3Storage, cfg) -> None:
    _run_all(storage, cfg, [_land(storage, cfg, "w1.csv", "normal", 4000, seed=1)], "run-1")
    first = ModelRegistry(storage, cfg.storage.models_prefix).champion()
    _, built, challenger, record, deployed = _run_all(
        storage, cfg, [_land(storage, cfg, "w2.csv", "drifted", 4000, seed=2, days=7)], "run-2"
    )
    assert built.already_built == 1 and len(built.written) == 1, "features are incremental"
    assert record.champion_version == first.version
    assert record.champion_metrics is not None and record.drift is not None
    assert record.drift["data_drifted"] and record.drift["drifted"], record.drift["summary"]
    # judged on the newest half of the drifted week, which the champion never saw; the
    # challenger learned from the older half, so it has seen what changed
    assert record.evaluated_on == "new data" and record.comparison["n_rows"] == 2000
    assert challenger.new_keys == tuple(built.written) and challenger.n_train == 6000
    # the drift check looks at the whole week
    assert {f["n_current"] for f in record.drift["features"]} == {4000}
    assert (record.deploy, record.rule) == (True, "non_inferior_after_change"), record.reason
    assert record.reason.startswith("deploy: data drifted")
    champion = ModelRegistry(storage, cfg.storage.models_prefix).champion()
    assert deployed.deployed and champion.version == deployed.version
    assert (
        ModelRegistry(storage, cfg.storage.models_prefix).load_metadata(champion.version)["n_train"]
        == 8000
    ), "the serving model learned the drifted week too"
    assert storage.exists(f"reports/drift/{challenger.version}.html")
    page = storage.get_bytes(f"reports/decisions/{challenger.version}.html").decode()
    assert "non_inferior_after_change" in page and deployed.version in page


def test_a_training_set_failing_its_checkpoint_stops_training(storage: S3Storage, cfg) -> None:
    strict = replace(cfg, validation=replace(cfg.validation, training_min_rows=10**6))
    ingest.ingest_batch(
        storage, strict, [_land(storage, strict, "a.csv", "normal", 300, seed=1)], batch_id="b1"
    )
    features.build_features_for_new_raw(storage, strict)
    with pytest.raises(retrain.TrainingSetRejected, match="champion keeps serving"):
        retrain.check_training_set(storage, strict, run_name="run-x")
    assert storage.list_objects("reports/training/"), "the rejection has a report"


def test_a_file_that_crashes_the_gate_is_quarantined_not_retried_forever(
    storage: S3Storage, cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash hits the run over the small files together, then the odd file's own run: it
    alone is quarantined with the error, its neighbours are accepted."""
    from great_expectations.checkpoint.checkpoint import Checkpoint

    run = Checkpoint.run

    def crash(self, *args, **kwargs):  # fault injection: a GX bug hit by one odd file
        frame = kwargs["batch_parameters"]["dataframe"]
        if "total_charges" in frame and (frame["total_charges"] == 4242.42).any():
            raise RuntimeError("boom in the gate")
        return run(self, *args, **kwargs)

    monkeypatch.setattr(Checkpoint, "run", crash)
    files = [_land(storage, cfg, f"n{i}.csv", "normal", 100, seed=i) for i in (2, 3)]
    odd = generate(100, seed=1, start=START)
    odd.loc[5, "total_charges"] = 4242.42
    storage.put_bytes("landing/odd.csv", write_batch(odd, "csv"))
    files += [f for f in ingest.landed_files(storage, cfg) if f["key"] == "landing/odd.csv"]
    batch = ingest.ingest_batch(storage, cfg, files, batch_id="b1")
    assert sorted(o.source_key for o in batch.outcomes if o.valid) == [
        "landing/n2.csv",
        "landing/n3.csv",
    ]
    (outcome,) = batch.quarantined
    assert "validation crashed" in outcome.reason and "boom in the gate" in outcome.reason
    assert storage.exists(outcome.report_key) and storage.exists(outcome.dest_key)
    assert storage.list_objects("landing/") == []


def test_a_rows_window_trains_on_the_newest_files_and_a_snapshot_trains_the_same_model(
    storage: S3Storage, cfg
) -> None:
    files = [
        _land(storage, cfg, name, "normal", rows, seed=seed, days=seed)
        for name, rows, seed in (("w1.csv", 3000, 1), ("w2.csv", 1500, 2), ("w3.csv", 1500, 3))
    ]
    ingest.ingest_batch(storage, cfg, files, batch_id="b1")
    features.build_features_for_new_raw(storage, cfg)
    every = retrain.pinned_feature_keys(storage, cfg)
    assert [k.rsplit("/", 1)[1] for k in every] == [
        "w1.csv.parquet",
        "w2.csv.parquet",
        "w3.csv.parquet",
    ]
    windowed = replace(cfg, training=replace(cfg.training, window_rows=2000))
    keys = retrain.pinned_feature_keys(storage, windowed)
    assert keys == every[1:], "the newest files until 2,000 rows: 1,500 + 1,500"
    assert storage.head_metadata(keys[0])[features.ROWS_METADATA] == "1500"
    checked = retrain.check_training_set(storage, windowed, run_name="window")
    assert checked.feature_keys == keys and checked.rows == 3000
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    first, second = (retrain.train_challenger(storage, windowed, list(keys)) for _ in range(2))
    assert first.n_train + first.n_holdout == 3000
    snap = registry.load_metadata(first.version)["snapshot"]
    assert snap == registry.load_metadata(second.version)["snapshot"]
    assert snap["files"] == [{"key": k, "etag": storage.head_etag(k).strip('"')} for k in keys]
    assert snap["seed"] == cfg.training.seed and snap["libraries"]["lightgbm"]
    assert len(snap["config_sha256"]) == 64
    # the same snapshot, config and seed: the same model, tree for tree
    assert registry.load_model_text(first.version) == registry.load_model_text(second.version)
