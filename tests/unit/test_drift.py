import dataclasses
import json
import math
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from retrain.config import DriftConfig, load_config
from retrain.datagen import generate
from retrain.drift import (
    PROFILE_VERSION,
    SKETCH_POINTS,
    DriftReport,
    FeatureDrift,
    compare,
    jensen_shannon_distance,
    population_stability_index,
    reference_profile,
)
from retrain.features import build_features, column_feature_names, feature_names

CFG = load_config(Path(__file__).parents[2] / "retrain.toml", env={})
DS = CFG.dataset
DC = CFG.drift
START = datetime(2025, 4, 1)
HOUR, DOW, MISSING = "event_time__hour", "event_time__day_of_week", "row__missing_count"
NUMERIC = list(DS.numeric_features)
MONITORED = [*column_feature_names(DS), MISSING]


def featurized(n: int, seed: int, scenario: str = "normal") -> pd.DataFrame:
    return build_features(generate(n, seed=seed, scenario=scenario, start=START), DS)


def synthetic(
    n: int,
    seed: int,
    *,
    charge_shift: float = 0.0,
    contract_p: tuple[float, ...] = (0.50, 0.28, 0.22),
    tenure_scale: float = 1.0,
    days: int = 7,
) -> pd.DataFrame:
    """A frame shaped like ``build_features`` output, drawn straight from numpy (1M rows in a
    fraction of a second); ``charge_shift`` moves monthly_charges by that many SDs."""
    rng = np.random.default_rng(seed)

    def cats(name: str, p: tuple[float, ...], missing: float = 0.0) -> pd.Categorical:
        codes = rng.choice(len(p), size=n, p=p)
        codes[rng.random(n) < missing] = -1
        return pd.Categorical.from_codes(codes, categories=list(DS.column(name).categories))

    tenure = np.round(rng.gamma(2.0, 15.0 * tenure_scale, n))
    total = np.round(tenure * rng.uniform(40, 90, n), 2)
    total[rng.random(n) < 0.05] = np.nan
    df = pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": np.round(rng.normal(65.0 + 25.0 * charge_shift, 25.0, n), 2),
            "total_charges": total,
            "support_calls": rng.poisson(1.4, n).astype("float64"),
            "data_usage_gb": np.round(rng.lognormal(3.0, 0.8, n), 1),
            "contract": cats("contract", contract_p),
            "payment_method": cats("payment_method", (0.35, 0.25, 0.28, 0.12), 0.03),
            "region": cats("region", (0.25, 0.25, 0.25, 0.25), 0.02),
            HOUR: rng.integers(0, 24, n).astype("float64"),
            DOW: rng.integers(0, days, n).astype("float64"),
        }
    )
    df[MISSING] = df[column_feature_names(DS)].isna().sum(axis=1).astype("float64")
    return df


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return featurized(8000, seed=41)


@pytest.fixture(scope="module")
def profile(reference) -> dict:
    scores = np.random.default_rng(0).beta(2.0, 8.0, len(reference))
    return reference_profile(reference, DS, DC, scores=scores)


@pytest.fixture(scope="module")
def synthetic_profile() -> dict:
    return reference_profile(synthetic(50_000, seed=1), DS, DC)


# -- the profile --------------------------------------------------------------------------------


def test_profile_is_compact_json_and_describes_every_model_feature(profile, reference):
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile
    assert profile["version"] == PROFILE_VERSION == 2
    assert profile["n_rows"] == 8000
    feats = profile["features"]
    assert list(feats) == feature_names(DS)  # columns and the derived features
    for spec in feats.values():
        assert sum(spec["fractions"]) == pytest.approx(1.0)
    assert {n for n, s in feats.items() if not s["monitored"]} == {HOUR, DOW}

    charges = feats["monthly_charges"]
    assert len(charges["edges"]) == 9  # 10 quantile bins
    assert len(charges["fractions"]) == 11  # plus the missing bin
    assert all(f == pytest.approx(0.1, abs=0.01) for f in charges["fractions"][:-1])
    assert len(charges["quantiles"]) == SKETCH_POINTS
    assert charges["std"] == pytest.approx(reference["monthly_charges"].std(ddof=0))
    assert feats["total_charges"]["fractions"][-1] == pytest.approx(0.05, abs=0.01)
    assert "values" in feats["support_calls"]  # a count: its exact value table
    contract = feats["contract"]
    assert contract["categories"] == list(DS.column("contract").categories)
    assert len(contract["fractions"]) == 5  # 3 categories + missing + other
    assert profile["scores"]["n_rows"] == 8000

    # The size does not grow with the rows.
    big = reference_profile(synthetic(200_000, seed=3), DS, DC)
    assert len(json.dumps(big)) < 60_000


