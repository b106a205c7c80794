"""Batch scoring and the model commands against the real local S3 server, with real LightGBM
models trained by the library on featurized synthetic data."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from retrain import cli
from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.features import build_features
from retrain.layout import Layout
from retrain.local.s3server import DUMMY_CREDENTIALS
from retrain.registry import ModelRegistry
from retrain.steps.scoring import ScoringRefused, score_newest
from retrain.storage import S3Storage
from retrain.tables import coerce_types
from retrain.training import Model, train_model

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 1)
_CREATED = itertools.count()  # versions one second apart: ids sort by creation


@pytest.fixture
def cfg(config: Config, storage: S3Storage) -> Config:
    return replace(
        config,
        storage=replace(config.storage, bucket=storage.bucket),
        training=replace(config.training, num_boost_round=25, early_stopping_rounds=5),
    )


@pytest.fixture
def registry(storage: S3Storage, cfg: Config) -> ModelRegistry:
    return ModelRegistry(storage, cfg.storage.models_prefix)


def land(storage: S3Storage, cfg: Config, name: str, batch: str, rows: int, seed: int) -> str:
    """An accepted file's feature file, as the features DAG writes it; returns its key."""
    layout = Layout.of(cfg)
    raw = generate(rows, seed=seed, start=START + timedelta(days=seed))
    key = layout.feature_key(layout.raw_key(name, "2026-10-01", batch))
    storage.write_parquet(key, build_features(coerce_types(raw, cfg.dataset), cfg.dataset))
    return key


