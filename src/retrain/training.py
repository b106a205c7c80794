"""Train and evaluate the LightGBM model on featurized data, with a time-based holdout.

The holdout is the newest slice by the time column: the model is judged on data from after
everything it learned from, which is what it will face in production. Early stopping uses a
validation slice carved (also by time) from the training part, never from the holdout.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from retrain.config import Config, DatasetConfig
from retrain.features import feature_names

if TYPE_CHECKING:  # lightgbm is imported where used: DAG files import this module to parse
    import lightgbm as lgb

VALID_FRACTION = 0.15  # of the training part, newest rows, for early stopping only
NUM_THREADS = 2
_EPS = 1e-15


@dataclass(frozen=True)
class Metrics:
    auc: float
    logloss: float
    average_precision: float
    positive_rate: float
    n_rows: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class Model:
    """A trained booster and the ordered feature names it expects."""

    booster: lgb.Booster
    feature_names: tuple[str, ...]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """P(target = 1) per row; ``features`` is a ``build_features`` frame (extra columns ok)."""
        missing = [f for f in self.feature_names if f not in features.columns]
        if missing:
            raise KeyError(f"features missing from input: {missing}")
        return np.asarray(self.booster.predict(features[list(self.feature_names)]), dtype="float64")

    def importance(self) -> dict[str, float]:
        """Each feature's share of the model's total gain (what an importance-weighted drift
        rule weighs drifted features by)."""
        gain = np.asarray(self.booster.feature_importance(importance_type="gain"), dtype="float64")
        total = gain.sum()
        shares = gain / total if total > 0 else np.full(len(gain), 1 / max(len(gain), 1))
        return {n: float(v) for n, v in zip(self.feature_names, shares, strict=True)}

    def to_text(self) -> str:
        """LightGBM's model string; it carries the pandas category lists, so codes survive."""
        return self.booster.model_to_string()

    @classmethod
    def from_text(cls, text: str) -> Model:
        import lightgbm as lgb

        booster = lgb.Booster(model_str=text)
        return cls(booster=booster, feature_names=tuple(booster.feature_name()))


@dataclass(frozen=True, eq=False)
class TrainResult:
    model: Model
    metrics: Metrics  # on the holdout
    best_iteration: int
    n_train: int
    n_holdout: int
    holdout_start: str  # ISO timestamp of the oldest holdout row
    # retrain.trainset under a memory budget: the training part had this many rows and the
    # model learned from a seeded sample of n_train of them (0: it learned from all of them)
    sampled_from: int = 0
    # P(target = 1) of each holdout row, in the holdout's order (None: not kept)
    holdout_scores: np.ndarray | None = None


def in_time_order(df: pd.DataFrame, ds: DatasetConfig) -> pd.DataFrame:
    """Rows by time, ties broken by id, missing times first: the one order every split uses."""
    return df.sort_values([ds.time_column, ds.id_column], kind="stable", na_position="first")


def split_by_time(
    df: pd.DataFrame, ds: DatasetConfig, holdout_fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(older, newest) rows; ties in time are broken by id so the split is deterministic."""
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    if len(df) < 2:
        raise ValueError(f"need at least 2 rows to split, got {len(df)}")
    ordered = in_time_order(df, ds)
    n_holdout = min(max(round(len(df) * holdout_fraction), 1), len(df) - 1)
    cut = len(df) - n_holdout
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)


def split_holdout(
    features: pd.DataFrame, ds: DatasetConfig, holdout_fraction: float, newest: np.ndarray | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training part, holdout): the rows marked ``newest`` (data the champion never trained
    on) when given, else the newest ``holdout_fraction`` by time. Both keep time order."""
    if newest is None:
        return split_by_time(features, ds, holdout_fraction)
    newest = np.asarray(newest, dtype=bool)
    if newest.all() or not newest.any():
        raise ValueError("the newest rows must be some but not all rows")
    train = in_time_order(features[~newest], ds)
    holdout = in_time_order(features[newest], ds)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def train_model(
    features: pd.DataFrame, cfg: Config, *, newest: np.ndarray | None = None
) -> TrainResult:
    """Fit on the older rows, early-stop on their newest slice, refit, score the holdout.

    The holdout is ``split_holdout``'s. Once early stopping has picked the number of rounds, the
    model is refit on the whole training part for that many rounds, so the newest pre-holdout
    rows are not used for validation only. Positives are up-weighted by sqrt(negatives /
    positives): enough to help the trees find the rare class, mild enough to keep
    probabilities (and logloss) usable.
    """
    import lightgbm as lgb

    ds, tc = cfg.dataset, cfg.training
    names = feature_names(ds)
    train, holdout = split_holdout(features, ds, tc.holdout_fraction, newest)
    fit, valid = split_by_time(train, ds, VALID_FRACTION)
    y_train = _labels(train, ds)
    params = _params(cfg, y_train)
    fit_set = lgb.Dataset(fit[names], _labels(fit, ds), free_raw_data=False)
    valid_set = lgb.Dataset(valid[names], _labels(valid, ds), reference=fit_set)
    probe = lgb.train(
        params,
        fit_set,
        num_boost_round=tc.num_boost_round,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(tc.early_stopping_rounds, verbose=False)],
    )
    best = probe.best_iteration or tc.num_boost_round
    booster = lgb.train(params, lgb.Dataset(train[names], y_train), num_boost_round=best)
    model = Model(booster=booster, feature_names=tuple(names))
    return TrainResult(
        model=model,
        metrics=evaluate(model, holdout, ds),
        best_iteration=best,
        n_train=len(train),
        n_holdout=len(holdout),
        holdout_start=pd.Timestamp(holdout[ds.time_column].iloc[0]).isoformat(),
    )


