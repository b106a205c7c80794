"""Reading landed files into DataFrames and typing them once they passed validation.

Two steps on purpose: :func:`read_table` keeps what the user sent (a CSV column with ``"n/a"`` in
it stays text) so the raw GX checkpoint can name the bad values, and :func:`coerce_types` turns a
file that passed into the typed frame the feature and training code relies on.

Both read a :data:`retrain.rawcheck.Source`: the file's bytes, or the path of a local copy, read
in bounded memory (a landed object of gigabytes is streamed to disk, never held whole), with the
same frames and the same :class:`UnreadableFile` reasons either way.
"""

from __future__ import annotations

import contextlib
import csv
import io
import zlib
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrain.clip import shown
from retrain.config import DatasetConfig, ValidationConfig
from retrain.rawcheck import (
    MAX_COLUMNS,
    LongCell,
    Source,
    looks_like,
    read_head,
    scan_csv,
    size_of,
)

if TYPE_CHECKING:
    import pyarrow.parquet as pq

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
# Only an empty field is missing: pandas' default NA strings ("n/a", "NULL", "-", ...) would hide
# text in a numeric column from validation by silently turning it into NaN.
CSV_NA_VALUES = ("",)
# Strings pandas parses relative to the clock; as event times in a data file they are garbage.
_RELATIVE_TIMES = frozenset({"now", "today"})
# Longer text is not a timestamp: it is refused as one without being tokenized (dateutil's
# tokenizer, behind pd.to_datetime(format="mixed"), is worse than linear in a value's length).
MAX_TIMESTAMP_CHARS = 64
PARQUET_BUFFER_BYTES = 1 << 20
# [validation] max_cell_bytes' default: what reading enforces unless told otherwise.
MAX_CELL_BYTES = ValidationConfig.max_cell_bytes


class UnreadableFile(ValueError):
    """A landed file is not a CSV/Parquet table we can parse; the caller quarantines it."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def file_format(name: str) -> str:
    """``"csv"`` or ``"parquet"`` from the file name, or :class:`UnreadableFile`."""
    lower = name.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    expected = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
    raise UnreadableFile(name, f"unsupported file type (expected {expected})")


def read_table(
    source: Source,
    name: str,
    ds: DatasetConfig | None = None,
    *,
    max_cell_bytes: int | None = MAX_CELL_BYTES,
) -> pd.DataFrame:
    """Parse a landed file (its bytes or a local path) by extension, keeping values as the user
    wrote them.

    With ``ds``, CSV columns configured as string/category are read as text, so ids like
    ``"00123"`` and categories like ``"1"`` survive. Every parse error becomes
    :class:`UnreadableFile` naming the file: a file we cannot read is a validation failure, and
    so is a CSV cell longer than ``max_cell_bytes`` (``None``: no limit) or a header wider than
    :data:`retrain.rawcheck.MAX_COLUMNS`, found before parsing.
    """
    fmt = _check_file(source, name, max_cell_bytes, column_limit(ds))
    with _unreadable(name, fmt):
        if fmt == "csv":
            frame = pd.read_csv(_csv_input(source), **_csv_options(name, ds))
        else:
            with _binary(source) as f:  # a path in pyarrow's messages would differ from bytes'
                frame = pd.read_parquet(f)
            _check_parquet_columns(name, len(frame.columns), column_limit(ds))
    if frame.columns.empty:
        raise UnreadableFile(name, "no columns found")
    return frame


def iter_table(
    source: Source,
    name: str,
    ds: DatasetConfig | None,
    chunk_rows: int,
    *,
    max_cell_bytes: int | None = MAX_CELL_BYTES,
) -> Iterator[pd.DataFrame]:
    """:func:`read_table`'s frame in chunks of at most ``chunk_rows`` rows, so a large file can
    be validated in memory bounded by the chunk size rather than by the file's row count.

    ``pd.concat`` of the chunks equals :func:`read_table`'s frame (the index runs on across
    chunks), except that CSV types are inferred per chunk: a numeric column with text in one
    chunk is text there and numbers elsewhere (:func:`validation.gates.raw_view` gives the
    same verdict either way). At least one chunk comes out (a file without rows gives an empty
    frame with its columns). Errors are :class:`UnreadableFile` as in :func:`read_table`: the
    file type, an empty file, a missing header, what a file that is not CSV looks like, a CSV
    cell over ``max_cell_bytes`` and a header over :data:`retrain.rawcheck.MAX_COLUMNS` columns
    are found by this call (before any parsing), anything else (a bad row, bad bytes, a
    truncated gzip stream, a Parquet cell over ``max_cell_bytes``) by the iteration that
    reaches it.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    fmt = _check_file(source, name, max_cell_bytes, column_limit(ds))
    with _unreadable(name, fmt):
        if fmt == "csv":
            options = _csv_options(name, ds)
            reader = pd.read_csv(_csv_input(source), chunksize=chunk_rows, **options)
            return _checked_chunks(name, fmt, _csv_chunks(reader))
        import pyarrow.parquet as pq

        # Reads the footer (not Parquet fails here), then a row group at a time.
        # pre_buffer off and a read buffer: column chunks stream from the file instead of being
        # read whole (a row group of 1M rows costs ~1/3 less)
        parquet = pq.ParquetFile(
            io.BytesIO(source) if isinstance(source, bytes) else source,
            pre_buffer=False,
            buffer_size=PARQUET_BUFFER_BYTES,
        )
        _check_parquet_columns(name, parquet.metadata.num_columns, column_limit(ds))
        chunks = _parquet_chunks(parquet, chunk_rows, name, max_cell_bytes)
        return _checked_chunks(name, fmt, chunks)


