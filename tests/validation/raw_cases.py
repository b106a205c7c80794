"""Landed files for the raw gate's tests: a valid frame of the demo schema and named defects,
with the reason each one's summary must give."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable

import numpy as np
import pandas as pd

N = 250  # rows per file


def frame(n: int = N) -> pd.DataFrame:
    """Valid rows of the demo schema; ids are text with leading zeros."""
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "customer_id": [f"{i:07d}" for i in range(n)],
            "event_time": pd.date_range("2024-01-01", periods=n, freq="min").strftime(
                "%Y-%m-%dT%H:%M:%S"
            ),
            "tenure_months": rng.integers(0, 121, n),
            "monthly_charges": rng.uniform(0, 500, n).round(2),
            "total_charges": rng.uniform(0, 60000, n).round(2),
            "support_calls": rng.integers(0, 51, n),
            "data_usage_gb": rng.uniform(0, 2000, n).round(1),
            "contract": rng.choice(["month-to-month", "one-year", "two-year"], n),
            "payment_method": rng.choice(["card", "bank-transfer", "e-check", "mailed-check"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "churned": (np.arange(n) % 4 == 0).astype("int64"),
        }
    )


def put(df: pd.DataFrame, rows, column: str, value) -> pd.DataFrame:
    df[column] = df[column].astype(object)
    df.loc[list(rows), column] = value
    return df


def to_csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def to_parquet(df: pd.DataFrame) -> bytes:
    """As a user's tool would: a column mixing text and numbers is written as text."""
    df = df.infer_objects()
    for name in df.select_dtypes(include="object").columns:
        df[name] = df[name].map(lambda v: v if pd.isna(v) else str(v))
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


FORMATS: dict[str, tuple[str, Callable[[pd.DataFrame], bytes]]] = {
    "csv": ("file.csv", to_csv),
    "csv.gz": ("file.csv.gz", lambda df: gzip.compress(to_csv(df))),
    "parquet": ("file.parquet", to_parquet),
}


def bad_last_chunk() -> pd.DataFrame:
    df = put(frame(), [230], "monthly_charges", "n/a")
    df = put(df, [240], "contract", "platinum")
    df = put(df, [245], "tenure_months", 500)
    return put(df, [249], "event_time", "yesterday")


def bad_every_chunk() -> pd.DataFrame:
    rows = [*range(5, 95, 10), *range(105, 195, 10), *range(205, 245, 10)]  # 9 + 9 + 4
    return put(frame(), rows, "monthly_charges", "n/a")


def several_defects() -> pd.DataFrame:
    df = frame().drop(columns=["region"]).assign(score=1.5)
    df = put(df, [120], "customer_id", "0000001")
    return put(df, range(150, 250), "total_charges", np.nan)


# name: (the file, a reason its summary must give, or None if it passes)
CASES: dict[str, tuple[Callable[[], pd.DataFrame], str | None]] = {
    "clean": (frame, None),
    "bad values only in the last chunk": (
        bad_last_chunk,
        "contract has unknown values ['platinum'] (1 row)",
    ),
    "bad values in every chunk": (
        bad_every_chunk,
        "monthly_charges values not numeric (22 rows, e.g. 'n/a')",
    ),
    "duplicate id across chunks": (
        lambda: put(frame(), [210], "customer_id", "0000010"),
        "customer_id has duplicate values (2 rows, e.g. '0000010')",
    ),
    "missing share over the limit in one chunk only": (
        lambda: put(frame(), range(100, 170), "total_charges", np.nan),  # chunk 2: 70%, file: 28%
        None,
    ),
    "missing share over the limit in total, not in every chunk": (
        lambda: put(frame(), range(0, 75), "payment_method", np.nan),  # chunks: 75%, 0%, 0%
        "payment_method has 75 missing values (30%, at most 20% allowed)",
    ),
    "missing target in a later chunk": (
        lambda: put(frame(), [150], "churned", np.nan),
        "churned has 1 missing value (0%)",
    ),
    "extra column": (lambda: frame().assign(notes="call back"), "unexpected column(s) ['notes']"),
    "missing column": (lambda: frame().drop(columns=["region"]), "column region missing"),
    "several defects": (several_defects, "total_charges has 100 missing values (40%"),
}