def refit(features: pd.DataFrame, cfg: Config, rounds: int) -> Model:
    """The serving model: every row, for the number of rounds early stopping chose when the
    challenger was evaluated, so production never runs a model that missed the newest data."""
    import lightgbm as lgb

    names = feature_names(cfg.dataset)
    y = _labels(features, cfg.dataset)
    booster = lgb.train(
        _params(cfg, y), lgb.Dataset(features[names], y), num_boost_round=max(rounds, 1)
    )
    return Model(booster=booster, feature_names=tuple(names))


def _params(cfg: Config, y_train: np.ndarray) -> dict:
    tc = cfg.training
    n_pos = int(y_train.sum())
    if n_pos == 0 or n_pos == len(y_train):
        raise ValueError("training part has a single class; cannot train a binary model")
    return {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": tc.learning_rate,
        "num_leaves": tc.num_leaves,
        "min_data_in_leaf": tc.min_data_in_leaf,
        "scale_pos_weight": math.sqrt((len(y_train) - n_pos) / n_pos),
        "seed": tc.seed,
        "num_threads": NUM_THREADS,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }


def evaluate(model: Model, holdout_features: pd.DataFrame, ds: DatasetConfig) -> Metrics:
    """Metrics of ``model`` on a featurized frame; AUC/AP are NaN if it has a single class."""
    return metrics_of(_labels(holdout_features, ds), model.predict_proba(holdout_features))


def metrics_of(y: np.ndarray, p: np.ndarray) -> Metrics:
    """:func:`evaluate`'s metrics from labels and scores (a streamed prediction has no frame)."""
    y = np.asarray(y)
    return Metrics(
        auc=roc_auc(y, p),
        logloss=log_loss(y, p),
        average_precision=average_precision(y, p),
        positive_rate=float(y.mean()) if len(y) else math.nan,
        n_rows=len(y),
    )


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC: P(score of a random positive > a random negative), ties count half."""
    y = np.asarray(y_true).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(np.asarray(scores, dtype="float64"))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Sum over distinct thresholds of (recall step) x precision; tied scores form one step."""
    y = np.asarray(y_true).astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-np.asarray(scores, dtype="float64"), kind="stable")
    s, yy = np.asarray(scores, dtype="float64")[order], y[order]
    del order  # here and below: each temporary goes once used (millions of holdout rows)
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    del s
    tp = np.cumsum(yy)[last_of_tie]
    del yy
    precision = tp / (last_of_tie + 1)
    del last_of_tie
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    del tp
    recall_step *= precision
    return float(np.sum(recall_step))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their positions (scipy's "average")."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    first_of_tie = np.r_[True, xs[1:] != xs[:-1]]
    del xs  # here and below: each temporary goes once used (millions of holdout rows)
    starts = np.flatnonzero(first_of_tie)
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + 1 + ends) / 2
    del starts, ends
    tie = np.cumsum(first_of_tie)
    del first_of_tie
    tie -= 1
    ranks = np.empty(len(x), dtype="float64")
    ranks[order] = mean_rank[tie]
    return ranks


def log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    y = np.asarray(y_true, dtype="float64")
    if len(y) == 0:
        return math.nan
    p = np.clip(np.asarray(proba, dtype="float64"), _EPS, 1 - _EPS)
    # y * log(p) + (1 - y) * log1p(-p), in place: the same numbers, two arrays fewer
    loss = np.log(p)
    loss *= y
    np.negative(p, out=p)
    np.log1p(p, out=p)
    p *= 1 - y
    loss += p
    return float(-np.mean(loss))


def _labels(df: pd.DataFrame, ds: DatasetConfig) -> np.ndarray:
    y = pd.to_numeric(df[ds.target], errors="coerce")
    if y.isna().any() or not y.isin((0, 1)).all():
        raise ValueError(f"target {ds.target!r} must be 0/1 with no missing values")
    return y.to_numpy(dtype="int64")
