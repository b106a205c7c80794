"""Drift of new data against a model's training-time reference: per feature, for the data as a
whole, and for the model's scores. Pure functions on in-memory frames, vectorized per column.

The reference profile (``reference_profile``) is plain JSON stored next to the model, compact
whatever the row count, so later data can be checked without the reference rows:

- numeric feature: right-closed bins on the reference's quantiles (one bin per value when the
  feature has no more distinct values than ``bins``) with their fractions plus a missing bin;
  mean, std, min, max of the present values; and for the Wasserstein distance either the exact
  share of each value (at most ``TABLE_VALUES`` distinct values: counts, codes, integers) or a
  quantile sketch of ``SKETCH_POINTS`` values;
- categorical feature: the configured categories' shares, then missing, then any other value.

What is profiled: every model feature that can be: the dataset's numeric and categorical columns
(``retrain.features.column_feature_names``) and the derived features (hour, day of week,
missing count), plus the model's scores on the reference rows when given.

What is monitored (counts towards "the data drifted"): a column whose config says ``drift =
true`` (the default), and the missing count (more or fewer gaps per row is a change in the data).
Columns with ``drift = false`` and the calendar parts (hour and day of week of the time column)
are measured and shown but never counted: a batch that covers one day always "drifts" by weekday.
The config given to ``compare`` decides, so switching a column off applies to existing models.

A feature drifted when an effect size is larger than its threshold, never because a p-value is
small: with 1M rows a p-value flags differences nobody cares about, while an effect size of two
samples from the same distribution tends to 0 as rows grow. Exactly, with ``dc = cfg.drift``:

- numeric:     PSI > max(dc.psi_threshold, psi_noise)
               OR distance > max(dc.distance_threshold, distance_noise),
  the distance being the Wasserstein-1 distance of the present values divided by the
  reference's standard deviation (at least ``STD_FLOOR``) or, for a feature with at most
  ``FEW_VALUES`` distinct values in reference and new data together (flags, small counts), the
  Jensen-Shannon distance of its value bins (a 5-point change of a 30% flag is 0.11 SD);
- categorical: PSI > max(dc.psi_threshold, psi_noise)
               OR JS > max(dc.distance_threshold, js_noise),
  JS being the Jensen-Shannon distance (base 2, in [0, 1]) over categories + missing + other,
  so unseen categories (``unseen``: their share of the new rows) and missingness count.

PSI is over the bins either side uses, each count plus half a row, so an empty bin in a small
batch costs what half a row would, not ln(``EPSILON``); with many rows it is the textbook PSI.

This mirrors Evidently's defaults for more than 1000 reference rows (normed Wasserstein >= 0.1;
Jensen-Shannon >= 0.1 for categorical and at most 5-valued numeric columns); PSI adds the
missing bin and shape changes that a distance averages away. Evidently's Jensen-Shannon uses the
natural log: its 0.1 is 0.12 in the base-2 units here, so at the same threshold this module
flags categorical changes between 0.083 and 0.1 (natural-log units) that Evidently does not
(``benchmarks/drift.py`` measures the agreement).

The noise levels are about the 99th percentile of the statistic for two samples of one
distribution of these sizes. They shrink as 1/n (PSI) or 1/sqrt(n) (distances): from a few
thousand rows on, the thresholds alone decide; with a few hundred, a value that sampling noise
reaches is not called drift (instead of a minimum sample size):

- psi_noise = chi2_0.99(k - 1) * (1/n_ref + 1/n_new), k the bins with reference mass (PSI's
  small-sample bias, its mean without drift, is (k - 1) * (1/n_ref + 1/n_new));
- js_noise = sqrt(psi_noise / (8 ln 2)) (the JS divergence is about PSI / 8, in nats);
- Wasserstein: ``W_NOISE_FACTOR`` * sqrt(2/pi) * sqrt(1/m_ref + 1/m_new) *
  integral(sqrt(F (1 - F)) dx) / std, i.e. 2.5 times the mean gap of two empirical CDFs of the
  reference distribution (m: present values).

On the demo data (8000 reference rows, 200 batches each drawn like the reference) this calls
0.5-2.5% of features drifted per batch at 30 to 1000 rows, and no batch "data drifted".

The data drifted when ``share >= dc.share_threshold`` and at least one monitored feature drifted:
with ``rule = "share"`` the share of monitored features that drifted; with ``rule =
"importance"`` and an importance map (feature -> share of the model's gain), the drifted
monitored features' importance over all monitored features' importance (unmonitored features
are in neither). Without importance, or when the monitored features have none, the share rule
applies and ``DriftReport.rule`` says "share".

The scores drifted when their PSI > max(dc.prediction_psi_threshold, psi_noise); their distance
is measured and shown, not used.

Profiles of version 1 (bins and fractions only, from before this module) are still compared:
PSI and, for categorical features, the Jensen-Shannon distance; numeric distances are None.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import DatasetConfig, DriftConfig
from retrain.features import (
    DAY_OF_WEEK_SUFFIX,
    HOUR_SUFFIX,
    MISSING_COUNT,
    categorical_feature_names,
    column_feature_names,
    derived_feature_names,
)

PROFILE_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
EPSILON = 1e-4  # population_stability_index: an empty bin's fraction, so PSI stays finite
SKETCH_POINTS = 500  # quantiles kept per numeric feature, at (j + 0.5) / SKETCH_POINTS
TABLE_VALUES = 500  # up to this many distinct values: their exact shares instead of a sketch
FEW_VALUES = 5  # a numeric feature with at most this many distinct values is compared by JS
STD_FLOOR = 1e-3  # the Wasserstein distance is divided by max(reference std, this)
Z_99 = 2.326  # the standard normal's 99th percentile
# W1 without drift rarely exceeds this many times its mean (simulated: the 99th percentile is
# 2.0-2.5 times the mean for normal, skewed and count features from 30 to 1M rows).
W_NOISE_FACTOR = 2.5
MISSING_LABEL = "(missing)"
OTHER_LABEL = "(other)"
SCORE = "score"
NUMERIC = "numeric"
CATEGORICAL = "categorical"
WASSERSTEIN = "wasserstein_norm"
JENSEN_SHANNON = "jensen_shannon"
SHARE, IMPORTANCE = "share", "importance"


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    """One feature (or the scores): its distributions side by side and the verdict."""

    name: str
    kind: str  # "numeric" | "categorical"
    psi: float
    distance: float | None  # None: not measurable (version-1 numeric profile, no values)
    distance_name: str | None  # "wasserstein_norm" | "jensen_shannon"
    drifted: bool  # the effect sizes exceed their thresholds (whether monitored or not)
    monitored: bool  # counts towards "the data drifted"
    labels: tuple[str, ...]  # one per bin, for plotting
    reference: tuple[float, ...]  # fraction of reference rows per bin
    current: tuple[float, ...]  # fraction of new rows per bin
    unseen: float | None  # categorical: share of new rows outside the reference categories
    n_reference: int
    n_current: int
    psi_noise: float = 0.0  # what PSI averages without drift at these sample sizes
    distance_noise: float | None = None  # the same for the distance

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "psi": self.psi,
            "distance": self.distance,
            "distance_name": self.distance_name,
            "drifted": self.drifted,
            "monitored": self.monitored,
            "labels": list(self.labels),
            "reference": list(self.reference),
            "current": list(self.current),
            "unseen": self.unseen,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "psi_noise": self.psi_noise,
            "distance_noise": self.distance_noise,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureDrift:
        return cls(
            name=str(d["name"]),
            kind=str(d["kind"]),
            psi=float(d["psi"]),
            distance=_opt_float(d.get("distance")),
            distance_name=d.get("distance_name"),
            drifted=bool(d["drifted"]),
            monitored=bool(d["monitored"]),
            labels=tuple(str(x) for x in d.get("labels") or ()),
            reference=tuple(float(x) for x in d.get("reference") or ()),
            current=tuple(float(x) for x in d.get("current") or ()),
            unseen=_opt_float(d.get("unseen")),
            n_reference=int(d["n_reference"]),
            n_current=int(d["n_current"]),
            psi_noise=float(d.get("psi_noise") or 0.0),
            distance_noise=_opt_float(d.get("distance_noise")),
        )


@dataclass(frozen=True)
class DriftReport:
    features: tuple[FeatureDrift, ...]  # every compared feature, in profile order
    drifted: tuple[str, ...]  # monitored features that drifted, worst (highest PSI) first
    share: float  # of monitored features (or of their importance) that drifted
    data_drifted: bool  # share >= share_threshold
    rule: str  # the rule applied: "share" or "importance"
    prediction: FeatureDrift | None  # the model's scores, when both sides have them
    prediction_drifted: bool
    psi_threshold: float = DriftConfig.psi_threshold
    distance_threshold: float = DriftConfig.distance_threshold
    share_threshold: float = DriftConfig.share_threshold
    prediction_psi_threshold: float = DriftConfig.prediction_psi_threshold

    @property
    def max_psi(self) -> float:
        """The largest PSI of a monitored feature (0 when there is none)."""
        return max((f.psi for f in self.features if f.monitored), default=0.0)

    @property
    def monitored(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.monitored)

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def summary(self) -> str:
        """One line, e.g. ``data drifted: 3 of 12 monitored features (25%, threshold 20%, rule
        share); worst: a (PSI 0.45, Wasserstein 0.62), ...; scores stable (PSI 0.02)``."""
        head = "data drifted" if self.data_drifted else "no data drift"
        n_mon = len(self.monitored)
        share = f"{self.share:.0%}"
        if self.rule == IMPORTANCE:
            share = f"carrying {share} of the monitored features' importance"
        text = (
            f"{head}: {len(self.drifted)} of {n_mon} monitored features drifted "
            f"({share}, threshold {self.share_threshold:.0%}, rule {self.rule})"
        )
        if self.drifted:
            worst = [self.feature(n) for n in self.drifted[:3]]
            more = len(self.drifted) - len(worst)
            text += "; worst: " + ", ".join(f"{f.name} ({_measures(f)})" for f in worst)
            text += f" and {more} more" if more else ""
        if self.prediction is not None:
            state = "drifted" if self.prediction_drifted else "stable"
            text += f"; scores {state} ({_measures(self.prediction)})"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "features": [f.as_dict() for f in self.features],
            "drifted": list(self.drifted),
            "share": self.share,
            "data_drifted": self.data_drifted,
            "rule": self.rule,
            "prediction": self.prediction.as_dict() if self.prediction else None,
            "prediction_drifted": self.prediction_drifted,
            "max_psi": self.max_psi,
            "psi_threshold": self.psi_threshold,
            "distance_threshold": self.distance_threshold,
            "share_threshold": self.share_threshold,
            "prediction_psi_threshold": self.prediction_psi_threshold,
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftReport:
        """The inverse of ``as_dict`` (``max_psi`` and ``summary`` are derived, not read)."""
        prediction = d.get("prediction")
        defaults = DriftConfig()
        return cls(
            features=tuple(FeatureDrift.from_dict(f) for f in d["features"]),
            drifted=tuple(str(n) for n in d["drifted"]),
            share=float(d["share"]),
            data_drifted=bool(d["data_drifted"]),
            rule=str(d["rule"]),
            prediction=FeatureDrift.from_dict(prediction) if prediction else None,
            prediction_drifted=bool(d.get("prediction_drifted", False)),
            psi_threshold=float(d.get("psi_threshold", defaults.psi_threshold)),
            distance_threshold=float(d.get("distance_threshold", defaults.distance_threshold)),
            share_threshold=float(d.get("share_threshold", defaults.share_threshold)),
            prediction_psi_threshold=float(
                d.get("prediction_psi_threshold", defaults.prediction_psi_threshold)
            ),
        )


# -- the reference ------------------------------------------------------------------------------


def reference_profile(
    frame: pd.DataFrame,
    ds: DatasetConfig,
    dc: DriftConfig,
    *,
    scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """The JSON profile of ``frame`` (features as ``build_features`` makes them, or raw columns)
    and of the model's ``scores`` on it; see the module docstring for what it holds."""
    if dc.bins < 2:
        raise ValueError(f"bins must be >= 2, got {dc.bins}")
    n = len(frame)
    if n == 0:
        raise ValueError("cannot profile an empty frame")
    categorical = set(categorical_feature_names(ds))
    features: dict[str, Any] = {}
    for name in _profiled_names(ds):
        values = _values(frame, name, ds)
        if name in categorical:
            cats = [str(c) for c in ds.column(name).categories or ()]
            counts = _category_counts(values, cats, n)
            spec: dict[str, Any] = {
                "kind": CATEGORICAL,
                "categories": cats,
                "fractions": (counts / n).tolist(),
            }
        else:
            spec = _numeric_spec(_numeric(values, n), dc.bins)
        spec["monitored"] = _monitored(name, ds)
        features[name] = spec
    profile: dict[str, Any] = {
        "version": PROFILE_VERSION,
        "bins": dc.bins,
        "n_rows": n,
        "sketch_points": SKETCH_POINTS,
        "features": features,
        "scores": None,
    }
    if scores is not None:
        s = np.asarray(scores, dtype="float64").ravel()
        if s.size == 0:
            raise ValueError("cannot profile empty scores")
        profile["scores"] = {**_numeric_spec(s, dc.bins), "n_rows": int(s.size)}
    return profile


