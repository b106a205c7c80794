import json
import math

import pytest

from retrain.config import GateConfig
from retrain.decision import decide
from retrain.drift import DriftReport
from retrain.training import Metrics

GATE = GateConfig(metric="auc", min_metric=0.6, min_improvement=0.0)


def metrics(auc: float, ap: float = 0.4) -> Metrics:
    return Metrics(auc=auc, logloss=0.4, average_precision=ap, positive_rate=0.15, n_rows=1000)


DRIFT = DriftReport(
    psi={"monthly_charges": 0.8, "contract": 0.3, "region": 0.01},
    drifted=("monthly_charges", "contract"),
    max_psi=0.8,
    threshold=0.2,
)
NO_DRIFT = DriftReport(psi={"region": 0.01}, drifted=(), max_psi=0.01, threshold=0.2)


def test_below_floor_holds_even_without_champion():
    d = decide(metrics(0.55), None, None, GATE)
    assert not d.deploy
    assert "0.5500 < floor 0.6000" in d.reason
    assert d.challenger_metric == 0.55 and d.champion_metric is None


def test_below_floor_holds_even_if_better_than_champion():
    d = decide(metrics(0.58), metrics(0.50), None, GATE)
    assert not d.deploy and "floor" in d.reason


def test_first_model_deploys():
    d = decide(metrics(0.8), None, None, GATE)
    assert d.deploy
    assert "first model" in d.reason and "0.8000" in d.reason
    assert d.drift_features == ()


def test_better_challenger_deploys():
    d = decide(metrics(0.82), metrics(0.78), NO_DRIFT, GATE)
    assert d.deploy
    assert d.champion_metric == 0.78
    assert "0.8200" in d.reason and "0.7800" in d.reason and "+0.0400" in d.reason
    assert "drift" not in d.reason


def test_equal_metric_deploys_when_no_improvement_is_required():
    assert decide(metrics(0.8), metrics(0.8), None, GATE).deploy


def test_worse_challenger_holds():
    d = decide(metrics(0.77), metrics(0.78), None, GATE)
    assert not d.deploy
    assert d.reason.startswith("hold") and "-0.0100" in d.reason


def test_improvement_below_required_margin_holds():
    gate = GateConfig(metric="auc", min_metric=0.6, min_improvement=0.02)
    assert not decide(metrics(0.81), metrics(0.80), None, gate).deploy
    assert decide(metrics(0.83), metrics(0.80), None, gate).deploy


def test_drifted_features_are_reported():
    d = decide(metrics(0.82), metrics(0.78), DRIFT, GATE)
    assert d.deploy
    assert d.drift_features == ("monthly_charges", "contract")
    assert "monthly_charges (PSI 0.80)" in d.reason and "contract (PSI 0.30)" in d.reason
    held = decide(metrics(0.7), metrics(0.78), DRIFT, GATE)
    assert not held.deploy and "drift in monthly_charges" in held.reason


def test_undefined_challenger_metric_holds():
    d = decide(metrics(math.nan), None, None, GATE)
    assert not d.deploy and "undefined" in d.reason


def test_gate_metric_selects_the_field():
    gate = GateConfig(metric="average_precision", min_metric=0.3, min_improvement=0.0)
    d = decide(metrics(0.9, ap=0.35), metrics(0.7, ap=0.4), None, gate)
    assert not d.deploy  # better AUC does not matter; AP is worse
    assert d.challenger_metric == 0.35 and "average_precision" in d.reason


def test_unsupported_metric_is_an_error():
    with pytest.raises(ValueError, match="logloss"):
        decide(metrics(0.8), None, None, GateConfig(metric="logloss"))


def test_as_dict_is_json():
    d = decide(metrics(0.82), metrics(0.78), DRIFT, GATE).as_dict()
    back = json.loads(json.dumps(d))
    assert back["deploy"] is True
    assert back["drift_features"] == ["monthly_charges", "contract"]
    assert back["champion_metric"] == 0.78
