"""Values split by hash into partitions on local disk, so that a set question over more values
than fit in a task's memory (are a file's ids unique? which of them were ingested before?) is
answered one partition at a time: equal values always share a partition.

Partitions are Arrow IPC streams under a directory the caller owns (a temporary one: nothing
here outlives the task). The hash is pandas' (SipHash with a fixed key), stable across
processes, so two spills of the same process, or of two processes, agree on every value's
partition when their ``parts`` agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

# Values a partition is aimed at: one partition's values, a hash set of them and a chunk being
# checked against it stay well inside a light task's memory (~100 MB for 1M text ids).
PART_ROWS = 1_000_000


def parts_for(rows: int, part_rows: int = PART_ROWS) -> int:
    """How many partitions keep ``rows`` values at about ``part_rows`` a partition."""
    return max(1, -(-max(rows, 0) // part_rows))


def buckets(values: pa.Array | pa.ChunkedArray, parts: int) -> np.ndarray:
    """The partition (0 .. parts-1) of each value (missing values all share one)."""
    import pandas as pd

    if parts == 1 or len(values) == 0:
        return np.zeros(len(values), dtype=np.int64)
    series = values.to_pandas(types_mapper=pd.ArrowDtype)
    hashed = pd.util.hash_pandas_object(series, index=False).to_numpy()
    return (hashed % np.uint64(parts)).astype(np.int64)


class Spill:
    """Tables appended chunk by chunk, each row to the partition of its ``key`` value."""

    def __init__(self, directory: Path, parts: int, schema: pa.Schema, key: str) -> None:
        if parts < 1:
            raise ValueError(f"parts must be >= 1, got {parts}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.parts, self.schema, self.key = parts, schema, key
        self.rows = [0] * parts
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}

    def add(self, table: pa.Table) -> None:
        """Append ``table`` (this spill's schema), each row to its value's partition."""
        if not table.num_rows:
            return
        table = table.select(self.schema.names).cast(self.schema)
        if self.parts == 1:
            self._write(0, table)
            return
        which = buckets(table.column(self.key), self.parts)
        order = np.argsort(which, kind="stable")  # keeps each partition's rows in order
        ordered = table.take(order)
        bounds = np.searchsorted(which[order], np.arange(self.parts + 1))
        for part in range(self.parts):
            start, stop = int(bounds[part]), int(bounds[part + 1])
            if stop > start:
                self._write(part, ordered.slice(start, stop - start))

    def _write(self, part: int, table: pa.Table) -> None:
        import pyarrow as pa

        writer = self._writers.get(part)
        if writer is None:
            writer = pa.ipc.new_stream(str(self._path(part)), self.schema)
            self._writers[part] = writer
        writer.write_table(table)
        self.rows[part] += table.num_rows

    def close(self) -> None:
        """Finish writing (reading closes first, so an explicit call is optional)."""
        while self._writers:
            self._writers.popitem()[1].close()

    def read(self, part: int) -> pa.Table:
        """Every row of partition ``part``, in the order they were added."""
        import pyarrow as pa

        self.close()
        path = self._path(part)
        if not self.rows[part]:
            return self.schema.empty_table()
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
        return table.combine_chunks()

    def __iter__(self) -> Iterator[pa.Table]:
        """The partitions in turn, one in memory at a time (empty ones skipped)."""
        for part in range(self.parts):
            if self.rows[part]:
                yield self.read(part)

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self, part: int) -> Path:
        return self.directory / f"part-{part:05d}.arrows"