def _numeric_spec(x: np.ndarray, bins: int) -> dict[str, Any]:
    n = x.size
    present = _sorted_present(x)
    m = present.size
    spec: dict[str, Any] = {"kind": NUMERIC, "n_present": m}
    if m == 0:
        spec.update(edges=[], fractions=[0.0, 1.0], mean=None, std=None, min=None, max=None)
        return spec
    starts = _run_starts(present)
    distinct = present[starts] if starts.size <= max(bins, TABLE_VALUES) else None
    if distinct is not None and distinct.size <= bins:
        edges = distinct  # one bin per value
    else:
        quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
        edges = np.unique(present[_quantile_index(quantiles, m)])
    counts = np.append(_bin_counts(present, edges), n - m)
    spec.update(
        edges=edges.tolist(),
        fractions=(counts / n).tolist(),
        mean=float(present.mean()),
        std=float(present.std()),
        min=float(present[0]),
        max=float(present[-1]),
    )
    if distinct is not None and distinct.size <= TABLE_VALUES:
        spec["values"] = distinct.tolist()
        spec["value_fractions"] = (np.diff(np.append(starts, m)) / m).tolist()
    else:
        spec["quantiles"] = present[_quantile_index(_sketch_grid(SKETCH_POINTS), m)].tolist()
    return spec


