"""Model features derived from the dataset config alone, so a new dataset needs no code.

Everything here is row-wise (no statistics across rows): each raw file is featurized on its own
and the results are concatenated, and serving computes exactly what training computed.
"""

from __future__ import annotations

import pandas as pd

from retrain.config import DatasetConfig

HOUR_SUFFIX = "__hour"
DAY_OF_WEEK_SUFFIX = "__day_of_week"
MISSING_COUNT = "row__missing_count"


def categorical_feature_names(ds: DatasetConfig) -> list[str]:
    """Categorical features with a fixed category list.

    A string column without ``categories`` is left out: its codes could not be kept stable
    between files featurized independently.
    """
    return [
        c.name for c in ds.feature_columns if c.name in ds.categorical_features and c.categories
    ]


def column_feature_names(ds: DatasetConfig) -> list[str]:
    """Dataset columns used as model inputs (numeric and categorical), in config order."""
    categorical = set(categorical_feature_names(ds))
    return [
        c.name for c in ds.feature_columns if c.name in ds.numeric_features or c.name in categorical
    ]


def derived_feature_names(ds: DatasetConfig) -> list[str]:
    t = ds.time_column
    return [f"{t}{HOUR_SUFFIX}", f"{t}{DAY_OF_WEEK_SUFFIX}", MISSING_COUNT]


def feature_names(ds: DatasetConfig) -> list[str]:
    """The model inputs, in order: numeric and categorical columns in config order, then derived."""
    if clash := set(derived_feature_names(ds)) & set(ds.column_names):
        raise ValueError(f"derived feature name(s) clash with dataset columns: {sorted(clash)}")
    return column_feature_names(ds) + derived_feature_names(ds)


def build_features(df: pd.DataFrame, ds: DatasetConfig) -> pd.DataFrame:
    """Id, time and (if present) target columns plus the model features of ``feature_names``.

    Numeric features become float64 (unparseable values -> NaN); categorical features become a
    pandas ``category`` with exactly the configured categories (unseen values -> NaN), so the
    integer codes LightGBM sees are the same in every file.
    """
    out = pd.DataFrame(index=df.index)
    out[ds.id_column] = df[ds.id_column]
    times = _naive_utc(df[ds.time_column])
    out[ds.time_column] = times
    if ds.target in df.columns:
        out[ds.target] = df[ds.target]

    categorical = set(categorical_feature_names(ds))
    for col in ds.feature_columns:
        if col.name in ds.numeric_features:
            out[col.name] = pd.to_numeric(df[col.name], errors="coerce").astype("float64")
        elif col.name in categorical:
            values = df[col.name]
            as_text = values.astype(object).where(values.isna(), values.astype(str))
            out[col.name] = pd.Categorical(as_text, categories=list(col.categories))

    out[f"{ds.time_column}{HOUR_SUFFIX}"] = times.dt.hour.astype("float64")
    out[f"{ds.time_column}{DAY_OF_WEEK_SUFFIX}"] = times.dt.dayofweek.astype("float64")
    raw_features = [c.name for c in ds.feature_columns if c.name in df.columns]
    out[MISSING_COUNT] = df[raw_features].isna().sum(axis=1).astype("float64")
    return out


def _naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC, whatever the file had (strings, aware or naive datetimes)."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        values = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values