def test_discrete_values_get_one_bin_each():
    df = featurized(200, seed=1).assign(support_calls=[0.0] * 100 + [1.0] * 60 + [5.0] * 40)
    spec = reference_profile(df, DS, DC)["features"]["support_calls"]
    assert spec["edges"] == [0.0, 1.0, 5.0]
    # Right-closed bins: (-inf, 0], (0, 1], (1, 5], (5, inf), missing.
    assert spec["fractions"] == pytest.approx([0.5, 0.3, 0.2, 0.0, 0.0])
    assert spec["values"] == [0.0, 1.0, 5.0]


# -- known answers ------------------------------------------------------------------------------


def test_identical_distributions_at_1m_rows_are_not_drift():
    """Two independent 1M-row samples of one distribution: every p-value test would still
    find something somewhere; effect sizes do not."""
    ref, cur = synthetic(1_000_000, seed=10), synthetic(1_000_000, seed=11)
    start = time.perf_counter()
    report = compare(reference_profile(ref, DS, DC), cur, DS, DC)
    assert time.perf_counter() - start < 5.0  # vectorized: ~0.3 s on 2 cores
    assert report.drifted == ()
    assert not report.data_drifted
    assert report.share == 0.0
    assert not any(f.drifted for f in report.features)
    assert report.max_psi < 1e-3
    assert max(f.distance for f in report.features) < 0.01


def test_same_distribution_is_quiet(profile):
    report = compare(profile, featurized(3000, seed=42), DS, DC)
    assert [f.name for f in report.features] == feature_names(DS)
    assert report.drifted == ()
    assert report.max_psi < 0.03
    assert not report.data_drifted


def test_a_shifted_mean_drifts_that_feature_only(synthetic_profile):
    report = compare(synthetic_profile, synthetic(50_000, seed=2, charge_shift=0.3), DS, DC)
    assert report.drifted == ("monthly_charges",)
    charges = report.feature("monthly_charges")
    assert charges.distance_name == "wasserstein_norm"
    assert charges.distance == pytest.approx(0.3, abs=0.02)  # in reference SDs
    assert charges.psi < DC.psi_threshold  # a 0.3 SD shift: the distance catches it
    assert charges.n_reference == charges.n_current == 50_000
    assert report.share == pytest.approx(1 / len(MONITORED))
    assert not report.data_drifted  # 1 of 9 < 30%


def test_a_changed_category_mix_drifts(synthetic_profile):
    cur = synthetic(20_000, seed=2, contract_p=(0.80, 0.13, 0.07))
    report = compare(synthetic_profile, cur, DS, DC)
    assert report.drifted == ("contract",)
    contract = report.feature("contract")
    assert contract.kind == "categorical" and contract.distance_name == "jensen_shannon"
    assert contract.distance > DC.distance_threshold
    assert contract.psi > DC.psi_threshold
    assert contract.labels == ("month-to-month", "one-year", "two-year", "(missing)", "(other)")
    assert contract.current[0] == pytest.approx(0.80, abs=0.01)
    assert contract.unseen == 0.0