# -- the comparison -----------------------------------------------------------------------------


def compare(
    profile: Mapping[str, Any],
    frame: pd.DataFrame,
    ds: DatasetConfig,
    dc: DriftConfig,
    *,
    scores: np.ndarray | None = None,
    importance: Mapping[str, float] | None = None,
) -> DriftReport:
    """``frame`` (and the model's ``scores`` on it) against a ``reference_profile``.

    Every profiled feature the config still has is compared; one missing from ``frame`` counts
    as all-missing (the derived features are computed from the time and raw columns when
    ``frame`` has those instead). The rule is in the module docstring.
    """
    version = profile.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"unsupported drift profile version {version!r}")
    n = len(frame)
    if n == 0:
        raise ValueError("cannot compare an empty frame")
    n_ref = int(profile["n_rows"])
    wanted = set(_profiled_names(ds))
    features = []
    for name, spec in profile["features"].items():
        if name not in wanted:
            continue
        values = _values(frame, name, ds)
        monitored = _monitored(name, ds)
        if spec["kind"] == CATEGORICAL:
            counts = _category_counts(values, list(spec["categories"]), n)
            features.append(_categorical_drift(name, spec, counts, n_ref, n, dc, monitored))
        else:
            x = _numeric(values, n)
            features.append(_numeric_drift(name, spec, x, n_ref, dc, monitored))

    prediction = None
    if scores is not None and profile.get("scores"):
        spec = profile["scores"]
        s = np.asarray(scores, dtype="float64").ravel()
        if s.size == 0:
            raise ValueError("cannot compare empty scores")
        measured = _numeric_drift(SCORE, spec, s, int(spec["n_rows"]), dc, True)
        drifted = _exceeds(measured.psi, measured.psi_noise, dc.prediction_psi_threshold)
        prediction = replace(measured, drifted=drifted)

    monitored = [f for f in features if f.monitored]
    drifted_features = sorted(
        (f for f in monitored if f.drifted), key=lambda f: (-f.psi, -(f.distance or 0.0), f.name)
    )
    rule, share = _share(monitored, {f.name for f in drifted_features}, dc.rule, importance)
    return DriftReport(
        features=tuple(features),
        drifted=tuple(f.name for f in drifted_features),
        share=share,
        data_drifted=bool(drifted_features) and share >= dc.share_threshold,
        rule=rule,
        prediction=prediction,
        prediction_drifted=bool(prediction and prediction.drifted),
        psi_threshold=dc.psi_threshold,
        distance_threshold=dc.distance_threshold,
        share_threshold=dc.share_threshold,
        prediction_psi_threshold=dc.prediction_psi_threshold,
    )


