"""The deploy policy: rule by rule on stated evidence, then with known answers on real models
(LightGBM on generated data, champion and challenger scored on the same newest rows)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import GateConfig, load_config
from retrain.datagen import generate
from retrain.decision import (
    FLAG_CHAMPION_BELOW_FLOOR,
    FLAG_WORSE,
    RULES,
    Evidence,
    champion_vs_floor,
    decide,
    flags,
)
from retrain.evaluation import Comparison, compare_models
from retrain.features import build_features
from retrain.training import train_model

CFG = load_config(Path(__file__).parents[2] / "retrain.toml", env={})
GATE = GateConfig(
    metric="auc", min_metric=0.6, non_inferiority_margin=0.01, degradation_margin=0.02
)


def comparison(new: float, old: float, low: float, high: float) -> Comparison:
    return Comparison("auc", new, old, new - old, low, high, 0.95, 1000, 2400)


def test_first_model_deploys_on_the_floor_alone():
    d = decide(Evidence(challenger=0.8), GATE)
    assert (d.deploy, d.rule) == (True, "first_model")
    assert "first model" in d.reason and "0.8000" in d.reason


def test_below_floor_holds_even_when_better_than_the_champion():
    d = decide(Evidence(0.58, comparison(0.58, 0.50, 0.05, 0.11), data_drifted=True), GATE)
    assert (d.deploy, d.rule) == (False, "below_floor")
    assert "0.5800 < floor 0.6000" in d.reason


def test_undefined_metric_holds():
    d = decide(Evidence(math.nan), GATE)
    assert (d.deploy, d.rule) == (False, "undefined")


def test_better_within_noise_and_nothing_changed_holds():
    d = decide(Evidence(0.812, comparison(0.812, 0.807, -0.004, 0.014), 0.81), GATE)
    assert (d.deploy, d.rule) == (False, "not_better")
    assert "not better with confidence" in d.reason and "-0.0040" in d.reason


def test_better_with_confidence_deploys_without_drift():
    d = decide(Evidence(0.84, comparison(0.84, 0.80, 0.02, 0.06), 0.81), GATE)
    assert (d.deploy, d.rule) == (True, "better")
    assert "95% CI +0.0200 to +0.0600" in d.reason


def test_drift_and_a_non_inferior_challenger_deploys():
    ev = Evidence(0.80, comparison(0.80, 0.801, -0.008, 0.006), 0.81, True, False, "3 drifted")
    d = decide(ev, GATE)
    assert (d.deploy, d.rule) == (True, "non_inferior_after_change")
    assert d.reason.startswith("deploy: 3 drifted")
    assert d.conditions["non_inferior"]["met"] and not d.conditions["better"]["met"]


def test_drift_alone_never_deploys_a_worse_model():
    ev = Evidence(0.78, comparison(0.78, 0.80, -0.035, -0.012), 0.81, data_drifted=True)
    d = decide(ev, GATE)
    assert (d.deploy, d.rule) == (False, "inferior_after_change")
    assert "not non-inferior" in d.reason


def test_a_degraded_champion_counts_as_a_change():
    # the champion scored 0.85 when trained and 0.80 on the newest rows: degraded by 0.05
    d = decide(Evidence(0.80, comparison(0.80, 0.80, -0.005, 0.005), 0.85), GATE)
    assert (d.deploy, d.rule) == (True, "non_inferior_after_change")
    assert d.conditions["champion_degraded"]["degraded"]
    assert "champion degraded" in d.reason
    steady = decide(Evidence(0.80, comparison(0.80, 0.80, -0.005, 0.005), 0.81), GATE)
    assert (steady.deploy, steady.rule) == (False, "not_better")


def test_prediction_drift_counts_as_a_change():
    ev = Evidence(0.80, comparison(0.80, 0.80, -0.005, 0.005), 0.81, prediction_drifted=True)
    assert decide(ev, GATE).rule == "non_inferior_after_change"


def test_an_undefined_interval_never_deploys():
    ev = Evidence(0.80, comparison(0.80, 0.79, math.nan, math.nan), 0.81, data_drifted=True)
    assert decide(ev, GATE).deploy is False


def test_every_rule_is_named_and_the_metric_is_checked():
    assert set(RULES) >= {"first_model", "better", "not_better", "inferior_after_change"}
    with pytest.raises(ValueError, match="not supported"):
        decide(Evidence(0.8), replace(GATE, metric="logloss"))


# -- known answers on real models --------------------------------------------------------------


def _frame(n: int, seed: int, start: datetime, scenario: str = "normal"):
    return build_features(generate(n, seed=seed, scenario=scenario, start=start), CFG.dataset)


@pytest.fixture(scope="module")
def newest():
    return _frame(3000, seed=92, start=datetime(2026, 3, 1))


@pytest.fixture(scope="module")
def known():
    return _frame(6000, seed=90, start=datetime(2026, 1, 1))


@pytest.fixture(scope="module")
def champion(known):
    return train_model(known, CFG).model


def _compare(challenger, champion, rows) -> Comparison:
    y = rows[CFG.dataset.target].to_numpy()
    return compare_models(
        y,
        challenger.predict_proba(rows),
        champion.predict_proba(rows),
        metric="auc",
        rounds=500,
        confidence=0.95,
        seed=7,
    )


def test_a_challenger_better_only_within_noise_is_held(known, champion, newest):
    more = pd.concat([known, _frame(6000, seed=91, start=datetime(2026, 1, 1))])
    challenger = train_model(more.reset_index(drop=True), CFG).model
    cmp = _compare(challenger, champion, newest)
    assert 0 < cmp.delta < 0.01 and cmp.low < 0, "more of the same: better, within noise"
    d = decide(Evidence(cmp.challenger, cmp, cmp.champion + 0.005), CFG.gate)
    assert (d.deploy, d.rule) == (False, "not_better")


def test_a_label_flip_that_hurts_the_challenger_holds_even_with_drift(champion, newest):
    flipped = _frame(6000, seed=91, start=datetime(2026, 1, 1))
    rng = np.random.default_rng(3)
    flip = rng.random(len(flipped)) < 0.35
    flipped.loc[flip, CFG.dataset.target] = 1 - flipped.loc[flip, CFG.dataset.target]
    challenger = train_model(flipped, CFG).model
    cmp = _compare(challenger, champion, newest)
    assert cmp.high < 0
    d = decide(Evidence(cmp.challenger, cmp, cmp.champion, data_drifted=True), CFG.gate)
    assert (d.deploy, d.rule) in {(False, "inferior_after_change"), (False, "below_floor")}


def test_drift_and_a_better_challenger_deploys(champion):
    drifted = _frame(4000, seed=93, start=datetime(2026, 3, 1), scenario="drifted")
    both = _frame(6000, seed=94, start=datetime(2026, 1, 1))
    train = build_features(
        generate(6000, seed=95, scenario="drifted", start=datetime(2026, 2, 1)), CFG.dataset
    )
    challenger = train_model(pd.concat([both, train], ignore_index=True), CFG).model
    cmp = _compare(challenger, champion, drifted)
    d = decide(Evidence(cmp.challenger, cmp, cmp.champion, data_drifted=True), CFG.gate)
    assert d.deploy, d.reason
    assert d.rule in ("non_inferior_after_change", "better")


def test_the_interval_is_reproducible(champion, newest):
    a = _compare(champion, champion, newest)
    assert (a.delta, a.low, a.high) == (0.0, 0.0, 0.0)


# -- flags: decisions a reviewer must notice --------------------------------------------------


def record_of(evidence: Evidence, gate: GateConfig = GATE) -> dict:
    """A decision record as steps.retrain writes it (the parts flags read)."""
    d = decide(evidence, gate)
    cmp = evidence.comparison
    return {
        **d.as_dict(),
        "version": "v",
        "comparison": cmp.as_dict() if cmp else None,
        "policy": {"gate": {"metric": gate.metric, "min_metric": gate.min_metric}},
        "challenger_metrics": {"auc": evidence.challenger},
        "champion_metrics": {"auc": cmp.champion} if cmp else None,
    }


def test_a_deploy_worse_with_confidence_is_flagged():
    """July: the champion's scores drifted, the difference is inside the margin, the whole
    interval is below 0: the policy deploys, the flag says "worse"."""
    july = Evidence(0.7700, comparison(0.7700, 0.7738, -0.0058, -0.0018), prediction_drifted=True)
    r = record_of(july)
    assert (r["deploy"], r["rule"]) == (True, "non_inferior_after_change")
    assert flags(r) == (FLAG_WORSE,)
    # the interval touching 0 is not "worse with confidence"
    r = record_of(Evidence(0.77, comparison(0.77, 0.7738, -0.0058, 0.0), prediction_drifted=True))
    assert r["deploy"] and flags(r) == ()
    # a hold worse with confidence is the policy doing its job
    r = record_of(Evidence(0.75, comparison(0.75, 0.80, -0.07, -0.03), data_drifted=True))
    assert not r["deploy"] and flags(r) == ()


def test_a_floor_hold_with_the_champion_below_the_floor_is_flagged():
    """September: 0.594 < 0.60 holds, and the champion scored 0.580 on the same rows."""
    september = Evidence(0.594, comparison(0.594, 0.580, 0.006, 0.022))
    r = record_of(september)
    assert (r["deploy"], r["rule"]) == (False, "below_floor")
    assert flags(r) == (FLAG_CHAMPION_BELOW_FLOOR,)
    assert champion_vs_floor(r) == (0.580, 0.6)
    # the champion above the floor: the floor did its job
    r = record_of(Evidence(0.594, comparison(0.594, 0.65, -0.07, -0.04)))
    assert r["rule"] == "below_floor" and flags(r) == ()
    # no comparison recorded: read the champion's metrics
    r = record_of(september) | {"comparison": None}
    assert flags(r) == (FLAG_CHAMPION_BELOW_FLOOR,)
    # the first model has no champion to compare
    assert flags(record_of(Evidence(0.55))) == ()


def test_flags_tolerate_partial_and_odd_records():
    assert flags({}) == ()
    assert flags({"deploy": True, "comparison": {"high": "x"}}) == ()
    assert flags({"deploy": True, "comparison": {"high": math.nan}}) == ()
    assert flags({"deploy": False, "rule": "below_floor", "comparison": {"champion": 0.5}}) == ()
