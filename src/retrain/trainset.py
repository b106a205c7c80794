"""The training set as local Parquet feature files plus a narrow row index, never one big frame.

Concatenating every feature file into one pandas frame (and LightGBM copying it again) makes
memory grow with all the rows and every column (~2.3 GB at 5M rows). Here the feature files
stay on local disk (:mod:`retrain.steps.training_set` stages them) and only what decides which
rows train is indexed: the :class:`RowIndex`, 17 bytes per row (time, id hash, label), of which
only the label stays resident when the time and id hash are kept on disk (``spill_dir``). The
rest is streamed:

- which rows: :func:`newest_per_id` (upsert), :func:`split_by_time` / :func:`newest_rows` (the
  holdout and the early-stopping slice, ordered by time then id exactly as
  ``training.split_by_time`` orders them: ties at the cut are settled by reading their ids);
- LightGBM's Dataset from :class:`ParquetRows` (``lgb.Sequence``): the selected rows of one
  file, read batch by batch with pyarrow, categorical features as their category codes, as
  LightGBM gets them from the pandas categories today (and ``pandas_categorical`` set on the
  booster, so the model predicts pandas frames as before);
- :func:`train_streamed`, :func:`refit_streamed`, :func:`predict_streamed`: ``train_model``,
  ``refit`` and scoring without the frame. On files whose rows are in time order (one file per
  arrival, each sorted by time, as ingest writes them) LightGBM sees the rows in the order the
  pandas path gives it, samples the same rows for its bins, and trains the same trees.

The memory budget (``[training] memory_budget_mb``, :func:`plan_budget`) sizes the read batches
and caps the rows one LightGBM Dataset may hold: LightGBM keeps ~16 + 4 bytes per feature for
every row it trains on (96 at 20 features) whatever feeds it, so no input format alone bounds
training memory at any size. Above the cap the model learns from a seeded sample of the
training part chosen by id hash (the same ids in every run), and ``TrainResult.sampled_from``
says so. Nothing here imports Airflow, GX or boto3.
"""

from __future__ import annotations

import functools
import gc
import logging
import math
import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrain.config import Config, DatasetConfig
from retrain.features import categorical_feature_names, feature_names
from retrain.training import VALID_FRACTION, Model, TrainResult, _params, metrics_of

if TYPE_CHECKING:
    import lightgbm as lgb
    import pyarrow as pa

log = logging.getLogger(__name__)

PathLike = str | Path
# pandas.util.hash_array's SipHash key (16 bytes). Fixed: an id hashes the same in every process
# and every run. 64-bit hashes of n distinct ids collide with probability ~ n**2 / 2**65
# (3e-8 at 1M ids, 1e-5 at 20M); see newest_per_id and validation.training_stream for what a
# collision would do.
ID_HASH_KEY = "retrain.ids.v1.k"
NULL_ID_HASH = np.uint64(0)  # a missing id (pandas groups missing ids together: so does this)
NAT = np.iinfo(np.int64).min  # a missing time, as pandas stores NaT: sorts first
TARGET_MISSING = -1  # RowIndex.target of a row without a label
TARGET_OTHER = 2  # ... and of a label that is not 0 or 1
DEFAULT_BATCH_ROWS = 65_536  # rows per read when no budget says otherwise
DEFAULT_BUDGET_MB = 1024
# The memory model of plan_budget, measured on this machine (benchmarks/training.py; README,
# "Bounded memory"): RSS of a process with numpy, pandas, pyarrow and lightgbm loaded and
# pyarrow's reader warmed up (its allocator keeps ~100 MB of pages it once used); LightGBM's
# bin-construction sample (200k rows as a list of row arrays, then as a matrix and its columns:
# ~16 bytes a feature and ~120 a row, freed after construction); LightGBM's bytes per Dataset
# row while it trains (binned features, gradients, scores: ~16 + 4 per feature); a read batch in
# flight (the pyarrow batch, its float64 matrix and LightGBM's copy: ~3 x 8 bytes a feature).
BASE_MB = 270
BIN_SAMPLE_ROWS = 200_000  # LightGBM's bin_construct_sample_cnt (default; kept for equal bins)
BIN_SAMPLE_FEATURE_BYTES, BIN_SAMPLE_ROW_BYTES = 16, 120
LGB_ROW_BYTES, LGB_FEATURE_BYTES = 16, 4
READ_FEATURE_BYTES = 24
READ_SHARE = 0.1  # of what the budget leaves for reads and LightGBM: the read batches
# RowIndex: time 8, id hash 8, target 1. A spilled index keeps only the target resident while
# LightGBM trains, but the budget still counts all of it: the same row cap, so the same sample
# and the same model as before spilling (the rest is headroom).
INDEX_ROW_BYTES = 17
MASK_BYTES = 6  # bool masks per index row alive while LightGBM trains (caller's and ours)
MIN_BATCH_ROWS, MAX_BATCH_ROWS = 4_096, 262_144


