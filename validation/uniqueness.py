"""A column's uniqueness over a file seen chunk by chunk, in bounded memory, with the result GX's
``ExpectColumnValuesToBeUnique`` gives for the whole file.

GX finds duplicates with a hash table of every value: ~1 GB for a 20M-row id column, and its
result needs them all at once. Here each chunk's values (with their row numbers) are spilled to
hash partitions on local disk (:mod:`retrain.spill`): equal values share a partition, so each
partition's duplicates are its own and their counts add up. Missing values are left out, as GX
leaves them out; values are compared as text (``retrain.tables.as_text``: a whole float equals
its int, as it does in a typed column).
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.spill import Spill
from retrain.tables import as_text


class UniqueCheck:
    """One column's values, added chunk by chunk in file order."""

    def __init__(self, column: str, directory: Path, parts: int) -> None:
        import pyarrow as pa

        self.column = column
        schema = pa.schema([("value", pa.large_string()), ("row", pa.int64())])
        self._spill = Spill(directory, parts, schema, "value")
        self.rows = 0
        self.missing = 0
        self._numeric: bool | None = None  # the first chunk's column was numbers

    def add(self, values: pd.Series) -> None:
        """The column of the next chunk (its rows follow the previous chunk's)."""
        import pyarrow as pa

        if self._numeric is None:
            self._numeric = pd.api.types.is_numeric_dtype(values.dtype)
        present = values.notna().to_numpy()
        text = as_text(values[present])
        rows = np.flatnonzero(present).astype(np.int64) + self.rows
        self._spill.add(
            pa.table(
                {
                    "value": pa.array(text.array).cast(pa.large_string()),
                    "row": pa.array(rows, pa.int64()),
                }
            )
        )
        self.rows += len(values)
        self.missing += int((~present).sum())

    def result(self, limit: int) -> tuple[bool, dict[str, Any]]:
        """``(success, result)`` in GX's SUMMARY format: counts over the file, the first
        ``limit`` duplicated values in row order (every occurrence, as GX lists them)."""
        unexpected, first = 0, []
        for part in self._spill:
            count, rows, values = _repeated(part, limit)
            unexpected += count
            first = heapq.nsmallest(limit, [*first, *zip(rows, values, strict=True)])
        self._spill.close()
        examples = [self._shown(v) for _, v in first]
        elements, nonmissing = self.rows, self.rows - self.missing
        result: dict[str, Any] = {
            "element_count": elements,
            "unexpected_count": unexpected,
            "unexpected_percent": unexpected / nonmissing * 100 if nonmissing else None,
            "partial_unexpected_list": examples,
            "missing_count": self.missing,
            "missing_percent": self.missing / elements * 100 if elements else None,
            "unexpected_percent_total": unexpected / elements * 100 if elements else None,
            "unexpected_percent_nonmissing": (
                unexpected / nonmissing * 100 if nonmissing else None
            ),
            "partial_unexpected_index_list": [row for row, _ in first],
        }
        return unexpected == 0, result

    def _shown(self, value: str) -> Any:
        """An example as GX would quote it: a number for a numeric column."""
        if not self._numeric:
            return value
        number = float(value)
        return int(number) if number.is_integer() and "." not in value else number


def _repeated(part: Any, limit: int) -> tuple[int, list[int], list[str]]:
    """How many rows of a partition hold a value that occurs more than once in it, and the
    first ``limit`` of them (row numbers and values)."""
    import pyarrow.compute as pc

    values = part.column("value")
    counts = pc.value_counts(values)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if not len(repeated):
        return 0, [], []
    hits = part.filter(pc.is_in(values, value_set=repeated))
    rows = hits.column("row").to_numpy()
    keep = np.argpartition(rows, limit)[:limit] if len(rows) > limit else np.arange(len(rows))
    return len(rows), rows[keep].tolist(), hits.column("value").take(keep).to_pylist()