def _share(
    monitored: list[FeatureDrift],
    drifted: set[str],
    rule: str,
    importance: Mapping[str, float] | None,
) -> tuple[str, float]:
    if not monitored:
        return SHARE, 0.0
    if rule == IMPORTANCE and importance:
        weights = {f.name: max(float(importance.get(f.name, 0.0)), 0.0) for f in monitored}
        total = sum(weights.values())
        if total > 0 and math.isfinite(total):
            return IMPORTANCE, sum(weights[n] for n in drifted) / total
    return SHARE, len(drifted) / len(monitored)


def _numeric_drift(
    name: str,
    spec: Mapping[str, Any],
    x: np.ndarray,
    n_ref: int,
    dc: DriftConfig,
    monitored: bool,
) -> FeatureDrift:
    n = x.size
    present = _sorted_present(x)
    m = present.size
    edges = np.asarray(spec["edges"], dtype="float64")
    reference = np.asarray(spec["fractions"], dtype="float64")
    current = np.append(_bin_counts(present, edges), n - m) / n
    psi = sample_psi(reference, n_ref, current, n)
    psi_noise = _psi_noise(reference, n_ref, n)
    distance = distance_name = distance_noise = None
    values = spec.get("values")
    distinct = _distinct_sorted(present) if values is not None else None
    if values is not None and _few_values(values, distinct):
        distance_name = JENSEN_SHANNON
        distance = jensen_shannon_distance(reference, current)
        distance_noise = _js_noise(psi_noise)
    elif m and (values or spec.get("quantiles")):  # version 2 with present values
        distance_name = WASSERSTEIN
        norm = max(float(spec["std"]), STD_FLOOR)
        m_ref = int(spec["n_present"])
        if values:
            v = np.asarray(values, dtype="float64")
            cdf = np.cumsum(np.asarray(spec["value_fractions"], dtype="float64"))
            w, spread = _wasserstein_exact(v, cdf, present, distinct)
        else:
            q_ref = np.asarray(spec["quantiles"], dtype="float64")
            w, spread = _wasserstein_sketch(q_ref, present)
        distance = w / norm
        distance_noise = _wasserstein_noise(spread, m_ref, m) / norm
    return FeatureDrift(
        name=name,
        kind=NUMERIC,
        psi=psi,
        distance=distance,
        distance_name=distance_name,
        drifted=_drifted(psi, psi_noise, distance, distance_noise, dc),
        monitored=monitored,
        labels=tuple(_interval_labels(edges)),
        reference=tuple(reference.tolist()),
        current=tuple(current.tolist()),
        unseen=None,
        n_reference=n_ref,
        n_current=n,
        psi_noise=psi_noise,
        distance_noise=distance_noise,
    )


