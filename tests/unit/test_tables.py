"""read_table keeps what the user sent (or refuses clearly); coerce_types types what passed.

Every reading test runs on both kinds of source (the fixture ``source``): the file's bytes, and
a local copy of them on disk, which must read the same."""

from __future__ import annotations

import gzip
import io
import itertools
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config
from retrain.rawcheck import LOOK_BYTES, Source
from retrain.tables import (
    UnreadableFile,
    coerce_types,
    iter_table,
    parse_timestamps,
    read_table,
)

MakeSource = Callable[[bytes], Source]


def local_copy(directory: Path, data: bytes) -> Path:
    """``data`` in a file named unlike any landed file: only the name passed decides the
    format, as with the validate step's temporary copies."""
    path = directory / f"landed-{next(_copies):04d}.tmp"
    path.write_bytes(data)
    return path


_copies = itertools.count()


@pytest.fixture(params=["bytes", "path"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> MakeSource:
    """The file as a caller hands it over: its bytes, or the path of a local copy."""
    if request.param == "bytes":
        return lambda data: data
    return lambda data: local_copy(tmp_path, data)


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
def test_read_table_by_extension(config: Config, source: MakeSource, name, encode) -> None:
    df = demo_frame()
    got = read_table(source(encode(df)), name, config.dataset)
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


def test_header_only_csv_reads_as_zero_rows(source: MakeSource) -> None:
    got = read_table(source(b"customer_id,churned\n"), "a.csv")
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
def test_unreadable_files_raise_a_clear_error_naming_the_file(
    source: MakeSource, name, data, reason
) -> None:
    with pytest.raises(UnreadableFile) as err:
        read_table(source(data), name)
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
def test_iter_table_chunks_concatenate_to_read_table(
    config, source: MakeSource, name, encode, chunk_rows
) -> None:
    data = source(encode(with_gaps()))
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
def test_iter_table_gives_one_empty_chunk_for_a_file_without_rows(
    config, source: MakeSource, name, data
) -> None:
    (chunk,) = iter_table(source(data), name, config.dataset, 10)
    pd.testing.assert_frame_equal(chunk, read_table(data, name, config.dataset))


def _later_chunk_error(data: Source, name: str, chunk_rows: int) -> tuple[int, UnreadableFile]:
    seen = 0
    with pytest.raises(UnreadableFile) as err:
        for chunk in iter_table(data, name, None, chunk_rows):
            seen += len(chunk)
    return seen, err.value


def late_parse_error() -> bytes:
    rows = [b"a,b"] + [b"%d,%d" % (i, i) for i in range(5000)]
    rows[4500] = b"1,2,3"  # one field too many, far from the first chunk
    return b"\n".join(rows) + b"\n"


def test_iter_table_raises_unreadable_file_in_a_later_chunk(source: MakeSource) -> None:
    data = late_parse_error()
    seen, error = _later_chunk_error(source(data), "late.csv", 1000)
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
def test_iter_table_maps_late_errors_as_read_table_does(
    source: MakeSource, name, data, reason
) -> None:
    seen, error = _later_chunk_error(source(data), name, 1000)
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
def test_iter_table_refuses_unreadable_files_when_called(
    source: MakeSource, name, data, reason
) -> None:
    with pytest.raises(UnreadableFile, match=reason):
        iter_table(source(data), name, None, 10)  # before any iteration


def test_iter_table_needs_a_positive_chunk_size() -> None:
    with pytest.raises(ValueError, match="chunk_rows"):
        iter_table(b"a\n1\n", "a.csv", None, 0)


# -- a local path reads as its bytes do ---------------------------------------------------------


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for entry, content in entries:
            archive.writestr(entry, content)
    return buf.getvalue()


def _sheet() -> bytes:
    return b"<sheetData>" + b"<row><c><v>1</v></c></row>" * (3 * LOOK_BYTES // 26) + b"</sheetData>"


def _xlsx(content_types_first: bool) -> bytes:
    """An XLSX workbook's parts in Excel's order ([Content_Types].xml first) or in openpyxl's
    (last, after a sheet bigger than LOOK_BYTES: only the central directory names it near an
    end)."""
    parts = [
        ("docProps/app.xml", b"<Properties/>"),
        ("xl/worksheets/sheet1.xml", _sheet()),
        ("xl/workbook.xml", b"<workbook/>"),
    ]
    types = ("[Content_Types].xml", b"<Types/>")
    return _zip([types, *parts] if content_types_first else [*parts, types])


def _late_latin1() -> bytes:
    return b"a\n" + b"x\n" * 300_000 + "Jos\xe9\n".encode("latin-1")


SAME_CASES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "csv": ("f.csv", lambda: to_csv(with_gaps())),
    "csv.gz": ("f.csv.gz", lambda: gzip.compress(to_csv(with_gaps()))),
    "csv.gz members": (
        "f.csv.gz",
        lambda: gzip.compress(b"a,b\n1,2\n") + b"\0" * 7 + gzip.compress(b"3,4\n" * 1000),
    ),
    "parquet": ("f.parquet", lambda: to_parquet(with_gaps())),
    "empty csv": ("f.csv", lambda: b""),
    "empty parquet": ("f.parquet", lambda: b""),
    "blank": ("f.csv", lambda: b"\n\n"),
    "parquet as csv": ("f.csv", lambda: to_parquet(demo_frame())),
    "zip as csv": ("f.csv", lambda: _zip([("data.csv", to_csv(demo_frame(5000)))])),
    "xlsx as csv": ("f.csv", lambda: _xlsx(content_types_first=True)),
    "openpyxl xlsx as csv": ("f.csv", lambda: _xlsx(content_types_first=False)),
    "json lines": ("f.csv", lambda: b'{"a": 1}\n{"a": 2}\n'),
    "long cell": ("f.csv", lambda: b"a,b\n1," + b"x" * 100_000 + b"\n2,3\n"),
    "long cell gz": ("f.csv.gz", lambda: gzip.compress(b"a,b\n1," + b"x" * 100_000 + b"\n")),
    "unbalanced quote": ("f.csv", lambda: b'a,b\n1,"open\n' + b"2,3\n" * 30_000),
    "stray quote": ("f.csv", lambda: b'a,b\n12" screen,2\n' + b"3,4\n" * 30_000),
    "wide header": ("f.csv", lambda: b",".join(b"c%d" % i for i in range(2000)) + b"\n"),
    "gzip bomb": ("f.csv.gz", lambda: gzip.compress(b"a,b\n" + b"1,2\n" * 5_000_000)),
    "bad utf-8": ("f.csv", lambda: "name\nJos\xe9\n".encode("latin-1")),
    "late bad utf-8": ("f.csv", _late_latin1),
    "late parse error": ("f.csv", late_parse_error),
    "truncated gz": ("f.csv.gz", lambda: gzip.compress(b"a,b\n1,2\n" * 200_000)[:-100]),
    "not gzip": ("f.csv.gz", lambda: b"a,b\n1,2\n"),
    "garbage parquet": ("f.parquet", lambda: b"definitely not parquet" * 10),
}


def _outcome(data: Source, name: str, chunk_rows: int) -> tuple[object, object]:
    """read_table's frame and iter_table's chunks, or the reason each refused the file."""
    try:
        whole: object = read_table(data, name)
    except UnreadableFile as exc:
        whole = str(exc)
    try:
        chunks: object = list(iter_table(data, name, None, chunk_rows))
    except UnreadableFile as exc:
        chunks = str(exc)
    return whole, chunks


@pytest.mark.parametrize("case", list(SAME_CASES))
def test_a_local_path_reads_exactly_as_its_bytes(tmp_path: Path, case: str) -> None:
    name, build = SAME_CASES[case]
    data = build()
    from_bytes = _outcome(data, name, 1000)
    from_path = _outcome(local_copy(tmp_path, data), name, 1000)
    for got, expected in zip(from_path, from_bytes, strict=True):
        if isinstance(expected, str):
            assert got == expected
        elif isinstance(expected, pd.DataFrame):
            pd.testing.assert_frame_equal(got, expected)
        else:
            assert isinstance(got, list) and len(got) == len(expected)
            for g, e in zip(got, expected, strict=True):
                pd.testing.assert_frame_equal(g, e)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("zip as csv", "looks like a ZIP archive, not CSV"),
        ("xlsx as csv", "looks like an XLSX (Excel) workbook, not CSV"),
        ("openpyxl xlsx as csv", "looks like an XLSX (Excel) workbook, not CSV"),
        ("json lines", "looks like JSON"),
        ("stray quote", None),  # the scan's guess, cleared by pandas' exact re-check
        ("long cell gz", "row 1, column 2 ('b'): a cell of 100,000 bytes"),
        ("unbalanced quote", "row 1, column 2 ('b'): a cell of"),
        ("wide header", "2,000 columns in the header"),
        ("gzip bomb", "refused as a gzip bomb"),
        ("csv.gz members", None),
    ],
)
def test_what_reading_finds_before_parsing(source: MakeSource, case: str, reason) -> None:
    """The cases above agree on both sources; these say what they agree on."""
    name, build = SAME_CASES[case]
    if reason is None:
        assert len(read_table(source(build()), name)) > 1000
        return
    with pytest.raises(UnreadableFile) as err:
        read_table(source(build()), name)
    assert reason in str(err.value)


def test_iter_table_reads_a_path_in_memory_bounded_by_the_chunk(tmp_path, monkeypatch) -> None:
    """A path is streamed by the scan and by pandas, never read whole: a ~45 MB CSV peaks at
    a few MB of Python allocations (reading it whole would be 45 MB by itself)."""
    import tracemalloc

    from retrain import rawcheck

    monkeypatch.setattr(rawcheck, "SCAN_BYTES", 256 << 10)
    path = tmp_path / "big.tmp"
    rows = 3_000_000
    path.write_bytes(b"id,x,n\n" + b"123456,7.25,42\n" * rows)
    seen = 0
    tracemalloc.start()
    try:
        for chunk in iter_table(path, "big.csv", None, 50_000):
            seen += len(chunk)
            del chunk
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == rows
    assert peak < 12 << 20, f"peak {peak / 2**20:.1f} MiB"