def column_limit(ds: DatasetConfig | None) -> int:
    """The widest header read: MAX_COLUMNS, or four times the dataset's own columns if that is
    more (a wide dataset, with `extra_columns = "ignore"` room to spare)."""
    return max(MAX_COLUMNS, 4 * len(ds.columns)) if ds is not None else MAX_COLUMNS


def _check_file(source: Source, name: str, max_cell_bytes: int | None, max_columns: int) -> str:
    fmt = file_format(name)
    if not size_of(source):
        raise UnreadableFile(name, "file is empty")
    if fmt == "csv" and not name.lower().endswith(".gz") and (what := looks_like(source)):
        raise UnreadableFile(name, f"looks like {what}, not CSV")
    if fmt == "csv" and max_cell_bytes is not None:
        _check_csv_shape(source, name, max_cell_bytes, max_columns)
    return fmt


def _check_csv_shape(source: Source, name: str, max_cell_bytes: int, max_columns: int) -> None:
    """Refuse, before parsing, a CSV with a cell over the limit, a header over MAX_COLUMNS or
    a gzip stream that decompresses too far. The reason never quotes the long value."""
    gzipped = name.lower().endswith(".gz")
    shape = scan_csv(source, gzipped, max_cell_bytes)
    if shape.too_big is not None:
        raise UnreadableFile(
            name,
            f"decompresses to more than {shape.too_big:,} bytes ({size_of(source):,} compressed): "
            "refused as a gzip bomb",
        )
    if shape.columns > max_columns:
        raise UnreadableFile(
            name, f"{shape.columns:,} columns in the header (at most {max_columns:,} are read)"
        )
    if shape.long_cell is not None:
        raise UnreadableFile(
            name, _long_cell_reason(source, gzipped, shape.long_cell, max_cell_bytes)
        )


def _long_cell_reason(source: Source, gzipped: bool, cell: LongCell, max_cell_bytes: int) -> str:
    where = "the header" if cell.row == 0 else f"row {cell.row:,}"
    column = f"column {cell.column + 1}"
    if cell.row > 0 and (names := _header_names(source, gzipped)) and cell.column < len(names):
        column += f" ({shown(names[cell.column])!r})"
    hint = (
        ": a quote opens it and is never closed where expected (an unbalanced quote?)"
        if cell.quoted
        else ""
    )
    return (
        f"{where}, {column}: a cell of {cell.length:,} bytes, over the limit of "
        f"{max_cell_bytes:,} ([validation] max_cell_bytes){hint}"
    )