def _categorical_drift(
    name: str,
    spec: Mapping[str, Any],
    counts: np.ndarray,
    n_ref: int,
    n: int,
    dc: DriftConfig,
    monitored: bool,
) -> FeatureDrift:
    reference = np.asarray(spec["fractions"], dtype="float64")
    current = counts / n
    psi = sample_psi(reference, n_ref, current, n)
    psi_noise = _psi_noise(reference, n_ref, n)
    distance = jensen_shannon_distance(reference, current)
    distance_noise = _js_noise(psi_noise)
    return FeatureDrift(
        name=name,
        kind=CATEGORICAL,
        psi=psi,
        distance=distance,
        distance_name=JENSEN_SHANNON,
        drifted=_drifted(psi, psi_noise, distance, distance_noise, dc),
        monitored=monitored,
        labels=(*[str(c) for c in spec["categories"]], MISSING_LABEL, OTHER_LABEL),
        reference=tuple(reference.tolist()),
        current=tuple(current.tolist()),
        unseen=float(current[-1]),
        n_reference=n_ref,
        n_current=n,
        psi_noise=psi_noise,
        distance_noise=distance_noise,
    )


def _drifted(
    psi: float,
    psi_noise: float,
    distance: float | None,
    distance_noise: float | None,
    dc: DriftConfig,
) -> bool:
    if _exceeds(psi, psi_noise, dc.psi_threshold):
        return True
    return distance is not None and _exceeds(distance, distance_noise or 0.0, dc.distance_threshold)


