import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import load_config
from retrain.datagen import generate, write_batch

DS = load_config(Path(__file__).parents[2] / "retrain.toml", env={}).dataset
START = datetime(2025, 3, 1, 12, 0)


@pytest.fixture(scope="module")
def normal() -> pd.DataFrame:
    return generate(5000, seed=11, start=START)


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    return generate(5000, seed=12, scenario="drifted", start=START)


@pytest.fixture(scope="module")
def corrupt() -> pd.DataFrame:
    return generate(2000, seed=13, scenario="corrupt", start=START)


def test_deterministic_by_seed(normal):
    pd.testing.assert_frame_equal(generate(5000, seed=11, start=START), normal)
    other = generate(5000, seed=99, start=START)
    assert not other["monthly_charges"].equals(normal["monthly_charges"])


@pytest.mark.parametrize("scenario", ["normal", "drifted"])
def test_schema_matches_config(scenario):
    df = generate(3000, seed=5, scenario=scenario, start=START)
    assert tuple(df.columns) == DS.column_names
    for col in DS.columns:
        s = df[col.name]
        if col.dtype == "int":
            assert s.dtype == "int64", col.name
        elif col.dtype == "float":
            assert s.dtype == "float64", col.name
        elif col.dtype == "datetime":
            assert pd.api.types.is_datetime64_dtype(s) and s.dt.tz is None
        else:
            assert pd.api.types.is_string_dtype(s), col.name
        if not col.nullable:
            assert s.notna().all(), col.name
        if col.min is not None:
            assert s.min() >= col.min, col.name
        if col.max is not None:
            assert s.max() <= col.max, col.name
        if col.categories:
            assert set(s.dropna()) <= set(col.categories), col.name
            assert set(s.dropna()) == set(col.categories), f"{col.name}: all categories occur"
        limit = col.max_missing_fraction or 0.2
        assert s.isna().mean() < limit, col.name


def test_missing_values_where_expected(normal):
    missing = normal.isna().mean()
    assert 0.03 < missing["total_charges"] < 0.08
    assert 0.0 < missing["payment_method"] < 0.05
    assert 0.0 < missing["region"] < 0.05
    assert missing[["tenure_months", "monthly_charges", "contract", "churned"]].sum() == 0


def test_ids_unique_and_times_in_window(normal):
    assert normal["customer_id"].is_unique
    t = normal["event_time"]
    assert t.is_monotonic_increasing
    assert t.min() >= pd.Timestamp(START)
    assert t.max() < pd.Timestamp(START + timedelta(days=7))
    assert t.max() - t.min() > pd.Timedelta(days=6)  # spread over the window


def test_aware_start_becomes_naive_utc():
    aware = datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    df = generate(50, seed=1, start=aware, days=1.0)
    assert df["event_time"].dt.tz is None
    assert df["event_time"].min() >= pd.Timestamp("2025-03-01 12:00")
    assert df["event_time"].max() < pd.Timestamp("2025-03-02 12:00")
    naive = generate(50, seed=1, start=datetime(2025, 3, 1, 12, 0, tzinfo=UTC), days=1.0)
    pd.testing.assert_series_equal(df["event_time"], naive["event_time"])


def test_class_imbalance(normal, drifted):
    assert 0.12 <= normal["churned"].mean() <= 0.20
    assert 0.12 <= drifted["churned"].mean() <= 0.25


def test_label_depends_on_features(normal):
    by_contract = normal.groupby("contract")["churned"].mean()
    assert by_contract["month-to-month"] > 2 * by_contract["two-year"]
    many_calls = normal["support_calls"] >= 3
    assert normal.loc[many_calls, "churned"].mean() > normal.loc[~many_calls, "churned"].mean()


def test_drifted_differs(normal, drifted):
    assert drifted["monthly_charges"].mean() > 1.3 * normal["monthly_charges"].mean()
    m2m = "month-to-month"
    assert (drifted["contract"] == m2m).mean() > (normal["contract"] == m2m).mean() + 0.2
    assert drifted["support_calls"].mean() > 1.5 * normal["support_calls"].mean()


def test_corrupt_is_invalid_in_several_ways(corrupt):
    assert DS.target not in corrupt.columns
    tenure = corrupt["tenure_months"]
    assert (tenure == "n/a").any()
    as_num = pd.to_numeric(tenure, errors="coerce")
    assert as_num.isna().any() and (as_num < 0).any()
    assert (corrupt["monthly_charges"] == "unknown").any()
    assert not set(corrupt["contract"].dropna()) <= set(DS.column("contract").categories)
    assert corrupt["contract"].isna().any()  # contract is non-nullable
    assert corrupt["support_calls"].max() > DS.column("support_calls").max
    assert not corrupt["customer_id"].is_unique


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        generate(0, seed=1, start=START)
    with pytest.raises(ValueError):
        generate(10, seed=1, start=START, scenario="weird")  # type: ignore[arg-type]


def test_write_batch_csv_round_trip(normal):
    data = write_batch(normal.head(200), "csv")
    assert data.splitlines()[0].decode() == ",".join(DS.column_names)
    back = pd.read_csv(io.BytesIO(data))
    assert back["event_time"].iloc[0] == normal["event_time"].iloc[0].strftime("%Y-%m-%dT%H:%M:%S")
    pd.testing.assert_series_equal(
        pd.to_datetime(back["event_time"]), normal["event_time"].head(200), check_dtype=False
    )
    np.testing.assert_allclose(back["monthly_charges"], normal["monthly_charges"].head(200))
    assert back["total_charges"].isna().sum() == normal["total_charges"].head(200).isna().sum()


@pytest.mark.parametrize("scenario", ["normal", "corrupt"])
def test_write_batch_parquet_round_trip(scenario):
    df = generate(300, seed=2, scenario=scenario, start=START)
    data = write_batch(df, "parquet")
    assert data[:4] == b"PAR1"
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(data)), df)


def test_write_batch_rejects_unknown_format(normal):
    with pytest.raises(ValueError, match="unsupported"):
        write_batch(normal, "xlsx")  # type: ignore[arg-type]