# -- the row index ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RowIndex:
    """One entry per row of the feature files, in file order then row order.

    A row's position gives its file and its row number within the file (``offsets``, see
    :meth:`file_of` and :meth:`row_in_file`): stored, they would cost 8 more bytes per row.
    ``time`` is the time column in ns since the epoch (missing: :data:`NAT`); ``id_hash`` the id
    hashed with :data:`ID_HASH_KEY` (missing: :data:`NULL_ID_HASH`); ``target`` 0/1,
    :data:`TARGET_MISSING` or :data:`TARGET_OTHER`.

    Built with a ``spill_dir``, ``time`` and ``id_hash`` (16 of the 17 bytes a row) are read-only
    maps of files there: the scans that need them page them in, and :meth:`release` drops the
    pages again, so they are not resident while LightGBM or GX work.
    """

    offsets: np.ndarray  # int64, n_files + 1: file f holds positions offsets[f]:offsets[f + 1]
    time: np.ndarray  # int64
    id_hash: np.ndarray  # uint64
    target: np.ndarray  # int8

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_files(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.offsets, self.time, self.id_hash, self.target))

    def release(self) -> None:
        """Drop the resident pages of the arrays kept on disk (a no-op for arrays in memory):
        the next use reads them back from the page cache or the file."""
        _drop_pages(self.time)
        _drop_pages(self.id_hash)

    def file_of(self, positions: np.ndarray) -> np.ndarray:
        """The file number of each position."""
        return np.searchsorted(self.offsets, positions, side="right") - 1

    def row_in_file(self, positions: np.ndarray) -> np.ndarray:
        """The row number within its file of each position."""
        return positions - self.offsets[self.file_of(positions)]

    def file_mask(self, mask: np.ndarray, file: int) -> np.ndarray:
        """``mask``'s entries for the rows of ``file`` (a view)."""
        return mask[self.offsets[file] : self.offsets[file + 1]]

    def labels(self, mask: np.ndarray) -> np.ndarray:
        """The 0/1 labels of the rows in ``mask``, in index order (``ValueError`` otherwise, as
        ``training._labels``)."""
        y = self.target[mask]
        if len(y) and (y.min() < 0 or y.max() > 1):
            raise ValueError("target must be 0/1 with no missing values")
        return y