def _exceeds(value: float, noise: float, threshold: float) -> bool:
    """Larger than the threshold and than what sampling noise alone reaches."""
    return value > max(threshold, noise)


# -- statistics ---------------------------------------------------------------------------------


def population_stability_index(expected: Sequence[float], actual: Sequence[float]) -> float:
    """sum((a - e) * ln(a / e)) over bins, empty bins floored at ``EPSILON``."""
    e = np.maximum(np.asarray(expected, dtype="float64"), EPSILON)
    a = np.maximum(np.asarray(actual, dtype="float64"), EPSILON)
    if e.shape != a.shape:
        raise ValueError(f"bin counts differ: {e.shape} vs {a.shape}")
    value = float(np.sum((a - e) * np.log(a / e)))
    return 0.0 if math.isclose(value, 0.0, abs_tol=1e-12) else value


def jensen_shannon_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """sqrt of the Jensen-Shannon divergence in bits: 0 for equal, 1 for disjoint shares."""
    p = np.asarray(p, dtype="float64")
    q = np.asarray(q, dtype="float64")
    if p.shape != q.shape:
        raise ValueError(f"bin counts differ: {p.shape} vs {q.shape}")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    divergence = (_kl_bits(p, m) + _kl_bits(q, m)) / 2
    return math.sqrt(min(max(divergence, 0.0), 1.0))


def sample_psi(reference: np.ndarray, n_ref: int, current: np.ndarray, n_cur: int) -> float:
    """PSI of two samples' bin fractions (``n_ref`` and ``n_cur`` rows), over the bins either
    side uses, each bin's count plus half a row (Jeffreys): an empty bin costs what half a row
    would, not ``ln(EPSILON)``, so a small batch missing a 2% bin is not drift. With many rows
    this is the textbook PSI."""
    used = (reference > 0) | (current > 0)
    k = int(np.count_nonzero(used))
    e = (reference[used] * n_ref + 0.5) / (n_ref + 0.5 * k)
    a = (current[used] * n_cur + 0.5) / (n_cur + 0.5 * k)
    value = float(np.sum((a - e) * np.log(a / e)))
    return 0.0 if math.isclose(value, 0.0, abs_tol=1e-12) else value


def _kl_bits(p: np.ndarray, m: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))


