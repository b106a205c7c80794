"""Champion against challenger on the same rows: the metric difference with a paired bootstrap
confidence interval.

Paired: every bootstrap round draws one resample of the rows and scores both models on it, so
the interval is of the difference itself (the two models' errors are correlated; intervals of
each metric alone would overlap long after the difference is clear). Seeded, so the same rows
and scores always give the same interval. Each model's scores are sorted once; a round costs one
weighted pass over the sorted rows, not a re-sort: a resample is a vector of Poisson(1) weights
per row (the Poisson bootstrap, which matches the multinomial one for all but tiny samples and
can be drawn for many rounds at once).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METRICS = ("auc", "average_precision")
_CHUNK = 32  # bootstrap rounds computed together (chunk x rows weights in memory)
# Above this many rows the interval is bootstrapped on a seeded subsample of them (the point
# estimates still use every row): the interval comes out wider than the full data's, which only
# makes a deploy that needs it more cautious, and the cost stays bounded at any holdout size.
MAX_BOOTSTRAP_ROWS = 100_000


@dataclass(frozen=True)
class Comparison:
    """Challenger minus champion on the same newest labelled rows."""

    metric: str
    challenger: float
    champion: float
    delta: float
    low: float  # confidence interval of delta (percentile bootstrap, two-sided)
    high: float
    confidence: float
    rounds: int
    n_rows: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def compare_models(
    y: np.ndarray,
    challenger_scores: np.ndarray,
    champion_scores: np.ndarray,
    *,
    metric: str,
    rounds: int,
    confidence: float,
    seed: int,
) -> Comparison:
    """The metric of both models on ``y`` and the paired bootstrap interval of the difference.

    Rounds whose resample holds one class only (the metric is undefined) are dropped; if every
    round is dropped, the interval is NaN and no rule that needs it can pass.
    """
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} not supported; use one of {METRICS}")
    y = np.asarray(y).astype(bool)
    n_rows = len(y)
    a = _Sorted(y, np.asarray(challenger_scores, dtype="float64"), metric)
    b = _Sorted(y, np.asarray(champion_scores, dtype="float64"), metric)
    ones = np.ones((1, len(y)))
    new, old = float(a.metric(ones)[0]), float(b.metric(ones)[0])
    rng = np.random.default_rng(seed)
    if len(y) > MAX_BOOTSTRAP_ROWS:
        keep = np.sort(rng.choice(len(y), size=MAX_BOOTSTRAP_ROWS, replace=False))
        y = y[keep]
        a = _Sorted(y, np.asarray(challenger_scores, dtype="float64")[keep], metric)
        b = _Sorted(y, np.asarray(champion_scores, dtype="float64")[keep], metric)
    deltas = []
    for start in range(0, rounds, _CHUNK):
        k = min(_CHUNK, rounds - start)
        weights = rng.poisson(1.0, size=(k, len(y))).astype("float64")
        deltas.append(a.metric(weights) - b.metric(weights))
    d = np.concatenate(deltas) if deltas else np.array([])
    d = d[~np.isnan(d)]
    tail = (1 - confidence) / 2
    low, high = (
        (float(np.quantile(d, tail)), float(np.quantile(d, 1 - tail)))
        if d.size
        else (math.nan, math.nan)
    )
    return Comparison(
        metric=metric,
        challenger=new,
        champion=old,
        delta=new - old,
        low=low,
        high=high,
        confidence=confidence,
        rounds=rounds,
        n_rows=n_rows,
    )


class _Sorted:
    """One model's scores in descending order, tied scores grouped, for weighted metrics."""

    def __init__(self, y: np.ndarray, scores: np.ndarray, metric: str) -> None:
        if scores.shape != y.shape:
            raise ValueError(f"scores and labels differ in length: {scores.shape} vs {y.shape}")
        self.order = np.argsort(-scores, kind="stable")
        s = scores[self.order]
        self.y = y[self.order]
        # first index of each group of equal scores (descending)
        self.starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else np.array([0])
        self.grouped = len(self.starts) < len(s)
        self.metric_name = metric

    def metric(self, weights: np.ndarray) -> np.ndarray:
        """The metric for each row of ``weights`` (rounds x rows, in the original row order)."""
        w = weights[:, self.order]
        pos, neg = w * self.y, w * ~self.y
        if self.grouped:  # ties: one step per group of equal scores
            pos = np.add.reduceat(pos, self.starts, axis=1)
            neg = np.add.reduceat(neg, self.starts, axis=1)
        total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.metric_name == "auc":
                # a positive beats every negative in a lower group, ties count half
                neg_above = np.cumsum(neg, axis=1) - neg
                wins = (pos * (total_neg[:, None] - neg_above - 0.5 * neg)).sum(axis=1)
                out = wins / (total_pos * total_neg)
                out[(total_pos == 0) | (total_neg == 0)] = np.nan
            else:
                tp = np.cumsum(pos, axis=1)
                seen = tp + np.cumsum(neg, axis=1)
                precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
                out = (pos * precision).sum(axis=1) / total_pos
                out[total_pos == 0] = np.nan
        return out
