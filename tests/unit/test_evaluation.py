import math

import numpy as np
import pytest

from retrain import evaluation
from retrain.evaluation import _Sorted, compare_models
from retrain.training import average_precision, roc_auc

RNG = np.random.default_rng(11)


def scores(n: int, signal: float, *, ties: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.2
    s = rng.random(n) + signal * y
    return y, (np.round(s, 1) if ties else s)


@pytest.mark.parametrize(
    "metric,reference", [("auc", roc_auc), ("average_precision", average_precision)]
)
@pytest.mark.parametrize("ties", [False, True])
def test_a_weighted_pass_equals_the_metric_on_the_repeated_rows(metric, reference, ties):
    y, s = scores(3000, 0.3, ties=ties)
    sorted_ = _Sorted(y, s, metric)
    assert sorted_.metric(np.ones((1, len(y))))[0] == pytest.approx(reference(y, s), abs=1e-12)
    counts = np.bincount(RNG.integers(0, len(y), len(y)), minlength=len(y))
    rows = np.repeat(np.arange(len(y)), counts)
    weighted = sorted_.metric(counts[None, :].astype(float))[0]
    assert weighted == pytest.approx(reference(y[rows], s[rows]), abs=1e-12)


def kwargs(**over):
    return {"metric": "auc", "rounds": 400, "confidence": 0.95, "seed": 7} | over


def test_the_interval_is_seeded_and_covers_the_difference():
    y, a = scores(4000, 0.4, seed=1)
    _, b = scores(4000, 0.3, seed=2)
    b = np.where(y, b, a)  # share the negatives: paired, correlated scores
    first, again = compare_models(y, a, b, **kwargs()), compare_models(y, a, b, **kwargs())
    assert first == again
    assert first.low <= first.delta <= first.high
    assert first.delta == pytest.approx(roc_auc(y, a) - roc_auc(y, b))
    assert compare_models(y, a, b, **kwargs(seed=8)) != first


def test_same_scores_give_a_zero_interval_and_a_clear_gap_excludes_zero():
    y, a = scores(2000, 0.5)
    same = compare_models(y, a, a, **kwargs())
    assert (same.delta, same.low, same.high) == (0.0, 0.0, 0.0)
    noise = np.random.default_rng(5).random(len(y))
    clear = compare_models(y, a, noise, **kwargs())
    assert clear.low > 0.2


def test_more_rows_narrow_the_interval():
    widths = []
    for n in (1000, 16000):
        y, a = scores(n, 0.4, seed=3)
        _, b = scores(n, 0.35, seed=4)
        c = compare_models(y, a, b, **kwargs())
        widths.append(c.high - c.low)
    assert widths[1] < widths[0] / 2


def test_large_holdouts_bootstrap_a_bounded_subsample(monkeypatch):
    monkeypatch.setattr(evaluation, "MAX_BOOTSTRAP_ROWS", 500)
    y, a = scores(5000, 0.4)
    _, b = scores(5000, 0.3, seed=9)
    c = compare_models(y, a, b, **kwargs(rounds=200))
    assert c.n_rows == 5000 and c.delta == pytest.approx(roc_auc(y, a) - roc_auc(y, b))
    assert c.low < c.delta < c.high


def test_one_class_gives_an_undefined_interval():
    y = np.zeros(50, dtype=bool)
    c = compare_models(y, np.linspace(0, 1, 50), np.linspace(1, 0, 50), **kwargs(rounds=100))
    assert math.isnan(c.challenger) and math.isnan(c.low) and math.isnan(c.high)


def test_unknown_metric_is_refused():
    y, a = scores(100, 0.3)
    with pytest.raises(ValueError, match="not supported"):
        compare_models(y, a, a, **kwargs(metric="logloss"))


def test_poisson_weights_follow_poisson_one():
    w = evaluation.poisson_weights(np.random.default_rng(3), 50, 100_000)
    assert w.dtype == np.uint8 and w.shape == (50, 100_000)
    freq = np.bincount(w.ravel(), minlength=8) / w.size
    pmf = np.array([math.exp(-1) / math.factorial(k) for k in range(8)])
    # 5M draws: each frequency within a few standard errors of the Poisson(1) probability
    assert np.all(np.abs(freq - pmf) < 5 * np.sqrt(pmf * (1 - pmf) / w.size) + 2**-16)
    again = evaluation.poisson_weights(np.random.default_rng(3), 50, 100_000)
    assert np.array_equal(w, again)


@pytest.mark.parametrize("ties", [False, True])
def test_the_float32_auc_pass_equals_the_float64_one(ties):
    """Integer bootstrap weights take the float32 AUC pass; float weights of the same values
    the float64 one: both exact."""
    y, s = scores(5000, 0.4, ties=ties, seed=4)
    sorted_ = _Sorted(y, s, "auc")
    w = evaluation.poisson_weights(np.random.default_rng(9), 16, len(y))
    assert np.array_equal(sorted_.metric(w), sorted_.metric(w.astype(np.float64)))
