import json
import math
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import load_config
from retrain.datagen import generate
from retrain.drift import compare, population_stability_index, reference_profile
from retrain.features import build_features

CFG = load_config(Path(__file__).parents[2] / "retrain.toml", env={})
DS = CFG.dataset
THRESHOLD = CFG.gate.psi_threshold
START = datetime(2025, 4, 1)


def featurized(n: int, seed: int, scenario: str = "normal") -> pd.DataFrame:
    return build_features(generate(n, seed=seed, scenario=scenario, start=START), DS)


@pytest.fixture(scope="module")
def profile() -> dict:
    return reference_profile(featurized(8000, seed=41), DS, bins=CFG.gate.psi_bins)


def test_profile_is_json_and_describes_every_feature(profile):
    assert json.loads(json.dumps(profile)) == profile
    feats = profile["features"]
    assert list(feats) == [*DS.numeric_features, *DS.categorical_features]
    for spec in feats.values():
        assert sum(spec["fractions"]) == pytest.approx(1.0)
    charges = feats["monthly_charges"]
    assert len(charges["edges"]) == 9  # 10 quantile bins
    assert len(charges["fractions"]) == 11  # plus the missing bin
    assert all(f == pytest.approx(0.1, abs=0.01) for f in charges["fractions"][:-1])
    assert feats["total_charges"]["fractions"][-1] == pytest.approx(0.05, abs=0.01)
    contract = feats["contract"]
    assert contract["categories"] == list(DS.column("contract").categories)
    assert len(contract["fractions"]) == 5  # 3 categories + missing + other


def test_discrete_values_get_deduplicated_edges():
    df = featurized(200, seed=1).assign(support_calls=[0.0] * 100 + [1.0] * 60 + [5.0] * 40)
    spec = reference_profile(df, DS, bins=10)["features"]["support_calls"]
    assert spec["edges"] == [0.0, 1.0, 5.0]
    # Right-closed bins: (-inf, 0], (0, 1], (1, 5], (5, inf), missing.
    assert spec["fractions"] == pytest.approx([0.5, 0.3, 0.2, 0.0, 0.0])


def test_same_distribution_has_near_zero_psi(profile):
    report = compare(profile, featurized(3000, seed=42), DS, THRESHOLD)
    assert set(report.psi) == set(profile["features"])
    assert report.max_psi < 0.03
    assert report.drifted == ()


def test_drifted_scenario_is_detected_on_shifted_features(profile):
    report = compare(profile, featurized(3000, seed=43, scenario="drifted"), DS, THRESHOLD)
    assert {"monthly_charges", "support_calls", "contract"} <= set(report.drifted)
    assert report.max_psi == max(report.psi.values()) > THRESHOLD
    assert report.psi[report.drifted[0]] == report.max_psi  # worst first
    assert report.psi["region"] < 0.05  # untouched features stay quiet


def test_unseen_category_is_handled(profile):
    raw = generate(1000, seed=44, start=START)
    raw.loc[: len(raw) // 2, "contract"] = "weekly"
    # Raw strings: the unseen value lands in the "other" bin.
    on_raw = compare(profile, raw, DS, THRESHOLD)
    assert on_raw.psi["contract"] > THRESHOLD
    assert "contract" in on_raw.drifted
    # Featurized: it became NaN (fixed categories), so it lands in the missing bin instead.
    on_features = compare(profile, build_features(raw, DS), DS, THRESHOLD)
    assert on_features.psi["contract"] > THRESHOLD
    assert math.isfinite(on_features.psi["contract"])


def test_missing_column_counts_as_all_missing(profile):
    df = featurized(500, seed=45).drop(columns=["data_usage_gb"])
    report = compare(profile, df, DS, THRESHOLD)
    assert report.psi["data_usage_gb"] > 1.0


def test_psi_hand_computed_and_empty_bins_finite():
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert population_stability_index([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert math.isfinite(population_stability_index([1.0, 0.0], [0.0, 1.0]))
    with pytest.raises(ValueError):
        population_stability_index([0.5, 0.5], [1.0])


def test_report_as_dict(profile):
    report = compare(profile, featurized(500, seed=46, scenario="drifted"), DS, THRESHOLD)
    d = json.loads(json.dumps(report.as_dict()))
    assert d["threshold"] == THRESHOLD
    assert d["drifted"] == list(report.drifted)
    assert d["psi"] == pytest.approx(report.psi)


def test_numeric_profile_vectorized_on_large_frame(profile):
    """One pass per column: 200k rows must be quick (guards against per-row Python loops)."""
    big = pd.concat([featurized(20_000, seed=47)] * 10, ignore_index=True)
    t0 = time.perf_counter()
    report = compare(profile, big, DS, THRESHOLD)
    assert time.perf_counter() - t0 < 3.0
    assert np.isfinite(list(report.psi.values())).all()