def train(storage: S3Storage, cfg: Config, keys: list[str]) -> str:
    """A challenger trained on ``keys`` and saved like the retrain DAG saves one."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    frame = pd.concat([storage.read_parquet(k) for k in keys], ignore_index=True)
    result = train_model(frame, cfg)
    version = registry.new_version(datetime.now(UTC) + timedelta(seconds=next(_CREATED)))
    registry.save_version(
        version,
        model_text=result.model.to_text(),
        metadata={
            "metrics": result.metrics.as_dict(),
            "feature_keys": list(keys),
            "created_at": datetime.now(UTC).isoformat(),
        },
        reference_profile={},
    )
    return version


def deploy(registry: ModelRegistry, version: str) -> None:
    registry.record_decision(version, {"version": version, "deploy": True, "reason": "better"})
    metrics = registry.load_metadata(version)["metrics"]
    registry.promote(version, expected=registry.champion(), reason="better", metrics=metrics)


@pytest.fixture
def first(storage: S3Storage, cfg: Config, registry: ModelRegistry):
    """Batch A (one file), batch B (two files), a model trained on all three and deployed."""
    keys = [
        land(storage, cfg, "a.csv", "A", 600, seed=1),
        land(storage, cfg, "b.csv", "B", 300, seed=2),
        land(storage, cfg, "c.parquet", "B", 200, seed=3),
    ]
    version = train(storage, cfg, keys)
    deploy(registry, version)
    return version, keys


def test_first_scoring_scores_the_newest_batch(storage, cfg, registry, first) -> None:
    version, (a, b, c) = first
    result = score_newest(storage, cfg, version)

    assert (result.version, result.requested_version) == (version, version)
    assert result.feature_keys == (b, c), "the newest batch only: history is not back-scored"
    assert result.prediction_keys == (
        f"predictions/{version}/ingest_date=2026-10-01/batch=B/b.csv.parquet",
        f"predictions/{version}/ingest_date=2026-10-01/batch=B/c.parquet.parquet",
    )
    assert result.rows == 500 and "first scoring" in result.note
    model = Model.from_text(registry.load_model_text(version))
    for feature_key, key in zip(result.feature_keys, result.prediction_keys, strict=True):
        scores, features = storage.read_parquet(key), storage.read_parquet(feature_key)
        assert list(scores.columns) == ["customer_id", "event_time", "score", "model_version"]
        assert scores["customer_id"].tolist() == features["customer_id"].tolist()
        assert (scores["model_version"] == version).all()
        assert scores["score"].between(0, 1).all()
        assert scores["score"].tolist() == pytest.approx(model.predict_proba(features).tolist())

    manifest = storage.get_json(result.manifest_key)
    assert result.manifest_key == f"predictions/{version}/manifest.json"
    assert manifest["rows"] == 500 and manifest["version"] == version
    assert [f["feature_key"] for f in manifest["files"]] == [b, c]
    assert [f["rows"] for f in manifest["files"]] == [300, 200]
    assert manifest["scored_at"]
    assert storage.get_json("predictions/_scored.json")["feature_keys"] == sorted([a, b, c])


def test_a_second_scoring_scores_only_the_new_files(storage, cfg, registry, first) -> None:
    v1, keys = first
    score_newest(storage, cfg, v1)
    d = land(storage, cfg, "d.csv", "C", 400, seed=4)
    v2 = train(storage, cfg, [*keys, d])
    deploy(registry, v2)

    result = score_newest(storage, cfg, v2)
    assert result.version == v2 and result.feature_keys == (d,) and result.rows == 400
    assert result.note == ""
    assert [f["feature_key"] for f in storage.get_json(result.manifest_key)["files"]] == [d]
    assert len(storage.get_json(f"predictions/{v1}/manifest.json")["files"]) == 2, "kept"

    again = score_newest(storage, cfg, v2)  # a rerun of the same event
    assert again.manifest_key is None and again.rows == 0 and "nothing new" in again.note
    assert len(storage.list_objects(f"predictions/{v2}/")) == 2


def test_a_held_model_never_scores(storage, cfg, registry, first) -> None:
    v1, keys = first
    held = train(storage, cfg, keys)
    registry.record_decision(held, {"version": held, "deploy": False, "reason": "not better"})
    with pytest.raises(ScoringRefused, match="never deployed"):
        score_newest(storage, cfg, held)
    with pytest.raises(ScoringRefused, match="does not exist"):
        score_newest(storage, cfg, "20990101T000000Z-ffffff")
    assert storage.list_objects("predictions/") == []
    assert registry.champion().version == v1


def test_nothing_scores_without_a_champion(storage, cfg) -> None:
    with pytest.raises(ScoringRefused, match="no champion"):
        score_newest(storage, cfg, None)


def test_the_current_champion_scores_when_it_moved(storage, cfg, registry, first) -> None:
    """v2's deploy event arrives after a rollback to v1: v1 scores v2's new data, and says so."""
    v1, keys = first
    score_newest(storage, cfg, v1)
    d = land(storage, cfg, "d.csv", "C", 300, seed=4)
    v2 = train(storage, cfg, [*keys, d])
    deploy(registry, v2)
    registry.rollback(reason="v2 is wrong")

    result = score_newest(storage, cfg, v2)
    assert (result.version, result.requested_version, result.feature_keys) == (v1, v2, (d,))
    assert "moved from" in result.note and result.prediction_keys[0].startswith(
        f"predictions/{v1}/"
    )
    assert (storage.read_parquet(result.prediction_keys[0])["model_version"] == v1).all()
    manifest = storage.get_json(f"predictions/{v1}/manifest.json")
    assert [f["feature_key"] for f in manifest["files"]] == [*keys[1:], d], "merged"
    assert manifest["rows"] == 800


def test_without_an_event_the_champion_scores(storage, cfg, registry, first) -> None:
    v1, (_, b, c) = first
    result = score_newest(storage, cfg, None)
    assert result.version == v1 and result.feature_keys == (b, c)
    assert "no model event" in result.note


def test_retracted_files_are_skipped(storage, cfg, registry, first) -> None:
    v1, (_, b, c) = first
    storage.delete(c)
    result = score_newest(storage, cfg, v1)
    assert result.feature_keys == (b,) and result.missing == (c,)
    assert storage.get_json(result.manifest_key)["missing"] == [c]


# -- the commands ------------------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch, storage: S3Storage, s3_server, tmp_path):
    monkeypatch.setenv("RETRAIN__STORAGE__BUCKET", storage.bucket)
    monkeypatch.setenv("RETRAIN__STORAGE__ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    monkeypatch.setenv("RETRAIN_USER", "alice")
    return ["--root", str(tmp_path / "no-stack")]


def test_predict_scores_a_local_file(env, tmp_path, capsys, storage, cfg, registry) -> None:
    path = tmp_path / "new.csv"
    raw = generate(50, seed=9, start=START).drop(columns=["churned"])
    path.write_bytes(write_batch(raw, "csv"))
    assert cli.main([*env, "predict", str(path)]) == 1
    assert "no champion deployed" in capsys.readouterr().err

    version = train(storage, cfg, [land(storage, cfg, "a.csv", "A", 600, seed=1)])
    deploy(registry, version)
    assert cli.main([*env, "predict", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"scored 50 row(s) of {path} with the champion {version}" in out
    scores = pd.read_csv(tmp_path / "new.predictions.csv")
    assert list(scores.columns) == ["customer_id", "event_time", "score", "model_version"]
    assert scores["customer_id"].tolist() == raw["customer_id"].tolist()
    assert (scores["model_version"] == version).all() and scores["score"].between(0, 1).all()

    parquet = tmp_path / "out" / "p.parquet"
    assert cli.main([*env, "predict", str(path), "--out", str(parquet)]) == 0
    assert pd.read_parquet(parquet)["score"].tolist() == pytest.approx(scores["score"].tolist())

    path.write_bytes(write_batch(raw.drop(columns=["contract", "region"]), "csv"))
    assert cli.main([*env, "predict", str(path)]) == 1
    assert "missing column(s) ['contract', 'region']" in capsys.readouterr().err
    assert cli.main([*env, "predict", str(tmp_path / "nope.csv")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_models_and_rollback_commands(env, capsys, storage, cfg, registry) -> None:
    key = land(storage, cfg, "a.csv", "A", 600, seed=1)
    v1 = train(storage, cfg, [key])
    deploy(registry, v1)
    v2 = train(storage, cfg, [key])
    deploy(registry, v2)
    held = train(storage, cfg, [key])
    registry.record_decision(held, {"version": held, "deploy": False, "reason": "not better"})

    assert cli.main([*env, "models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split() == ["VERSION", "CREATED", "AUC", "DECISION", "SERVING", "REASON"]
    assert lines[2].split()[:1] == [held] and "hold" in lines[2] and "not better" in lines[2]
    assert lines[3].startswith(f"* {v2}") and "deploy" in lines[3]
    assert "promotions (newest first):" in out and f"deploy    {v2} <- {v1}" in out

    assert cli.main([*env, "rollback", held, "--reason", "try it"]) == 1
    assert "never was champion" in capsys.readouterr().err
    assert cli.main([*env, "rollback", "--reason", "v2 scores look off"]) == 0
    out = capsys.readouterr().out
    assert f"rolled back: champion {v2} -> {v1}" in out and "by alice" in out
    assert registry.champion().version == v1
    assert cli.main([*env, "rollback", "--reason", "again"]) == 1
    assert "nothing to roll back to" in capsys.readouterr().err
    assert cli.main([*env, "rollback", v1, "--reason", "x"]) == 1
    assert "is the champion already" in capsys.readouterr().err

    assert cli.main([*env, "models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [p["kind"] for p in listing["promotions"]] == ["rollback", "deploy", "deploy"]
    assert [m["champion"] for m in listing["models"]] == [False, False, True]