def build_row_index(
    paths: Sequence[PathLike],
    ds: DatasetConfig,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    spill_dir: PathLike | None = None,
) -> RowIndex:
    """Read the id, time and target columns of each file, batch by batch, into a
    :class:`RowIndex` (the arrays are allocated once, from the files' footers). A file without
    one of these columns gets missing values for it: the gate reports them. With ``spill_dir``
    (a directory that outlives the index), time and id hash are written to files there and
    mapped read-only (see :class:`RowIndex`)."""
    import pyarrow.parquet as pq

    counts = [pq.read_metadata(p).num_rows for p in paths]
    offsets = np.zeros(len(paths) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    n = int(offsets[-1])
    spill = Path(spill_dir) if spill_dir is not None and n else None
    time = _new_column(spill, "time", n, np.int64, NAT)
    id_hash = _new_column(spill, "id_hash", n, np.uint64, NULL_ID_HASH)
    target = np.full(n, TARGET_MISSING, dtype=np.int8)
    wanted = (ds.id_column, ds.time_column, ds.target)
    for f, path in enumerate(paths):
        parquet = pq.ParquetFile(path)
        columns = [c for c in wanted if c in parquet.schema_arrow.names]
        if not columns:
            continue
        start = int(offsets[f])
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
            rows = slice(start, start + batch.num_rows)
            if ds.time_column in columns:
                time[rows] = _times(batch.column(ds.time_column))
            if ds.id_column in columns:
                id_hash[rows] = hash_ids(batch.column(ds.id_column))
            if ds.target in columns:
                target[rows] = _targets(batch.column(ds.target))
            start += batch.num_rows
        if start != offsets[f + 1]:
            raise ValueError(f"{path}: read {start - offsets[f]} rows, its footer says {counts[f]}")
        _drop_pages(time)  # written: to the file (a spilled index is never all resident)
        _drop_pages(id_hash)
    if spill is not None:  # written: unmap (the pages go with the writable map) and map read-only
        del time, id_hash
        time, id_hash = (np.load(spill / f"{name}.npy", mmap_mode="r") for name in _SPILLED)
    return RowIndex(offsets=offsets, time=time, id_hash=id_hash, target=target)


_SPILLED = ("time", "id_hash")  # the RowIndex arrays build_row_index can keep on disk


def _new_column(
    spill: Path | None, name: str, n: int, dtype: type[np.generic], fill: Any
) -> np.ndarray:
    """``np.full(n, fill, dtype)``, in memory or as a writable map of ``spill / name.npy``."""
    if spill is None:
        return np.full(n, fill, dtype=dtype)
    array = np.lib.format.open_memmap(spill / f"{name}.npy", mode="w+", dtype=dtype, shape=(n,))
    if fill:  # a new file reads as zeros
        for start in range(0, n, 1 << 20):
            array[start : start + (1 << 20)] = fill
            _drop_pages(array)
    return array


def _drop_pages(array: np.ndarray) -> None:
    """Drop the resident pages of a file-backed ``numpy.memmap`` (a no-op for other arrays):
    a shared map keeps what was written in the file."""
    mapped = getattr(array, "_mmap", None)  # numpy.memmap's mmap.mmap
    if mapped is not None and hasattr(mapped, "madvise") and len(array):
        mapped.madvise(mmap.MADV_DONTNEED)


def hash_ids(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Ids as uint64 hashes that are the same in every process: text by its UTF-8 bytes,
    numbers as float64 (as ``coerce_types`` types an int id), missing as
    :data:`NULL_ID_HASH` (which no present id hashes to)."""
    import pyarrow as pa
    from pandas.util import hash_array

    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        values = values.cast(pa.float64())
    array = values.to_numpy(zero_copy_only=False)
    hashes = hash_array(array, hash_key=ID_HASH_KEY, categorize=False)
    hashes[hashes == NULL_ID_HASH] = 1
    if values.null_count:
        hashes[values.is_null().to_numpy(zero_copy_only=False)] = NULL_ID_HASH
    return hashes


def _times(values: pa.Array) -> np.ndarray:
    import pyarrow as pa

    kind = values.type
    if pa.types.is_timestamp(kind):
        values = values.cast(pa.timestamp("ns", kind.tz))
    elif pa.types.is_date(kind):
        values = values.cast(pa.timestamp("ns"))
    else:
        raise TypeError(f"the time column is {kind}, not a timestamp")
    return values.cast(pa.int64()).fill_null(NAT).to_numpy()


def _targets(values: pa.Array) -> np.ndarray:
    import pyarrow as pa

    out = np.full(len(values), TARGET_OTHER, dtype=np.int8)
    kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        numbers = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
        out[numbers == 0] = 0
        out[numbers == 1] = 1
    if values.null_count:
        out[values.is_null().to_numpy(zero_copy_only=False)] = TARGET_MISSING
    return out


# -- which rows ---------------------------------------------------------------------------------


def newest_per_id(index: RowIndex, mask: np.ndarray | None = None) -> np.ndarray:
    """``[ingest] duplicate_ids = "upsert"``: of the rows in ``mask`` (default: all), the newest
    row per id: the latest time wins; on a tie the later file (then the later row), exactly as
    a stable pandas sort by time then ``duplicated(keep="last")`` picks (which sorts missing
    times last: so does this).

    Only rows whose id hash occurs twice are ordered, so memory is a sorted copy of a range of
    the hashes at a time (:func:`duplicated_hashes`) plus the duplicated rows. Ids are compared
    by hash: a collision of two different ids (probability above) would drop the older row of
    one of them.
    """
    keep = np.ones(index.n_rows, dtype=bool) if mask is None else np.array(mask, dtype=bool)
    duplicated = duplicated_hashes(index.id_hash, keep)
    if not len(duplicated):
        index.release()
        return keep
    positions = np.flatnonzero(keep & in_sorted(index.id_hash, duplicated))
    hashes = index.id_hash[positions]
    times = index.time[positions]
    times = np.where(times == NAT, np.iinfo(np.int64).max, times)  # pandas: NaT sorts last
    order = np.lexsort((positions, times, hashes))
    hashes = hashes[order]
    last = np.r_[hashes[1:] != hashes[:-1], True]
    keep[positions] = False
    keep[positions[order[last]]] = True
    index.release()
    return keep


def duplicated_hashes(
    hashes: np.ndarray, mask: np.ndarray, *, bucket_rows: int = 1 << 22
) -> np.ndarray:
    """The hash values that occur more than once among ``mask``'s rows (sorted, unique).

    Equal hashes share their top bits, so the rows are taken a range of hash values at a time
    (by the top ``bits``: about ``bucket_rows`` rows each, one pass over ``hashes`` per range)
    and each range is sorted on its own: the sorted copy is of ~``bucket_rows`` hashes, not of
    every row (8 bytes each: 160 MB at 20M rows). The ranges come in increasing order, so their
    results concatenate sorted."""
    rows = int(np.count_nonzero(mask))
    bits = max(math.ceil(math.log2(rows / bucket_rows)), 0) if rows > bucket_rows else 0
    if bits == 0:
        return _repeated(hashes[mask])
    shift = np.uint64(64 - bits)
    return np.concatenate(
        [_repeated(_in_range(hashes, mask, shift, top)) for top in range(1 << bits)]
    )


def _in_range(
    hashes: np.ndarray, mask: np.ndarray, shift: np.uint64, top: int, chunk: int = 1 << 20
) -> np.ndarray:
    """The hashes of ``mask``'s rows whose bits above ``shift`` are ``top`` (a copy), read
    chunk by chunk."""
    parts = []
    for start in range(0, len(hashes), chunk):
        part = hashes[start : start + chunk][mask[start : start + chunk]]
        parts.append(part[(part >> shift) == top])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=hashes.dtype)


def _repeated(chosen: np.ndarray) -> np.ndarray:
    """The values of ``chosen`` (a copy: sorted in place) that occur more than once."""
    chosen.sort()
    return np.unique(chosen[1:][chosen[1:] == chosen[:-1]])


def in_sorted(values: np.ndarray, sorted_set: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """``np.isin(values, sorted_set)`` in chunks (np.isin sorts both: 3 copies of ``values``)."""
    out = np.zeros(len(values), dtype=bool)
    if not len(sorted_set):
        return out
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk]
        found = np.minimum(np.searchsorted(sorted_set, part), len(sorted_set) - 1)
        out[start : start + chunk] = sorted_set[found] == part
    return out


def split_by_time(
    paths: Sequence[PathLike],
    index: RowIndex,
    mask: np.ndarray,
    fraction: float,
    *,
    id_column: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """``training.split_by_time`` on the rows of ``mask``: (older, newest) masks, the newest
    being ``round(n * fraction)`` rows (at least 1, at most n - 1) by time, then id."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {fraction}")
    n = int(np.count_nonzero(mask))
    if n < 2:
        raise ValueError(f"need at least 2 rows to split, got {n}")
    n_newest = min(max(round(n * fraction), 1), n - 1)
    newest = newest_rows(paths, index, mask, n_newest, id_column=id_column, batch_rows=batch_rows)
    return mask & ~newest, newest


def newest_rows(
    paths: Sequence[PathLike],
    index: RowIndex,
    mask: np.ndarray,
    n: int,
    *,
    id_column: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> np.ndarray:
    """The newest ``n`` rows of ``mask`` in the order ``training.split_by_time`` sorts
    (time, then id, missing first, then position). Only the rows that share the time at the
    cut have their ids read (from ``paths``), to settle which of them are newer."""
    mask = np.asarray(mask, dtype=bool)
    total = int(np.count_nonzero(mask))
    if n <= 0:
        return np.zeros(index.n_rows, dtype=bool)
    if n >= total:
        return mask.copy()
    times = index.time[mask]  # a copy, partitioned in place
    index.release()
    times.partition(total - n)
    cut = times[total - n]
    del times
    newest = mask & (index.time > cut)
    tied = np.flatnonzero(mask & (index.time == cut))
    index.release()
    need = n - int(np.count_nonzero(newest))
    if need == len(tied):
        newest[tied] = True
    elif need > 0:
        ids = read_rows(paths, index, tied, [id_column], batch_rows=batch_rows)[id_column]
        order = ids.reset_index(drop=True).sort_values(kind="stable", na_position="first").index
        newest[tied[order.to_numpy()[len(tied) - need :]]] = True
    return newest


def sample_rows(index: RowIndex, mask: np.ndarray, n: int, seed: int) -> np.ndarray:
    """About ``n`` rows of ``mask`` (each kept with probability n / rows), chosen by a seeded
    mix of the id hash: the same ids in every run and whatever the file order, so two
    retrains over overlapping windows learn from the same rows of the files they share."""
    total = int(np.count_nonzero(mask))
    if n >= total:
        return np.asarray(mask, dtype=bool).copy()
    threshold = np.uint64(min(int(n / total * 2.0**64), 2**64 - 1))
    salt = np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
    out = np.zeros(index.n_rows, dtype=bool)
    chunk = 1 << 20
    for start in range(0, index.n_rows, chunk):
        part = slice(start, start + chunk)
        out[part] = mask[part] & (_mix(index.id_hash[part] ^ salt) < threshold)
    index.release()
    return out


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: well-spread 64-bit values from the hashes (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# -- reading rows -------------------------------------------------------------------------------


def selected_batches(
    path: PathLike, columns: list[str], selected: np.ndarray, batch_rows: int
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """The ``selected`` rows (a bool per row of the file) of ``columns``, batch by batch, as
    (the position of the batch's first row among the selected rows, the batch). Row groups
    without a selected row are not read."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    missing = [c for c in columns if c not in parquet.schema_arrow.names]
    if missing:
        raise KeyError(f"{path}: no column(s) {missing}")
    meta = parquet.metadata
    lo = position = 0
    for group in range(meta.num_row_groups):
        hi = lo + meta.row_group(group).num_rows
        in_group = selected[lo:hi]
        count = int(np.count_nonzero(in_group))
        if count:
            offset = 0
            for batch in parquet.iter_batches(
                batch_size=batch_rows, row_groups=[group], columns=columns
            ):
                local = np.flatnonzero(in_group[offset : offset + batch.num_rows])
                offset += batch.num_rows
                if not len(local):
                    continue
                taken = batch if len(local) == batch.num_rows else batch.take(local)
                yield position, taken
                position += len(local)
        lo = hi


def read_rows(
    paths: Sequence[PathLike],
    index: RowIndex,
    rows: np.ndarray,
    columns: list[str] | None = None,
    *,
    ds: DatasetConfig | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> pd.DataFrame:
    """The given rows (a bool mask over the index, or sorted positions) as a pandas frame in
    index order, typed as ``pd.read_parquet`` types a feature file (with ``ds``: categorical
    features with exactly the configured categories). For a bounded subset of rows: a sample,
    the rows at a cut, a holdout that fits."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    mask = _as_mask(index, rows)
    tables = []
    for f, path in enumerate(paths):
        selected = index.file_mask(mask, f)
        if not selected.any():
            continue
        names = columns or pq.ParquetFile(path).schema_arrow.names
        batches = [batch for _, batch in selected_batches(path, list(names), selected, batch_rows)]
        tables.append(pa.Table.from_batches(batches))
    if not tables:
        return pd.DataFrame(columns=columns or [])
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    if ds is not None:
        for name in categorical_feature_names(ds):
            if name in frame.columns:
                frame[name] = _with_categories(frame[name], ds.column(name).categories or ())
    return frame


def _with_categories(values: pd.Series, categories: Sequence[str]) -> pd.Series:
    if isinstance(values.dtype, pd.CategoricalDtype):
        if list(values.cat.categories) == list(categories):
            return values
        return values.cat.set_categories(list(categories))
    return pd.Series(pd.Categorical(values, categories=list(categories)), index=values.index)


def _as_mask(index: RowIndex, rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.dtype == bool:
        return rows
    mask = np.zeros(index.n_rows, dtype=bool)
    mask[rows] = True
    return mask


@dataclass(frozen=True)
class FeatureLayout:
    """The model inputs as LightGBM gets them from ``build_features`` frames: float64 columns in
    ``feature_names`` order, a categorical feature as its code in the configured categories
    (missing or unknown: NaN), exactly what ``lgb.Dataset`` makes of a pandas category."""

    names: tuple[str, ...]
    categories: tuple[tuple[str, ...] | None, ...]  # per feature; None for a numeric one

    @classmethod
    def of(cls, ds: DatasetConfig, names: Sequence[str] | None = None) -> FeatureLayout:
        categorical = set(categorical_feature_names(ds))
        names = tuple(names or feature_names(ds))
        return cls(
            names=names,
            categories=tuple(
                tuple(ds.column(n).categories or ()) if n in categorical else None for n in names
            ),
        )

    @property
    def categorical(self) -> list[str]:
        return [n for n, c in zip(self.names, self.categories, strict=True) if c is not None]

    @property
    def pandas_categorical(self) -> list[list[str]]:
        """What LightGBM stores with a model trained from pandas: each categorical feature's
        categories, in column order (it maps a pandas frame's categories to codes with them)."""
        return [list(c) for c in self.categories if c is not None]

    def matrix(self, batch: pa.RecordBatch) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        out = np.empty((batch.num_rows, len(self.names)), dtype=np.float64)
        for j, (name, categories) in enumerate(zip(self.names, self.categories, strict=True)):
            column = batch.column(name)
            if categories is not None:
                kind = column.type
                if pa.types.is_dictionary(kind):
                    kind = kind.value_type
                if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                    column = column.cast(pa.string())  # not from build_features: as text
                column = pc.index_in(column, value_set=pa.array(categories, pa.string()))
            out[:, j] = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return out


@functools.cache
def _sequence_class() -> type:
    """:class:`ParquetRows`, defined on first use: lightgbm is imported lazily here, as in
    ``retrain.training`` (DAG files import the library to parse)."""
    import lightgbm as lgb

    class ParquetRows(lgb.Sequence):
        """The selected rows of one feature file, as LightGBM reads a Dataset: ``seq[i]`` (the
        bin sample, increasing i, one file after the other) and ``seq[a:b]`` (the rows, in
        batches). One decoded batch is kept, by one of all the instances at a time (LightGBM
        leaves each file's last sampled batch behind: 20 files would keep 20); reads restart
        from the top only when asked for an earlier row."""

        active: ParquetRows | None = None  # the instance whose decoded batch is kept

        def __init__(
            self, path: PathLike, selected: np.ndarray, layout: FeatureLayout, batch_rows: int
        ) -> None:
            self.path, self.selected, self.layout = path, selected, layout
            self.batch_size = batch_rows  # LightGBM pushes this many rows at a time
            self.length = int(np.count_nonzero(selected))
            self._reader: Iterator[tuple[int, pa.RecordBatch]] | None = None
            self._block: np.ndarray | None = None
            self._lo = self._hi = 0

        def __len__(self) -> int:
            return self.length

        def __getitem__(self, idx: Any) -> np.ndarray:
            if isinstance(idx, slice):
                start, stop, step = idx.indices(self.length)
                if step != 1:
                    raise IndexError("only contiguous slices")
                return self._take(start, stop)
            if isinstance(idx, list):
                return np.stack([self[i] for i in idx])
            i = int(idx) + (self.length if int(idx) < 0 else 0)
            self._seek(i)
            assert self._block is not None
            return self._block[i - self._lo]

        def _seek(self, i: int) -> None:
            if self._block is not None and self._lo <= i < self._hi:
                return
            if not 0 <= i < self.length:
                raise IndexError(i)
            if self._reader is None or self._block is None or i < self._lo:
                self._reader = selected_batches(
                    self.path, list(self.layout.names), self.selected, self.batch_size
                )
            for position, batch in self._reader:
                if position + batch.num_rows > i:
                    if ParquetRows.active is not None and ParquetRows.active is not self:
                        ParquetRows.active._drop()
                    ParquetRows.active = self
                    self._block = self.layout.matrix(batch)
                    self._lo, self._hi = position, position + batch.num_rows
                    return
            raise IndexError(i)

        def rows_at(self, positions: np.ndarray) -> np.ndarray:
            """The rows at ``positions`` (increasing) in one pass over the file, decoding only
            them: what ``seq[i]`` for each gives, without a Python call per row."""
            import pyarrow as pa

            out = np.empty((len(positions), len(self.layout.names)), dtype=np.float64)
            done = 0
            columns = list(self.layout.names)
            for start, batch in selected_batches(
                self.path, columns, self.selected, self.batch_size
            ):
                upto = int(np.searchsorted(positions, start + batch.num_rows))
                if upto > done:
                    taken = batch.take(pa.array(positions[done:upto] - start))
                    out[done:upto] = self.layout.matrix(taken)
                    done = upto
                if done == len(positions):
                    break
            if done != len(positions):
                raise IndexError(int(positions[done]))
            return out

        def _drop(self) -> None:
            self._reader, self._block = None, None
            if ParquetRows.active is self:
                ParquetRows.active = None

        def _take(self, start: int, stop: int) -> np.ndarray:
            out = np.empty((max(stop - start, 0), len(self.layout.names)), dtype=np.float64)
            i = start
            while i < stop:
                self._seek(i)
                assert self._block is not None
                n = min(stop, self._hi) - i
                out[i - start : i - start + n] = self._block[i - self._lo : i - self._lo + n]
                i += n
            if stop >= self.length:  # the last rows: let the decoded batch go
                self._drop()
            return out

    return ParquetRows


def parquet_rows(
    path: PathLike, selected: np.ndarray, layout: FeatureLayout, batch_rows: int
) -> lgb.Sequence:
    """A ``lgb.Sequence`` (``ParquetRows``) over the ``selected`` rows (a bool per row) of one
    feature file."""
    return _sequence_class()(path, selected, layout, batch_rows)


def lgb_dataset(
    paths: Sequence[PathLike],
    index: RowIndex,
    mask: np.ndarray,
    layout: FeatureLayout,
    params: dict[str, Any],
    *,
    batch_rows: int,
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    """A LightGBM Dataset of the rows in ``mask`` (index order), built from one
    ``ParquetRows`` per file with rows in it; the features marked categorical as ``lgb.Dataset``
    marks a pandas frame's category columns. ``params``: the training's."""
    seqs = [
        parquet_rows(path, index.file_mask(mask, f), layout, batch_rows)
        for f, path in enumerate(paths)
        if index.file_mask(mask, f).any()
    ]
    if not seqs:
        raise ValueError("no rows selected")
    dataset = _dataset_class()(
        seqs,
        label=index.labels(mask),
        reference=reference,
        feature_name=list(layout.names),
        categorical_feature=layout.categorical,
        params=dict(params),
        free_raw_data=True,
    )
    dataset.pandas_categorical = layout.pandas_categorical
    return dataset


@functools.cache
def _dataset_class() -> type:
    """``lgb.Dataset`` that builds from Sequences with all its parameters.

    From a matrix or a frame, LightGBM samples the rows for its bins and pre-filters features
    with every training parameter; from Sequences the Python package passes only those it lists
    as Dataset parameters (``Dataset.get_params``), so ``seed`` (hence the sampled rows) and
    ``min_data_in_leaf`` (hence the pre-filter) fall back to their defaults: other bins, other
    trees (lightgbm-org/LightGBM#6020). Giving it all of them makes the two constructions
    the same (the tests check the model text).
    """
    import lightgbm as lgb

    class SequenceDataset(lgb.Dataset):
        def get_params(self) -> dict[str, Any]:
            return dict(self.params or {})

        @staticmethod
        def _yield_row_from_seqlist(seqs: list[Any], indices: Any) -> Iterator[np.ndarray]:
            """The rows LightGBM samples for its bins (increasing positions over ``seqs``),
            each file's in one pass (:meth:`ParquetRows.rows_at`). LightGBM asks for them one
            at a time: 200k Python calls, 2-3 s a Dataset. Same rows, same bins."""
            positions = np.asarray(indices, dtype=np.int64)
            offset = 0
            for seq in seqs:
                lo, hi = np.searchsorted(positions, [offset, offset + len(seq)])
                if hi > lo:
                    yield from seq.rows_at(positions[lo:hi] - offset)
                offset += len(seq)

    return SequenceDataset


# -- the memory budget --------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """What a memory budget allows: rows per read batch, and rows per LightGBM Dataset."""

    budget_mb: int
    batch_rows: int
    max_rows: int


def plan_budget(budget_mb: int, n_features: int, index_rows: int) -> Budget:
    """Split ``budget_mb`` into the fixed part (:data:`BASE_MB`, LightGBM's bin sample), the
    row index and masks, read batches (:data:`READ_SHARE` of the rest) and the LightGBM
    Dataset (the remainder, as rows). ``ValueError`` if the index alone leaves too little: a
    larger budget or a shorter training window is the answer then."""
    sample = BIN_SAMPLE_ROWS * (BIN_SAMPLE_FEATURE_BYTES * n_features + BIN_SAMPLE_ROW_BYTES)
    index = index_rows * (INDEX_ROW_BYTES + MASK_BYTES)
    free = budget_mb * 2**20 - BASE_MB * 2**20 - sample - index
    batch_rows = int(free * READ_SHARE / (READ_FEATURE_BYTES * n_features))
    batch_rows = min(max(batch_rows, MIN_BATCH_ROWS), MAX_BATCH_ROWS)
    reads = batch_rows * READ_FEATURE_BYTES * n_features
    max_rows = int((free - reads) / (LGB_ROW_BYTES + LGB_FEATURE_BYTES * n_features))
    if max_rows < 10_000:
        raise ValueError(
            f"a memory budget of {budget_mb} MB leaves room for {max(max_rows, 0)} training "
            f"rows next to an index of {index_rows} rows: raise [training] memory_budget_mb "
            "or shorten the training window"
        )
    return Budget(budget_mb=budget_mb, batch_rows=batch_rows, max_rows=max_rows)


def budget_of(cfg: Config, budget_mb: int | None, index: RowIndex) -> Budget:
    mb = budget_mb or getattr(cfg.training, "memory_budget_mb", DEFAULT_BUDGET_MB)
    return plan_budget(int(mb), len(feature_names(cfg.dataset)), index.n_rows)


# -- training -----------------------------------------------------------------------------------


def train_streamed(
    paths: Sequence[PathLike],
    index: RowIndex,
    train_mask: np.ndarray,
    holdout_mask: np.ndarray,
    cfg: Config,
    *,
    budget_mb: int | None = None,
) -> TrainResult:
    """``training.train_model`` on the feature files: early stopping on the newest
    ``VALID_FRACTION`` (by time, then id) of the training part, the refit on the whole training
    part for ``best_iteration`` rounds, metrics on the holdout by streamed prediction.

    ``train_mask`` and ``holdout_mask`` are disjoint masks over ``index`` (``split_by_time``'s,
    or the rows the champion never saw). Above the budget's row cap the training part is a
    seeded sample (:func:`sample_rows`, ``[training] seed``) and ``sampled_from`` says so.
    """
    import lightgbm as lgb

    ds, tc = cfg.dataset, cfg.training
    if np.any(train_mask & holdout_mask):
        raise ValueError("train_mask and holdout_mask overlap")
    layout = FeatureLayout.of(ds)
    budget = budget_of(cfg, budget_mb, index)
    train, sampled_from = _within_budget(index, train_mask, budget, tc.seed)
    fit, valid = split_by_time(
        paths, index, train, VALID_FRACTION, id_column=ds.id_column, batch_rows=budget.batch_rows
    )
    params = _params(cfg, index.labels(train))
    release_memory()  # the row selection's temporaries, before LightGBM's Datasets
    fit_set = lgb_dataset(paths, index, fit, layout, params, batch_rows=budget.batch_rows)
    valid_set = lgb_dataset(
        paths, index, valid, layout, params, batch_rows=budget.batch_rows, reference=fit_set
    )
    del fit, valid
    probe = lgb.train(
        params,
        fit_set,
        num_boost_round=tc.num_boost_round,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(tc.early_stopping_rounds, verbose=False)],
    )
    best = probe.best_iteration or tc.num_boost_round
    del probe, fit_set, valid_set
    release_memory()  # the probe's Datasets go before the refit's is built
    train_set = lgb_dataset(paths, index, train, layout, params, batch_rows=budget.batch_rows)
    booster = lgb.train(params, train_set, num_boost_round=best)
    del train_set
    release_memory()  # and the refit's before the holdout is scored
    model = Model(booster=booster, feature_names=layout.names)
    n_train = int(np.count_nonzero(train))
    del train
    holdout_start = pd.Timestamp(int(index.time[holdout_mask].min())).isoformat()
    index.release()
    scores = predict_streamed(model, paths, index, holdout_mask, ds, budget.batch_rows)
    # the metrics' sorts take ~70 bytes a holdout row (280 MB for 4M): after LightGBM is gone
    metrics = metrics_of(index.labels(holdout_mask), scores)
    return TrainResult(
        model=model,
        metrics=metrics,
        best_iteration=best,
        n_train=n_train,
        n_holdout=len(scores),
        holdout_start=holdout_start,
        sampled_from=sampled_from,
        holdout_scores=scores,
    )


def refit_streamed(
    paths: Sequence[PathLike],
    index: RowIndex,
    mask: np.ndarray,
    cfg: Config,
    rounds: int,
    *,
    budget_mb: int | None = None,
) -> Model:
    """``training.refit``: the serving model on every row of ``mask`` (or, above the budget's
    row cap, on the seeded sample :func:`train_streamed` would take) for ``rounds`` rounds."""
    import lightgbm as lgb

    layout = FeatureLayout.of(cfg.dataset)
    budget = budget_of(cfg, budget_mb, index)
    rows, _ = _within_budget(index, mask, budget, cfg.training.seed)
    params = _params(cfg, index.labels(rows))
    train_set = lgb_dataset(paths, index, rows, layout, params, batch_rows=budget.batch_rows)
    booster = lgb.train(params, train_set, num_boost_round=max(rounds, 1))
    return Model(booster=booster, feature_names=layout.names)


def predict_streamed(
    model: Model,
    paths: Sequence[PathLike],
    index: RowIndex,
    mask: np.ndarray,
    ds: DatasetConfig,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> np.ndarray:
    """P(target = 1) of the rows in ``mask``, in index order: the scores
    ``model.predict_proba`` gives their frame, one read batch in memory at a time."""
    layout = FeatureLayout.of(ds, model.feature_names)
    out = np.empty(int(np.count_nonzero(mask)), dtype=np.float64)
    done = 0
    for f, path in enumerate(paths):
        selected = index.file_mask(mask, f)
        if not selected.any():
            continue
        for position, batch in selected_batches(path, list(layout.names), selected, batch_rows):
            scores = model.booster.predict(layout.matrix(batch))
            out[done + position : done + position + batch.num_rows] = scores
        done += int(np.count_nonzero(selected))
    return out


def release_memory() -> None:
    """Give what LightGBM and pyarrow freed back to the system. glibc keeps freed blocks in the
    heap (its mmap threshold rises as large blocks are freed), so a Dataset freed before the
    next is built would still count against the budget; mimalloc keeps pages likewise."""
    import ctypes
    import ctypes.util

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    name = ctypes.util.find_library("c")
    if name:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
        if trim is not None:  # glibc only
            trim(0)


def _within_budget(
    index: RowIndex, mask: np.ndarray, budget: Budget, seed: int
) -> tuple[np.ndarray, int]:
    """``mask`` itself, or a seeded sample of it that fits the budget's row cap; and the number
    of rows it was sampled from (0: not sampled)."""
    rows = int(np.count_nonzero(mask))
    if rows <= budget.max_rows:
        return np.asarray(mask, dtype=bool), 0
    sample = sample_rows(index, mask, budget.max_rows, seed)
    log.warning(
        "memory budget %d MB: training on a seeded sample of %d of %d rows (raise "
        "[training] memory_budget_mb or shorten the window to use them all)",
        budget.budget_mb,
        int(np.count_nonzero(sample)),
        rows,
    )
    return sample, rows
