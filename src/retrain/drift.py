"""Population stability (PSI) of each input feature between a reference and a new batch.

The reference profile is plain JSON (bin edges and fractions), stored next to the model it
describes, so a later batch can be checked without the reference data. Time parts and the
missing count are not profiled: a batch covering one day would always "drift" by weekday.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import DatasetConfig
from retrain.features import categorical_feature_names, column_feature_names

PROFILE_VERSION = 1
EPSILON = 1e-4  # stands in for an empty bin's fraction so PSI stays finite
MISSING = "__missing__"
OTHER = "__other__"


@dataclass(frozen=True)
class DriftReport:
    psi: dict[str, float]
    drifted: tuple[str, ...]  # features with PSI above the threshold, worst first
    max_psi: float
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "psi": dict(self.psi),
            "drifted": list(self.drifted),
            "max_psi": self.max_psi,
            "threshold": self.threshold,
        }


def reference_profile(features_df: pd.DataFrame, ds: DatasetConfig, bins: int) -> dict[str, Any]:
    """Quantile bins (numeric) or category shares (categorical) of the reference data.

    Numeric bins are right-closed intervals between deduplicated quantile edges (actual data
    values, so discrete columns get one bin per frequent value), plus a missing bin.
    Categorical shares cover the configured categories, then missing, then anything else.
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    if len(features_df) == 0:
        raise ValueError("cannot profile an empty frame")
    categorical = set(categorical_feature_names(ds))
    profile: dict[str, Any] = {}
    for name in column_feature_names(ds):
        values = features_df[name]
        if name in categorical:
            cats = [str(c) for c in ds.column(name).categories or ()]
            profile[name] = {
                "kind": "categorical",
                "categories": cats,
                "fractions": _categorical_fractions(values, cats),
            }
        else:
            x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
            present = x[~np.isnan(x)]
            quantiles = np.linspace(0, 1, bins + 1)[1:-1]
            edges = (
                np.unique(np.quantile(present, quantiles, method="inverted_cdf"))
                if present.size
                else np.array([])
            )
            profile[name] = {
                "kind": "numeric",
                "edges": [float(e) for e in edges],
                "fractions": _numeric_fractions(x, edges),
            }
    return {
        "version": PROFILE_VERSION,
        "bins": bins,
        "n_rows": len(features_df),
        "features": profile,
    }


def compare(
    profile: dict[str, Any], features_df: pd.DataFrame, ds: DatasetConfig, threshold: float
) -> DriftReport:
    """PSI of each profiled feature that is still in the config; a missing column is all-missing."""
    if len(features_df) == 0:
        raise ValueError("cannot compare an empty frame")
    current = set(column_feature_names(ds))
    psi: dict[str, float] = {}
    for name, ref in profile["features"].items():
        if name not in current:
            continue
        values = (
            features_df[name]
            if name in features_df.columns
            else pd.Series(np.nan, index=features_df.index)
        )
        if ref["kind"] == "categorical":
            actual = _categorical_fractions(values, ref["categories"])
        else:
            x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
            actual = _numeric_fractions(x, np.asarray(ref["edges"], dtype="float64"))
        psi[name] = population_stability_index(ref["fractions"], actual)
    drifted = tuple(sorted((n for n, v in psi.items() if v > threshold), key=lambda n: -psi[n]))
    return DriftReport(
        psi=psi,
        drifted=drifted,
        max_psi=max(psi.values(), default=0.0),
        threshold=threshold,
    )


def population_stability_index(expected: list[float], actual: list[float]) -> float:
    """sum((a - e) * ln(a / e)) over bins, empty bins floored at ``EPSILON``."""
    e = np.maximum(np.asarray(expected, dtype="float64"), EPSILON)
    a = np.maximum(np.asarray(actual, dtype="float64"), EPSILON)
    if e.shape != a.shape:
        raise ValueError(f"bin counts differ: {e.shape} vs {a.shape}")
    value = float(np.sum((a - e) * np.log(a / e)))
    return 0.0 if math.isclose(value, 0.0, abs_tol=1e-12) else value


def _numeric_fractions(x: np.ndarray, edges: np.ndarray) -> list[float]:
    """Fractions per bin ``(-inf, e0], (e0, e1], ..., (ek, inf)``, then the missing bin last."""
    missing = np.isnan(x)
    idx = np.searchsorted(edges, x[~missing], side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype("float64")
    counts = np.append(counts, missing.sum())
    return [float(c) for c in counts / len(x)]


def _categorical_fractions(values: pd.Series, categories: list[str]) -> list[float]:
    """Fractions per configured category, then missing, then any other value.

    Works on raw strings and on ``build_features`` output (where unseen values are already NaN
    and therefore count as missing).
    """
    missing = values.isna().to_numpy()
    text = values.astype(object).where(~missing, None)
    codes = pd.Categorical(text.where(missing, text.astype(str)), categories=categories).codes
    counts = np.bincount(codes[codes >= 0], minlength=len(categories)).astype("float64")
    other = int(((codes < 0) & ~missing).sum())
    counts = np.append(counts, [missing.sum(), other])
    return [float(c) for c in counts / len(values)]