def test_a_new_category_is_reported_as_unseen_and_drifts(profile):
    raw = generate(2000, seed=44, start=START)
    raw.loc[: len(raw) // 2 - 1, "contract"] = "weekly"
    # Raw strings: the unseen value lands in the "other" bin and is reported as unseen. The
    # derived features are computed from the raw columns, so they stay quiet.
    on_raw = compare(profile, raw, DS, DC)
    contract = on_raw.feature("contract")
    assert contract.unseen == pytest.approx(0.5)
    assert contract.drifted and contract.psi > 1.0
    assert on_raw.drifted == ("contract",)
    assert not on_raw.feature(HOUR).drifted and not on_raw.feature(MISSING).drifted
    # Featurized: it became NaN (fixed categories), so it shows as missing instead.
    on_features = compare(profile, build_features(raw, DS), DS, DC)
    contract = on_features.feature("contract")
    assert contract.unseen == 0.0 and contract.current[3] == pytest.approx(0.5)
    assert contract.drifted and math.isfinite(contract.psi)
    assert on_features.drifted[0] == "contract"


def test_drift_false_and_calendar_parts_are_measured_shown_and_not_counted(synthetic_profile):
    columns = tuple(
        dataclasses.replace(c, drift=False) if c.name == "tenure_months" else c for c in DS.columns
    )
    ds = dataclasses.replace(DS, columns=columns)
    # A batch of one weekday with tenure twice as long: both move a lot.
    cur = synthetic(20_000, seed=5, tenure_scale=2.0, days=1)
    report = compare(synthetic_profile, cur, ds, DC)
    for name in ("tenure_months", DOW):
        f = report.feature(name)
        assert f.drifted and not f.monitored  # measured, shown
        assert f.as_dict()["monitored"] is False
    assert "tenure_months" not in report.drifted and DOW not in report.drifted
    assert "tenure_months" not in report.monitored
    assert report.drifted == ("total_charges",)  # total follows tenure and is monitored
    assert report.share == pytest.approx(1 / (len(MONITORED) - 1))
    assert report.max_psi == report.feature("total_charges").psi  # unmonitored: not the max
    # With the default config, tenure counts.
    assert "tenure_months" in compare(synthetic_profile, cur, DS, DC).drifted


def test_share_rule(profile):
    cur = featurized(3000, seed=43, scenario="drifted")
    report = compare(profile, cur, DS, DC)
    assert report.rule == "share"
    assert set(report.drifted) == {"monthly_charges", "support_calls", "contract", "tenure_months"}
    worst = [report.feature(n).psi for n in report.drifted]
    assert worst == sorted(worst, reverse=True)  # worst first
    assert report.share == pytest.approx(4 / len(MONITORED))
    assert report.data_drifted  # 44% >= 30%
    strict = compare(profile, cur, DS, dataclasses.replace(DC, share_threshold=0.5))
    assert strict.drifted == report.drifted and not strict.data_drifted


def test_importance_rule(profile):
    cur = featurized(3000, seed=43, scenario="drifted")
    dc = dataclasses.replace(DC, rule="importance")
    heavy = dict.fromkeys(feature_names(DS), 0.01) | {"monthly_charges": 0.5, HOUR: 5.0}
    report = compare(profile, cur, DS, dc, importance=heavy)
    assert report.rule == "importance"
    monitored_total = sum(heavy[n] for n in MONITORED)  # the calendar part's gain is left out
    drifted_gain = 0.5 + 3 * 0.01
    assert report.share == pytest.approx(drifted_gain / monitored_total)
    assert report.data_drifted
    light = dict.fromkeys(feature_names(DS), 0.01) | {"region": 0.9, "data_usage_gb": 0.9}
    quiet = compare(profile, cur, DS, dc, importance=light)
    assert quiet.drifted == report.drifted  # same features drifted, little gain in them
    assert quiet.share < 0.05 and not quiet.data_drifted
    assert "importance" in quiet.summary()
    # No importance: the share rule, and the report says so.
    fallback = compare(profile, cur, DS, dc)
    assert fallback.rule == "share" and fallback.share == pytest.approx(4 / len(MONITORED))


def test_prediction_drift_on_shifted_scores(profile):
    rng = np.random.default_rng(5)
    cur = featurized(2000, seed=46)
    same = compare(profile, cur, DS, DC, scores=rng.beta(2.0, 8.0, 2000))
    assert same.prediction is not None and same.prediction.name == "score"
    assert not same.prediction_drifted and not same.prediction.drifted
    shifted = compare(profile, cur, DS, DC, scores=rng.beta(4.0, 6.0, 2000))
    assert shifted.prediction_drifted and shifted.prediction.drifted
    assert shifted.prediction.psi > DC.prediction_psi_threshold
    assert shifted.prediction.distance > 0.5
    assert not shifted.data_drifted  # the inputs did not move
    assert "scores drifted" in shifted.summary()
    assert compare(profile, cur, DS, DC).prediction is None  # no scores given


def test_missing_column_counts_as_all_missing(profile):
    df = featurized(500, seed=45).drop(columns=["data_usage_gb"])
    usage = compare(profile, df, DS, DC).feature("data_usage_gb")
    assert usage.psi > 1.0 and usage.drifted
    assert usage.current[-1] == 1.0 and usage.distance is None


def test_small_samples_do_not_alarm_on_noise(profile):
    big = featurized(200 * 40, seed=7)
    flagged = 0
    for i in range(40):
        report = compare(profile, big.iloc[i * 200 : (i + 1) * 200], DS, DC)
        assert not report.data_drifted
        flagged += len(report.drifted)
    assert flagged <= 0.05 * 40 * len(MONITORED)
    f = report.feature("monthly_charges")
    assert f.distance_noise > DC.distance_threshold  # at 200 rows noise decides, not 0.1


def test_version_1_profile_is_still_comparable(profile):
    v1 = {
        "version": 1,
        "bins": 10,
        "n_rows": profile["n_rows"],
        "features": {
            name: {
                k: v for k, v in spec.items() if k in ("kind", "edges", "fractions", "categories")
            }
            for name, spec in profile["features"].items()
            if name in column_feature_names(DS)
        },
    }
    report = compare(v1, featurized(3000, seed=43, scenario="drifted"), DS, DC, scores=[0.1])
    assert [f.name for f in report.features] == column_feature_names(DS)
    assert {"monthly_charges", "support_calls", "contract"} <= set(report.drifted)
    assert report.feature("monthly_charges").distance is None
    assert report.feature("contract").distance is not None  # categorical shares suffice
    assert report.prediction is None
    assert DriftReport.from_dict(json.loads(json.dumps(report.as_dict()))) == report
    with pytest.raises(ValueError, match="version"):
        compare({**v1, "version": 3}, featurized(10, seed=1), DS, DC)


def test_report_json_round_trip_and_shape(profile):
    cur = featurized(3000, seed=43, scenario="drifted")
    scores = np.random.default_rng(6).beta(4.0, 6.0, 3000)
    report = compare(profile, cur, DS, DC, scores=scores)
    d = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert DriftReport.from_dict(d) == report
    assert set(d) == {
        "features",
        "drifted",
        "share",
        "data_drifted",
        "rule",
        "prediction",
        "prediction_drifted",
        "max_psi",
        "psi_threshold",
        "distance_threshold",
        "share_threshold",
        "prediction_psi_threshold",
        "summary",
    }
    assert d["max_psi"] == report.max_psi == max(f.psi for f in report.features if f.monitored)
    first = d["features"][0]
    assert set(first) == {f.name for f in dataclasses.fields(FeatureDrift)}
    assert len(first["labels"]) == len(first["reference"]) == len(first["current"])
    assert FeatureDrift.from_dict(first) == report.features[0]
    summary = report.summary()
    assert summary.startswith("data drifted: 4 of 9 monitored features drifted (44%")
    assert "monthly_charges (PSI" in summary and "Wasserstein" in summary
    assert d["summary"] == summary


# -- the statistics -----------------------------------------------------------------------------


def test_wasserstein_matches_scipy(synthetic_profile):
    ref, cur = synthetic(50_000, seed=1), synthetic(50_000, seed=2, charge_shift=0.2)
    report = compare(synthetic_profile, cur, DS, DC)
    for name in ("monthly_charges", "data_usage_gb", "tenure_months", "support_calls"):
        a, b = ref[name].dropna().to_numpy(), cur[name].dropna().to_numpy()
        exact = stats.wasserstein_distance(a, b) / a.std()
        assert report.feature(name).distance == pytest.approx(exact, abs=2e-3), name


def test_few_valued_numeric_features_use_jensen_shannon(profile):
    report = compare(profile, featurized(2000, seed=8), DS, DC)
    assert report.feature(MISSING).distance_name == "jensen_shannon"  # 0, 1, 2 gaps
    assert report.feature("support_calls").distance_name == "wasserstein_norm"


def test_psi_and_jensen_shannon_by_hand():
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert population_stability_index([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert math.isfinite(population_stability_index([1.0, 0.0], [0.0, 1.0]))
    with pytest.raises(ValueError):
        population_stability_index([0.5, 0.5], [1.0])
    assert jensen_shannon_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert jensen_shannon_distance([0.3, 0.7], [0.3, 0.7]) == 0.0
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.35, 0.35, 0.30])
    m = (p + q) / 2
    js = math.sqrt((np.sum(p * np.log2(p / m)) + np.sum(q * np.log2(q / m))) / 2)
    assert jensen_shannon_distance(p, q) == pytest.approx(js)


def test_empty_frames_are_refused(profile):
    with pytest.raises(ValueError):
        reference_profile(featurized(10, seed=1).iloc[:0], DS, DC)
    with pytest.raises(ValueError):
        compare(profile, featurized(10, seed=1).iloc[:0], DS, DC)
    with pytest.raises(ValueError):
        reference_profile(featurized(10, seed=1), DS, DriftConfig(bins=1))
