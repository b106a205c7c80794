"""Synthetic telco-churn batches for the demo, the tests and the benchmarks.

The columns, dtypes, categories and ranges mirror ``retrain.toml``. The label is drawn from a
logistic model of the features, so a model has real signal to find; ``"drifted"`` shifts both
the inputs and that model (so the drift check and a retrain have something to react to), and
``"corrupt"`` breaks the file in the ways a data-quality gate must catch.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

Scenario = Literal["normal", "drifted", "corrupt"]

CONTRACTS = ("month-to-month", "one-year", "two-year")
PAYMENT_METHODS = ("card", "bank-transfer", "e-check", "mailed-check")
REGIONS = ("north", "south", "east", "west")

# Per-scenario knobs. "drifted" moves the inputs (pricier plans, more month-to-month, more
# support calls) and the concept (heavy data users start leaving, e-check matters less).
_PARAMS: dict[str, dict[str, object]] = {
    "normal": {
        "contract_p": (0.50, 0.28, 0.22),
        "charge_scale": 1.0,
        "calls_scale": 1.0,
        "intercept": -2.7,
        "echeck": 0.8,
        "usage": 0.0,
    },
    "drifted": {
        "contract_p": (0.80, 0.13, 0.07),
        "charge_scale": 1.4,
        "calls_scale": 1.8,
        "intercept": -4.1,
        "echeck": 0.2,
        "usage": 0.9,
    },
}


def generate(
    n_rows: int,
    *,
    seed: int,
    scenario: Scenario = "normal",
    start: datetime,
    days: float = 7.0,
) -> pd.DataFrame:
    """One batch of ``n_rows`` customers observed in ``[start, start + days)``, sorted by time.

    Deterministic in all arguments. Timestamps are naive UTC (an aware ``start`` is converted).
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows}")
    if days <= 0:
        raise ValueError(f"days must be > 0, got {days}")
    if scenario not in ("normal", "drifted", "corrupt"):
        raise ValueError(f"unknown scenario {scenario!r}")
    rng = np.random.default_rng([seed, ("normal", "drifted", "corrupt").index(scenario)])
    df = _clean_batch(n_rows, rng, _PARAMS["drifted" if scenario == "drifted" else "normal"])
    df.insert(0, "event_time", _timestamps(n_rows, rng, start, days))
    df.insert(0, "customer_id", [f"C{seed}-{scenario[0]}{i:07d}" for i in range(n_rows)])
    if scenario == "corrupt":
        df = _corrupt(df, rng)
    return df


def write_batch(df: pd.DataFrame, fmt: Literal["csv", "parquet"]) -> bytes:
    """Serialize a batch the way a user would upload it: no index, ISO timestamps in CSV."""
    if fmt == "csv":
        return df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S").encode()
    if fmt == "parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    raise ValueError(f"unsupported format {fmt!r} (csv, parquet)")


def _timestamps(n: int, rng: np.random.Generator, start: datetime, days: float) -> pd.Series:
    t0 = pd.Timestamp(start)
    if t0.tzinfo is not None:
        t0 = t0.tz_convert(UTC).tz_localize(None)
    offsets = np.sort(rng.uniform(0.0, days * 86400.0, n)).astype("int64")  # whole seconds
    return pd.Series(t0.floor("s") + pd.to_timedelta(offsets, unit="s"), name="event_time")


def _clean_batch(n: int, rng: np.random.Generator, p: dict) -> pd.DataFrame:
    contract_idx = rng.choice(3, size=n, p=p["contract_p"])
    # Longer contracts go with longer tenure, as in real subscriber bases.
    tenure_mean = np.array([14.0, 32.0, 50.0])[contract_idx]
    tenure = np.clip(np.round(rng.gamma(2.0, tenure_mean / 2.0)), 0, 120).astype("int64")
    monthly = np.clip(rng.normal(65.0, 25.0, n), 18.0, 150.0) * p["charge_scale"]
    monthly = np.round(np.clip(monthly, 0.0, 500.0), 2)
    total = np.round(np.clip(tenure * monthly * rng.uniform(0.9, 1.1, n), 0.0, 60000.0), 2)
    total[rng.random(n) < 0.05] = np.nan
    calls = np.clip(rng.poisson(1.4 * p["calls_scale"], n), 0, 50).astype("int64")
    usage = np.round(np.clip(rng.lognormal(3.0, 0.8, n), 0.0, 2000.0), 1)
    payment_idx = rng.choice(4, size=n, p=(0.35, 0.25, 0.28, 0.12))
    region_idx = rng.integers(0, 4, n)

    logit = (
        p["intercept"]
        + 1.3 * (contract_idx == 0)
        - 1.0 * (contract_idx == 2)
        - 0.035 * tenure
        + 0.45 * calls
        + 0.018 * (monthly - 65.0)
        + p["echeck"] * (payment_idx == 2)
        + p["usage"] * (np.log1p(usage) - 3.0)
        + rng.normal(0.0, 0.5, n)
    )
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")

    payment = np.asarray(PAYMENT_METHODS, dtype=object)[payment_idx]
    payment[rng.random(n) < 0.03] = None
    region = np.asarray(REGIONS, dtype=object)[region_idx]
    region[rng.random(n) < 0.02] = None
    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls": calls,
            "data_usage_gb": usage,
            "contract": pd.array(np.asarray(CONTRACTS, dtype=object)[contract_idx], dtype=str),
            "payment_method": pd.array(payment, dtype=str),
            "region": pd.array(region, dtype=str),
            "churned": churned,
        }
    )


def _corrupt(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Break the batch in several independent ways, each enough to fail a quality gate."""
    n = len(df)
    df = df.drop(columns=["churned"])  # no label at all

    def some(frac: float) -> np.ndarray:
        return rng.random(n) < frac

    # Numeric columns exported as text with placeholders, negatives and out-of-range values.
    tenure = df["tenure_months"].astype(str).to_numpy(dtype=object)
    tenure[some(0.10)] = "n/a"
    tenure[some(0.10)] = "-3"
    df["tenure_months"] = pd.array(tenure, dtype=str)
    charges = df["monthly_charges"].astype(str).to_numpy(dtype=object)
    charges[some(0.15)] = "unknown"
    df["monthly_charges"] = pd.array(charges, dtype=str)
    df.loc[some(0.05), "support_calls"] = 999
    # A category nobody configured, and a missing value in a non-nullable column.
    contract = df["contract"].to_numpy(dtype=object)
    contract[some(0.20)] = "weekly"
    contract[some(0.02)] = None
    df["contract"] = pd.array(contract, dtype=str)
    # Duplicate ids.
    ids = df["customer_id"].to_numpy(dtype=object)
    ids[1::10] = ids[0]
    df["customer_id"] = pd.array(ids, dtype=str)
    return df
