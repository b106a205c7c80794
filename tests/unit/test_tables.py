"""read_table keeps what the user sent (or refuses clearly); coerce_types types what passed."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config
from retrain.tables import (
    UnreadableFile,
    coerce_types,
    iter_table,
    parse_timestamps,
    read_table,
)


def demo_frame(n: int = 50) -> pd.DataFrame:
    """Valid rows of the demo (telco churn) schema."""
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "customer_id": [f"{i:06d}" for i in range(n)],  # leading zeros must survive CSV
            "event_time": pd.date_range("2024-01-01", periods=n, freq="h").strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "tenure_months": rng.integers(0, 120, n),
            "monthly_charges": rng.uniform(0, 500, n).round(2),
            "total_charges": rng.uniform(0, 60000, n).round(2),
            "support_calls": rng.integers(0, 50, n),
            "data_usage_gb": rng.uniform(0, 2000, n).round(1),
            "contract": rng.choice(["month-to-month", "one-year", "two-year"], n),
            "payment_method": rng.choice(["card", "bank-transfer", "e-check", "mailed-check"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "churned": np.arange(n) % 3 == 0,
        }
    ).astype({"churned": "int64"})


def to_csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def to_parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("batch.csv", to_csv),
        ("nested/BATCH.CSV", to_csv),
        ("batch.csv.gz", lambda df: gzip.compress(to_csv(df))),
        ("batch.parquet", to_parquet),
    ],
)
def test_read_table_by_extension(config: Config, name, encode) -> None:
    df = demo_frame()
    got = read_table(encode(df), name, config.dataset)
    assert list(got.columns) == list(df.columns)
    assert len(got) == len(df)
    assert got["customer_id"].tolist() == df["customer_id"].tolist()
    assert got["monthly_charges"].tolist() == pytest.approx(df["monthly_charges"].tolist())


def test_csv_ids_lose_leading_zeros_without_the_dataset_config() -> None:
    # Why read_table takes the dataset: without it pandas infers ids as integers.
    got = read_table(to_csv(demo_frame()), "a.csv")
    assert got["customer_id"].iloc[1] == 1


def test_csv_keeps_text_in_numeric_columns_and_only_empty_cells_are_missing(config) -> None:
    data = b"a,b,c\n1.5,n/a,x\n,NULL,\n"
    got = read_table(data, "a.csv", config.dataset)
    assert got["a"].isna().tolist() == [False, True]
    assert got["b"].tolist() == ["n/a", "NULL"]  # pandas' default NA strings would hide these
    assert got["c"].isna().tolist() == [False, True]


def test_header_only_csv_reads_as_zero_rows() -> None:
    got = read_table(b"customer_id,churned\n", "a.csv")
    assert got.empty
    assert list(got.columns) == ["customer_id", "churned"]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("data.xlsx", b"PK\x03\x04", "unsupported file type"),
        ("data", b"a,b\n1,2\n", "unsupported file type"),
        ("empty.csv", b"", "empty"),
        ("empty.parquet", b"", "empty"),
        ("blank.csv", b"\n\n", "no header"),
        ("latin1.csv", "name\nJos\xe9\n".encode("latin-1"), "not UTF-8"),
        ("garbage.csv", bytes(range(256)) * 4, "batch"),
        ("garbage.parquet", b"definitely not parquet" * 10, "cannot parse as parquet"),
        ("csv-inside.parquet", b"a,b\n1,2\n", "cannot parse as parquet"),
        ("truncated.csv.gz", gzip.compress(b"a,b\n1,2\n" * 100)[:30], "cannot parse as csv"),
        ("not-gzip.csv.gz", b"a,b\n1,2\n", "cannot parse as csv"),
    ],
)
def test_unreadable_files_raise_a_clear_error_naming_the_file(name, data, reason) -> None:
    with pytest.raises(UnreadableFile) as err:
        read_table(data, name)
    assert str(err.value).startswith(f"{name}: ")
    assert err.value.name == name
    if reason != "batch":
        assert reason in str(err.value)
    assert isinstance(err.value, ValueError)


def test_coerce_types_returns_exactly_the_configured_columns_typed(config: Config) -> None:
    ds = config.dataset
    df = read_table(to_csv(demo_frame()), "a.csv", ds)
    df["extra"] = 1
    df = df[list(reversed(df.columns))]
    df.loc[0, "total_charges"] = np.nan
    df.loc[1, "region"] = np.nan
    typed = coerce_types(df, ds)
    assert list(typed.columns) == list(ds.column_names)
    dtypes = typed.dtypes.astype(str).to_dict()
    for name in ("tenure_months", "monthly_charges", "total_charges", "support_calls"):
        assert dtypes[name] == "float64", name
    assert dtypes["churned"] == "int64"
    assert dtypes["event_time"] == "datetime64[ns]"
    assert pd.api.types.is_string_dtype(typed["contract"])
    assert pd.isna(typed.loc[0, "total_charges"])
    assert pd.isna(typed.loc[1, "region"])
    assert typed.loc[1, "customer_id"] == "000001"
    assert typed.loc[0, "event_time"] == pd.Timestamp("2024-01-01 00:00:00")


def test_coerce_types_agrees_for_csv_and_parquet(config: Config) -> None:
    ds = config.dataset
    df = demo_frame()
    from_csv = coerce_types(read_table(to_csv(df), "a.csv", ds), ds)
    from_parquet = coerce_types(read_table(to_parquet(df), "a.parquet", ds), ds)
    pd.testing.assert_frame_equal(from_csv, from_parquet)


def test_coerce_types_converts_times_to_naive_utc(config: Config) -> None:
    ds = config.dataset
    df = demo_frame(3)
    df["event_time"] = ["2024-03-01T12:00:00+02:00", "2024-03-01 10:00", "2024-03-01T10:00:00Z"]
    typed = coerce_types(df, ds)
    assert typed["event_time"].tolist() == [pd.Timestamp("2024-03-01 10:00")] * 3
    aware = demo_frame(2)
    aware["event_time"] = pd.date_range("2024-03-01 12:00", periods=2, freq="h", tz="Etc/GMT-2")
    assert coerce_types(aware, ds)["event_time"].iloc[0] == pd.Timestamp("2024-03-01 10:00")


def test_coerce_types_stringifies_non_text_categories(config: Config) -> None:
    df = demo_frame(2)
    df["region"] = [1, None]
    typed = coerce_types(df, config.dataset)
    assert typed["region"].iloc[0] == "1"
    assert pd.isna(typed["region"].iloc[1])


def test_coerce_types_names_the_column_it_cannot_convert(config: Config) -> None:
    df = demo_frame(2)
    df["event_time"] = ["2024-01-01", "yesterday"]
    with pytest.raises(ValueError, match=r"event_time.*yesterday"):
        coerce_types(df, config.dataset)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['region'\]"):
        coerce_types(demo_frame(2).drop(columns=["region"]), config.dataset)


def test_parse_timestamps_flags_what_coerce_types_could_not_use() -> None:
    values = pd.Series(
        ["2024-01-05", "Jan 5 2024", "now", "yesterday", 1_700_000_000, "9999-01-01", None]
    )
    parsed, bad = parse_timestamps(values)
    assert bad.tolist() == [False, False, True, True, True, True, False]
    assert parsed.iloc[1] == pd.Timestamp("2024-01-05")
    assert str(parsed.dtype) == "datetime64[ns]"


def test_text_columns_parse_as_the_same_values_given_as_objects() -> None:
    """A CSV column (pandas' text dtype) takes the vectorized path; the same strings among
    objects go value by value: the two must agree."""
    texts = ["2024-01-05T10:00:00", " 2024-01-05 10:00:00+02:00", "Jan 5 2024", "NOW", "x", None]
    as_objects = pd.Series(texts, dtype=object)
    as_text = pd.Series(texts, dtype="str")
    for values in (as_text, as_objects):
        parsed, bad = parse_timestamps(values)
        assert bad.tolist() == [False, False, False, True, True, False]
        assert parsed.iloc[1] == pd.Timestamp("2024-01-05 08:00:00")
        assert pd.isna(parsed.iloc[5]) and str(parsed.dtype) == "datetime64[ns]"
    pd.testing.assert_series_equal(parse_timestamps(as_text)[0], parse_timestamps(as_objects)[0])


# -- iter_table: the same frame, chunk by chunk -------------------------------------------------


def with_gaps(n: int = 50) -> pd.DataFrame:
    """demo_frame with an empty field in a numeric and in a text column, away from chunk 1."""
    df = demo_frame(n).astype({"total_charges": "float64", "region": "object"})
    df.loc[[3, 41], "total_charges"] = np.nan
    df.loc[[17, 44], "region"] = None
    return df


ENCODINGS = [
    ("batch.csv", to_csv),
    ("batch.csv.gz", lambda df: gzip.compress(to_csv(df))),
    ("batch.parquet", to_parquet),
]


@pytest.mark.parametrize(("name", "encode"), ENCODINGS)
@pytest.mark.parametrize("chunk_rows", [1, 7, 50, 1000])
def test_iter_table_chunks_concatenate_to_read_table(config, name, encode, chunk_rows) -> None:
    data = encode(with_gaps())
    whole = read_table(data, name, config.dataset)
    chunks = list(iter_table(data, name, config.dataset, chunk_rows))
    assert [len(c) for c in chunks[:-1]] == [chunk_rows] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= chunk_rows
    pd.testing.assert_frame_equal(pd.concat(chunks), whole)
    assert whole["customer_id"].iloc[1] == "000001"  # leading zeros kept, chunked or not
    assert whole["total_charges"].isna().sum() == 2
    assert whole["region"].isna().sum() == 2


@pytest.mark.parametrize(
    ("name", "data"),
    [("a.csv", b"customer_id,churned\n"), ("a.parquet", to_parquet(demo_frame(3).head(0)))],
)
def test_iter_table_gives_one_empty_chunk_for_a_file_without_rows(config, name, data) -> None:
    (chunk,) = iter_table(data, name, config.dataset, 10)
    pd.testing.assert_frame_equal(chunk, read_table(data, name, config.dataset))


def _later_chunk_error(data: bytes, name: str, chunk_rows: int) -> tuple[int, UnreadableFile]:
    seen = 0
    with pytest.raises(UnreadableFile) as err:
        for chunk in iter_table(data, name, None, chunk_rows):
            seen += len(chunk)
    return seen, err.value


def test_iter_table_raises_unreadable_file_in_a_later_chunk() -> None:
    rows = [b"a,b"] + [b"%d,%d" % (i, i) for i in range(5000)]
    rows[4500] = b"1,2,3"  # one field too many, far from the first chunk
    data = b"\n".join(rows) + b"\n"
    seen, error = _later_chunk_error(data, "late.csv", 1000)
    assert seen == 4000  # the chunks before it came through
    with pytest.raises(UnreadableFile) as whole:
        read_table(data, "late.csv")
    assert str(error) == str(whole.value)
    assert "cannot parse as csv: ParserError" in str(error)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("latin1.csv", b"a\n" + b"x\n" * 300_000 + "Jos\xe9\n".encode("latin-1"), "not UTF-8"),
        ("cut.csv.gz", gzip.compress(b"a,b\n" + b"1,2\n" * 200_000)[:-100], "cannot parse"),
    ],
)
def test_iter_table_maps_late_errors_as_read_table_does(name, data, reason) -> None:
    seen, error = _later_chunk_error(data, name, 1000)
    assert seen > 0  # found by the iteration, past the first chunks
    assert str(error).startswith(f"{name}: ")
    assert reason in str(error)
    with pytest.raises(UnreadableFile) as whole:
        read_table(data, name)
    assert reason in str(whole.value)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("data.xlsx", b"PK\x03\x04", "unsupported file type"),
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"\n\n", "no header"),
        ("garbage.parquet", b"definitely not parquet" * 10, "cannot parse as parquet"),
    ],
)
def test_iter_table_refuses_unreadable_files_when_called(name, data, reason) -> None:
    with pytest.raises(UnreadableFile, match=reason):
        iter_table(data, name, None, 10)  # before any iteration


def test_iter_table_needs_a_positive_chunk_size() -> None:
    with pytest.raises(ValueError, match="chunk_rows"):
        iter_table(b"a\n1\n", "a.csv", None, 0)
