"""A raw file featurized chunk by chunk into one Parquet file, in memory bounded by the chunk.

:func:`retrain.features.build_features` is row-wise, so the features of a chunk are the chunk of
the features: each chunk of :func:`retrain.tables.iter_table` is typed, featurized and written as
its own row group(s) with ``pyarrow.parquet.ParquetWriter``, and only one chunk is alive at a
time. Read back, the file equals ``build_features(coerce_types(read_table(...)))`` of the whole
file (a test checks it). Every chunk gets the schema of the first one: after ``coerce_types`` the
dtypes follow the config, and the categories are the configured ones, so the dictionary (and the
codes LightGBM sees) are the same in every row group.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pandas as pd

from retrain.config import DatasetConfig
from retrain.features import build_features
from retrain.tables import coerce_types

if TYPE_CHECKING:
    import pyarrow as pa

# Rows per row group of a feature file: the unit retrain.trainset reads (and skips). Small enough
# that a row group decodes in a few MB, large enough that the footer stays small at 20M rows.
ROW_GROUP_ROWS = 65_536


def write_features(
    chunks: Iterable[pd.DataFrame],
    ds: DatasetConfig,
    where: str | Path | BinaryIO,
    *,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> int:
    """Type (:func:`retrain.tables.coerce_types`) and featurize each raw chunk (as
    :func:`retrain.tables.iter_table` yields them) and append it to the Parquet file ``where``
    (a path or a binary file object). A chunk whose columns cannot take the first chunk's schema
    raises ``ValueError`` naming the chunk. Returns the number of rows written. After an error
    ``where`` holds the chunks before it (a valid, incomplete file): write to a temporary path
    and publish only what returned."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = 0
    try:
        for number, chunk in enumerate(chunks):
            features = build_features(coerce_types(chunk, ds), ds)
            table = pa.Table.from_pandas(features, preserve_index=False)
            del features
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(where, schema)
            else:
                table = _conform(table, schema, number)
            writer.write_table(table, row_group_size=row_group_rows)
            rows += table.num_rows
            del table
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError("no chunks (iter_table yields one even for a file without rows)")
    return rows


def _conform(table: pa.Table, schema: pa.Schema | None, number: int) -> pa.Table:
    """``table`` with the first chunk's schema (its pandas metadata included: the RangeIndex of
    a later chunk starts elsewhere, and the file has one schema)."""
    assert schema is not None
    if table.schema.equals(schema, check_metadata=False):
        return table.replace_schema_metadata(schema.metadata)
    try:
        return table.cast(schema)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise ValueError(f"chunk {number} does not fit the first chunk's schema: {exc}") from exc