def _psi_noise(reference: np.ndarray, n_ref: int, n_cur: int) -> float:
    """The 99th percentile of PSI without drift: chi-square with k - 1 degrees of freedom (k the
    bins with reference mass; Wilson-Hilferty) times (1/n_ref + 1/n_cur). Its mean, k - 1 times
    that scale, is PSI's familiar small-sample bias."""
    df = max(int(np.count_nonzero(reference > 0)) - 1, 0)
    if df == 0:
        return 0.0
    scale = 1.0 / max(n_ref, 1) + 1.0 / max(n_cur, 1)
    h = 2.0 / (9.0 * df)
    return df * (1.0 - h + Z_99 * math.sqrt(h)) ** 3 * scale


def _js_noise(psi_noise: float) -> float:
    """The same percentile of the Jensen-Shannon distance (without drift its divergence is
    about PSI / 8, in nats)."""
    return math.sqrt(psi_noise / (8.0 * math.log(2.0)))


def _wasserstein_exact(
    values: np.ndarray, cdf: np.ndarray, present: np.ndarray, distinct: np.ndarray
) -> tuple[float, float]:
    """W1 between the reference's value table (sorted values, CDF at each) and the sorted new
    values, exactly: the integral of |F_ref - F_new| over the union of their values; and the
    reference's integral of sqrt(F (1 - F)) (see ``_wasserstein_noise``)."""
    z = np.union1d(values, distinct)
    f_ref = np.concatenate(([0.0], cdf))[np.searchsorted(values, z, side="right")]
    f_cur = np.searchsorted(present, z, side="right") / present.size
    w = float(np.sum(np.abs(f_ref - f_cur)[:-1] * np.diff(z)))
    inner = np.clip(cdf[:-1] * (1.0 - cdf[:-1]), 0.0, None)
    return w, float(np.sum(np.sqrt(inner) * np.diff(values)))


def _wasserstein_sketch(q_ref: np.ndarray, present: np.ndarray) -> tuple[float, float]:
    """W1 between the reference's quantile sketch (at ``_sketch_grid``) and the sorted new
    values, as the mean gap of their quantiles on the same grid; and the reference's integral of
    sqrt(F (1 - F)), summed where the sketch's cells meet."""
    k = q_ref.size
    q_cur = present[_quantile_index(_sketch_grid(k), present.size)]
    u = np.arange(1, k) / k
    spread = float(np.sum(np.diff(q_ref) * np.sqrt(u * (1 - u))))
    return float(np.mean(np.abs(q_ref - q_cur))), spread


def _wasserstein_noise(spread: float, m_ref: int, m_cur: int) -> float:
    """About the 99th percentile of W1 between two samples (m_ref and m_cur values) of one
    distribution: ``W_NOISE_FACTOR`` times its mean, the mean absolute gap of the empirical CDFs,
    sqrt(2/pi) * sqrt(F(1-F) (1/m_ref + 1/m_cur)), integrated over x (``spread`` is the
    integral of sqrt(F (1 - F)))."""
    if m_ref < 1 or m_cur < 1:
        return 0.0
    mean = math.sqrt(2.0 / math.pi) * math.sqrt(1.0 / m_ref + 1.0 / m_cur) * spread
    return W_NOISE_FACTOR * mean


def _few_values(ref_values: Sequence[float], distinct: np.ndarray) -> bool:
    """Whether reference and new values together have at most ``FEW_VALUES`` distinct values."""
    if len(ref_values) > FEW_VALUES or distinct.size > FEW_VALUES:
        return False
    return np.union1d(np.asarray(ref_values, dtype="float64"), distinct).size <= FEW_VALUES


def _sketch_grid(k: int) -> np.ndarray:
    return (np.arange(k) + 0.5) / k


def _quantile_index(probabilities: np.ndarray, m: int) -> np.ndarray:
    """Positions in a sorted array of ``m`` values of the inverted-CDF quantiles: the smallest
    value whose empirical CDF reaches the probability."""
    idx = np.ceil(probabilities * m - 1e-9).astype(np.int64) - 1
    return np.clip(idx, 0, m - 1)