def _header_names(source: Source, gzipped: bool, limit: int = 1 << 20) -> list[str]:
    """The header's names from the file's first ``limit`` bytes ([] if they do not parse)."""
    try:
        head = read_head(source, limit, gzipped)
        text = head.decode("utf-8-sig", errors="replace")
        return next(csv.reader(io.StringIO(text)), [])
    except (zlib.error, csv.Error):
        return []


def _check_parquet_columns(name: str, columns: int, max_columns: int) -> None:
    if columns > max_columns:
        raise UnreadableFile(name, f"{columns:,} columns (at most {max_columns:,} are read)")


def _checked_chunks(name: str, fmt: str, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    with _unreadable(name, fmt):
        for frame in chunks:
            if frame.columns.empty:
                raise UnreadableFile(name, "no columns found")
            yield frame


def _csv_input(source: Source) -> io.BytesIO | Path:
    """What pandas reads: it opens (and closes) a path itself, streaming it."""
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _binary(source: Source) -> contextlib.AbstractContextManager[Any]:
    """The file open for reading: an in-memory buffer, or the local file (closed on exit)."""
    return io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")


def _csv_chunks(reader: Any) -> Iterator[pd.DataFrame]:
    with reader:  # closes the parser also when the caller stops early
        yield from reader


def _parquet_chunks(
    parquet: pq.ParquetFile, chunk_rows: int, name: str, max_cell_bytes: int | None
) -> Iterator[pd.DataFrame]:
    import pyarrow as pa

    schema, offset = parquet.schema_arrow, 0
    for batch in parquet.iter_batches(batch_size=chunk_rows, use_threads=False):
        if max_cell_bytes is not None:
            _check_parquet_cells(batch, name, offset, max_cell_bytes)
        # Through a Table with the file's schema: its pandas metadata types columns as
        # pd.read_parquet does.
        frame = pa.Table.from_batches([batch], schema=schema).to_pandas()
        if isinstance(frame.index, pd.RangeIndex):
            frame.index = pd.RangeIndex(offset, offset + len(frame))
        offset += len(frame)
        yield frame
    if offset == 0:
        yield schema.empty_table().to_pandas()


def _check_parquet_cells(batch: Any, name: str, offset: int, max_cell_bytes: int) -> None:
    """A text or binary value over the limit, before the batch becomes a frame."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, field in enumerate(batch.schema):
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)) and not (
            pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)
        ):
            continue
        lengths = pc.binary_length(batch.column(i))
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > max_cell_bytes:
            row = offset + int(pc.index(lengths, longest).as_py()) + 1
            raise UnreadableFile(
                name,
                f"row {row:,}, column {shown(field.name)!r}: a value of {longest:,} bytes, over "
                f"the limit of {max_cell_bytes:,} ([validation] max_cell_bytes)",
            )


@contextlib.contextmanager
def _unreadable(name: str, fmt: str) -> Iterator[None]:
    """Every parse error as :class:`UnreadableFile`: pandas, pyarrow and gzip raise a zoo of
    types, and all of them mean "unreadable"."""
    try:
        yield
    except UnreadableFile:
        raise
    except Exception as exc:
        if fmt == "csv" and isinstance(exc, UnicodeDecodeError):
            reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        elif fmt == "csv" and isinstance(exc, pd.errors.EmptyDataError):
            reason = "no header row or data"
        else:
            reason = f"cannot parse as {fmt}: {type(exc).__name__}: {exc}"
        raise UnreadableFile(name, reason) from exc


def _csv_options(name: str, ds: DatasetConfig | None) -> dict[str, Any]:
    return {
        "compression": "gzip" if name.lower().endswith(".gz") else None,
        "encoding": "utf-8-sig",
        "keep_default_na": False,
        "na_values": list(CSV_NA_VALUES),
        "dtype": {column: "str" for column in _text_columns(ds)},
    }


def _text_columns(ds: DatasetConfig | None) -> tuple[str, ...]:
    if ds is None:
        return ()
    return tuple(c.name for c in ds.columns if c.dtype in ("string", "category"))


def parse_timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse values to tz-naive UTC ``datetime64[ns]``; also return the mask of unparseable ones.

    Shared by validation (which reports the bad values) and :func:`coerce_types`, so a file that
    passed validation always coerces. Strings are parsed one by one (mixed formats and UTC offsets
    allowed, naive means UTC), except text longer than MAX_TIMESTAMP_CHARS, unparseable without
    being read; datetimes pass; numbers and the like do not, because an epoch integer is
    ambiguous. Values outside the ``datetime64[ns]`` range count as unparseable.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = pd.to_datetime(values, utc=True)
        usable = values.notna()
    else:
        if _all_text(values):  # a CSV column: no value-by-value type checks (~3 s a 1M rows)
            texts = values.astype("str")
            usable = texts.notna() & ~texts.str.strip().str.lower().isin(_RELATIVE_TIMES)
            usable &= texts.str.len().fillna(0) <= MAX_TIMESTAMP_CHARS
            candidates = texts[usable]
        else:
            objects = values.astype(object)
            is_text = objects.map(lambda v: isinstance(v, str))
            text = objects.where(is_text, "").astype(str).str.strip().str.lower()
            is_time = objects.map(lambda v: isinstance(v, datetime | date | np.datetime64))
            short = text.str.len() <= MAX_TIMESTAMP_CHARS
            usable = (is_text & short & ~text.isin(_RELATIVE_TIMES)) | is_time
            candidates = objects[usable].map(_as_text)
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
        if usable.any():
            parsed[usable] = pd.to_datetime(candidates, errors="coerce", utc=True, format="mixed")
    in_range = (parsed >= _MIN_TIME) & (parsed <= _MAX_TIME)
    bad = values.notna() & ~(usable & in_range)
    typed = parsed.where(in_range).dt.tz_localize(None).astype("datetime64[ns]")
    return typed, bad


def _all_text(values: pd.Series) -> bool:
    """Every value is text or missing (pandas' text dtype, or objects that turn out to be)."""
    if isinstance(values.dtype, pd.StringDtype):
        return True
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in (
        "string",
        "empty",
    )


_MIN_TIME = pd.Timestamp.min.tz_localize("UTC")
_MAX_TIME = pd.Timestamp.max.tz_localize("UTC")


def _as_text(value: object) -> object:
    # Datetime objects of mixed awareness next to strings trip pandas' mixed-format parser;
    # ISO text of the same instant parses uniformly (a naive value stays naive, i.e. UTC).
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return str(value)
    return value


def as_text(values: pd.Series) -> pd.Series:
    """Values as ``str`` with missing kept; whole floats print as ints (a Parquet int column with
    nulls arrives as float64, and category ``1`` must not become ``"1.0"``)."""
    if pd.api.types.is_float_dtype(values.dtype):
        values = values.astype(object).map(
            lambda v: str(int(v)) if v == v and float(v).is_integer() else v
        )
    return values.astype("str")


def coerce_types(df: pd.DataFrame, ds: DatasetConfig) -> pd.DataFrame:
    """Exactly the configured columns, in config order, typed by their configured dtype.

    int and float become float64 so missing values stay NaN (the target, never missing, becomes
    int64); string/category become ``str`` with NaN kept; datetime becomes tz-naive UTC
    ``datetime64[ns]``. Meant for frames that passed the raw checkpoint: anything it cannot
    convert raises ``ValueError`` naming the column.
    """
    missing = [c for c in ds.column_names if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}")
    out: dict[str, pd.Series] = {}
    for column in ds.columns:
        values = df[column.name]
        try:
            out[column.name] = _coerce_column(values, column.dtype, column.name == ds.target)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"column {column.name!r} ({column.dtype}): {exc}") from exc
    return pd.DataFrame(out, index=df.index)


def _coerce_column(values: pd.Series, dtype: str, is_target: bool) -> pd.Series:
    if dtype in ("int", "float"):
        numbers = pd.to_numeric(values, errors="raise")
        if is_target:
            return numbers.astype("int64")
        return numbers.astype("float64")
    if dtype in ("string", "category"):
        return as_text(values)
    parsed, bad = parse_timestamps(values)
    if bad.any():
        examples = [shown(v) for v in values[bad].astype(str).unique()[:3]]
        raise ValueError(f"{int(bad.sum())} value(s) not parseable as timestamps, e.g. {examples}")
    return parsed
