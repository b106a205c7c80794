import dataclasses
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import load_config
from retrain.datagen import generate
from retrain.features import build_features, feature_names
from retrain.training import (
    Model,
    average_precision,
    evaluate,
    log_loss,
    roc_auc,
    split_by_time,
    train_model,
)

CFG = load_config(Path(__file__).parents[2] / "retrain.toml", env={})
DS = CFG.dataset


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return build_features(generate(10_000, seed=31, start=datetime(2025, 2, 1)), DS)


@pytest.fixture(scope="module")
def result(features):
    return train_model(features, CFG)


def test_model_learns_real_signal(result):
    m = result.metrics
    assert 0.7 < m.auc < 0.95
    assert m.average_precision > 2 * m.positive_rate  # far better than random ranking
    assert m.logloss < 0.45
    assert m.n_rows == result.n_holdout == 2000
    assert result.n_train == 8000
    assert 1 <= result.best_iteration <= CFG.training.num_boost_round


def test_holdout_is_the_newest_slice(features, result):
    train, holdout = split_by_time(features, DS, CFG.training.holdout_fraction)
    assert len(train) + len(holdout) == len(features)
    assert train["event_time"].max() <= holdout["event_time"].min()
    assert not set(train["customer_id"]) & set(holdout["customer_id"])
    assert result.holdout_start == holdout["event_time"].min().isoformat()
    assert result.metrics == evaluate(result.model, holdout, DS)


def test_split_is_deterministic_with_ties():
    df = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(10)],
            "event_time": pd.to_datetime(["2025-01-01"] * 5 + ["2025-01-02"] * 5),
            "churned": [0, 1] * 5,
        }
    )
    train, holdout = split_by_time(df, DS, 0.3)
    assert holdout["customer_id"].tolist() == ["c7", "c8", "c9"]
    shuffled = df.sample(frac=1.0, random_state=0)
    train2, holdout2 = split_by_time(shuffled, DS, 0.3)
    pd.testing.assert_frame_equal(holdout2, holdout)
    pd.testing.assert_frame_equal(train2, train)
    with pytest.raises(ValueError):
        split_by_time(df, DS, 1.0)


def test_text_round_trip_gives_identical_predictions(features, result):
    text = result.model.to_text()
    assert "pandas_categorical" in text
    loaded = Model.from_text(text)
    assert loaded.feature_names == result.model.feature_names == tuple(feature_names(DS))
    _, holdout = split_by_time(features, DS, 0.2)
    expected = result.model.predict_proba(holdout)
    assert np.array_equal(loaded.predict_proba(holdout), expected)
    assert ((expected > 0) & (expected < 1)).all()
    # Column order and extra columns do not matter: features are selected by name.
    reordered = holdout[list(reversed(holdout.columns))]
    assert np.array_equal(loaded.predict_proba(reordered), expected)


def test_predictions_use_category_codes(features, result):
    """A single-row file must score the same as that row inside a larger file."""
    row = features.iloc[[5]]
    assert row["contract"].cat.categories.tolist() == list(DS.column("contract").categories)
    full = result.model.predict_proba(features)
    assert result.model.predict_proba(row)[0] == full[5]


def test_missing_feature_is_an_error(features, result):
    with pytest.raises(KeyError, match="support_calls"):
        result.model.predict_proba(features.drop(columns=["support_calls"]))


def test_training_is_deterministic():
    small = build_features(generate(3000, seed=32, start=datetime(2025, 2, 1)), DS)
    cfg = dataclasses.replace(CFG, training=dataclasses.replace(CFG.training, num_boost_round=60))
    a, b = train_model(small, cfg), train_model(small, cfg)
    assert a.model.to_text() == b.model.to_text()
    assert a.metrics == b.metrics


def test_single_class_training_data_is_rejected(features):
    with pytest.raises(ValueError, match="single class"):
        train_model(features.assign(churned=0), CFG)


def test_roc_auc_with_ties_hand_computed():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4])
    # Positive-negative pairs: 0.35 beats 1; 0.8 beats 3; 0.4 beats 1 and ties 2 -> 6 of 9.
    assert roc_auc(y, s) == pytest.approx(6 / 9)
    assert roc_auc(y, np.ones(6)) == pytest.approx(0.5)
    assert roc_auc(1 - y, -s) == pytest.approx(6 / 9)
    assert math.isnan(roc_auc(np.ones(3), np.arange(3)))


def test_average_precision_hand_computed():
    # Thresholds 0.9 (P=1, R=.5) then the tied 0.8 group (P=2/3, R=1).
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1]) == pytest.approx(0.5 + 1 / 3)
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(0.5 + 1 / 3)
    assert average_precision([0, 1, 1], [0.1, 0.8, 0.9]) == pytest.approx(1.0)
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_log_loss_hand_computed():
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert log_loss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(expected)
    assert math.isfinite(log_loss(np.array([1]), np.array([0.0])))


def test_metrics_as_dict(result):
    d = result.metrics.as_dict()
    assert set(d) == {"auc", "logloss", "average_precision", "positive_rate", "n_rows"}
    assert d["auc"] == result.metrics.auc