def _sorted_present(x: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    return np.sort(x if finite.all() else x[finite])


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Index of the first occurrence of each distinct value of a sorted array."""
    if sorted_values.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))


def _distinct_sorted(sorted_values: np.ndarray) -> np.ndarray:
    return sorted_values[_run_starts(sorted_values)]


def _bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per right-closed bin ``(-inf, e0], (e0, e1], ..., (ek, inf)``."""
    at_most = np.searchsorted(sorted_values, edges, side="right")
    return np.diff(np.concatenate(([0], at_most, [sorted_values.size]))).astype("float64")


# -- columns ------------------------------------------------------------------------------------


def _profiled_names(ds: DatasetConfig) -> list[str]:
    return column_feature_names(ds) + derived_feature_names(ds)


def _calendar_names(ds: DatasetConfig) -> set[str]:
    t = ds.time_column
    return {f"{t}{HOUR_SUFFIX}", f"{t}{DAY_OF_WEEK_SUFFIX}"}


def _monitored(name: str, ds: DatasetConfig) -> bool:
    if name in _calendar_names(ds):
        return False
    if name == MISSING_COUNT:
        return True
    return ds.column(name).drift


def _values(frame: pd.DataFrame, name: str, ds: DatasetConfig) -> pd.Series | None:
    """The column, a derived feature computed from the raw columns, or None (all missing)."""
    if name in frame.columns:
        return frame[name]
    t = ds.time_column
    if name in _calendar_names(ds):
        if t not in frame.columns:
            return None
        times = frame[t]
        if not pd.api.types.is_datetime64_any_dtype(times):
            times = pd.to_datetime(times, errors="coerce", utc=True, format="ISO8601")
        elif getattr(times.dt, "tz", None) is not None:
            times = times.dt.tz_convert("UTC")
        part = times.dt.hour if name.endswith(HOUR_SUFFIX) else times.dt.dayofweek
        return part.astype("float64")
    if name == MISSING_COUNT:
        count = np.zeros(len(frame))
        for c in ds.feature_columns:
            if c.name in frame.columns:
                count += frame[c.name].isna().to_numpy()
        return pd.Series(count, index=frame.index)
    return None


def _numeric(values: pd.Series | None, n: int) -> np.ndarray:
    """float64 values, NaN for missing, unparseable and infinite ones."""
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(
        values.dtype
    ):
        values = pd.to_numeric(values.astype(object), errors="coerce")
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _category_counts(values: pd.Series | None, categories: list[str], n: int) -> np.ndarray:
    """Counts per category, then missing, then any other value (as text, like
    ``build_features``; where that already turned unseen values into NaN, they are missing)."""
    k = len(categories)
    if values is None:
        counts = np.zeros(k + 2)
        counts[k] = n
        return counts
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        found = values.cat.categories
    else:
        codes, found = pd.factorize(values, use_na_sentinel=True)
    position = {c: i for i, c in enumerate(categories)}
    lookup = np.array([position.get(str(c), k + 1) for c in found] + [k], dtype=np.int64)
    return np.bincount(lookup[codes], minlength=k + 2).astype("float64")


# -- text ---------------------------------------------------------------------------------------


def _interval_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["all values", MISSING_LABEL]
    for digits in range(4, 18):  # the shortest text that keeps every edge apart
        e = [f"{v:.{digits}g}" for v in edges]
        if len(set(e)) == len(e):
            break
    middle = [f"({a}, {b}]" for a, b in itertools.pairwise(e)]
    return [f"<= {e[0]}", *middle, f"> {e[-1]}", MISSING_LABEL]


def _measures(f: FeatureDrift) -> str:
    text = f"PSI {f.psi:.2f}"
    if f.distance is not None:
        name = "Wasserstein" if f.distance_name == WASSERSTEIN else "JS"
        text += f", {name} {f.distance:.2f}"
    if f.unseen:
        text += f", unseen {f.unseen:.0%}"
    return text


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
