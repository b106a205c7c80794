from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import Column, DatasetConfig, load_config
from retrain.datagen import generate
from retrain.features import (
    MISSING_COUNT,
    build_features,
    categorical_feature_names,
    feature_names,
)

DS = load_config(Path(__file__).parents[2] / "retrain.toml", env={}).dataset


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return generate(2000, seed=21, start=datetime(2025, 1, 6))


def test_feature_names():
    assert categorical_feature_names(DS) == ["contract", "payment_method", "region"]
    assert feature_names(DS) == [
        "tenure_months",
        "monthly_charges",
        "total_charges",
        "support_calls",
        "data_usage_gb",
        "contract",
        "payment_method",
        "region",
        "event_time__hour",
        "event_time__day_of_week",
        MISSING_COUNT,
    ]


def test_output_columns_and_dtypes(raw):
    out = build_features(raw, DS)
    assert list(out.columns) == ["customer_id", "event_time", "churned", *feature_names(DS)]
    assert out.index.equals(raw.index)
    for name in DS.numeric_features:
        assert out[name].dtype == "float64"
    for name in categorical_feature_names(DS):
        assert isinstance(out[name].dtype, pd.CategoricalDtype)
        assert list(out[name].cat.categories) == list(DS.column(name).categories)
    pd.testing.assert_series_equal(out["churned"], raw["churned"])
    # Known values pass through unchanged, missing stays missing.
    assert out["payment_method"].isna().sum() == raw["payment_method"].isna().sum() > 0
    assert (out["contract"].astype(str) == raw["contract"]).all()


def test_category_codes_fixed_and_unseen_values_become_nan():
    rows = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "event_time": pd.to_datetime(["2025-01-01"] * 3),
            "tenure_months": [1, 2, 3],
            "monthly_charges": [10.0, 20.0, 30.0],
            "total_charges": [10.0, 40.0, 90.0],
            "support_calls": [0, 1, 2],
            "data_usage_gb": [1.0, 2.0, 3.0],
            "contract": ["two-year", "weekly", None],
            "payment_method": ["e-check", "e-check", "e-check"],
            "region": ["west", "west", "west"],
        }
    )
    out = build_features(rows, DS)  # no target column: serving-time input
    assert "churned" not in out.columns
    assert out["contract"].cat.codes.tolist() == [2, -1, -1]
    assert out["payment_method"].cat.codes.tolist() == [2, 2, 2]
    assert out["region"].cat.codes.tolist() == [3, 3, 3]
    # Unseen categories are not "missing" in the raw row; a None is.
    assert out[MISSING_COUNT].tolist() == [0.0, 0.0, 1.0]


def test_row_wise_so_files_can_be_featurized_separately(raw):
    whole = build_features(raw, DS)
    parts = [build_features(raw.iloc[i : i + 700], DS) for i in range(0, len(raw), 700)]
    pd.testing.assert_frame_equal(pd.concat(parts), whole)


def test_derived_features_and_time_parsing():
    base = generate(3, seed=1, start=datetime(2025, 1, 1))
    times = ["2025-01-06T23:30:00", "2025-01-07T00:15:00+02:00", "2025-01-11T10:00:00Z"]
    df = base.assign(event_time=times, total_charges=[np.nan, 1.0, np.nan])
    df.loc[2, "region"] = None
    out = build_features(df, DS)
    assert out["event_time"].dt.tz is None
    assert out["event_time"].tolist() == [
        pd.Timestamp("2025-01-06 23:30"),
        pd.Timestamp("2025-01-06 22:15"),  # +02:00 converted to UTC
        pd.Timestamp("2025-01-11 10:00"),
    ]
    assert out["event_time__hour"].tolist() == [23.0, 22.0, 10.0]
    assert out["event_time__day_of_week"].tolist() == [0.0, 0.0, 5.0]  # Monday, Monday, Saturday
    assert out[MISSING_COUNT].tolist() == [1.0, 0.0, 2.0]


def test_numeric_text_is_coerced_to_nan():
    df = generate(4, seed=2, start=datetime(2025, 1, 1))
    df["tenure_months"] = ["5", "n/a", "7", "unknown"]
    out = build_features(df, DS)
    assert out["tenure_months"].dtype == "float64"
    assert out["tenure_months"].isna().tolist() == [False, True, False, True]


def test_generic_dataset_from_config_alone():
    ds = DatasetConfig(
        name="tiny",
        id_column="id",
        time_column="ts",
        target="y",
        columns=(
            Column("id", "string"),
            Column("ts", "datetime"),
            Column("x", "int"),
            Column("level", "category", categories=("1", "2")),
            Column("comment", "string"),  # free text: no fixed categories, not a feature
            Column("y", "int"),
        ),
    )
    assert feature_names(ds) == ["x", "level", "ts__hour", "ts__day_of_week", MISSING_COUNT]
    df = pd.DataFrame(
        {
            "id": ["a", "b"],
            "ts": pd.to_datetime(["2025-01-01 05:00", "2025-01-02 06:00"]),
            "x": [1, 2],
            "level": [2, 3],  # ints in the file, string categories in the config
            "comment": ["hi", None],
            "y": [0, 1],
        }
    )
    out = build_features(df, ds)
    assert "comment" not in out.columns
    assert out["level"].cat.codes.tolist() == [1, -1]
    assert out[MISSING_COUNT].tolist() == [0.0, 1.0]


def test_derived_name_clash_is_an_error():
    ds = DatasetConfig(
        name="clash",
        id_column="id",
        time_column="t",
        target="y",
        columns=(
            Column("id", "string"),
            Column("t", "datetime"),
            Column("t__hour", "int"),
            Column("y", "int"),
        ),
    )
    with pytest.raises(ValueError, match="clash"):
        feature_names(ds)
