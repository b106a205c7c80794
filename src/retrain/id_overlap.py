"""Which ids of a batch's files were ingested before, in memory bounded whatever the sizes.

The duplicate-id policy needs, for each file of a batch, its ids that accepted files already
brought: those of the history (every ``ledger/ids/<sha256>.parquet``) and those of files accepted
earlier in the same batch. Holding every id at once does not fit a light task (4 GB for a file of
20M rows), so :func:`check` answers in one pass over hash partitions on local disk
(:mod:`retrain.spill`), one partition in memory at a time:

- the history's ids (with the index of the file that brought them) and each batch file's ids go
  to the same number of partitions, chosen from their total rows and bytes (Parquet metadata);
- per partition, each batch file's ids found in the history are counted (distinct), with up to
  :data:`EXAMPLES` of them (the smallest) and the files that brought them;
- the batch's other ids found in several of its files are grouped by the set of files that have
  them (a count and examples per set). Which of those files count as "accepted earlier" depends
  on the decisions, made one file after another in key order after the pass:
  :meth:`BatchOverlap.overlap` adds the groups shared with the files accepted so far. So an id
  counts once, in the history's count or in the batch's, and the pass is never repeated.

Nothing depends on the number of partitions: one partition (a small batch and history, the usual
case) gives the same answer as many, at about the cost of the old in-memory check.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retrain import spill

ID_COLUMN = "id"
EXAMPLES = 5  # ids named per overlap
# Ids an id file holds per row group (validation writes them so), and the most read at a time.
ID_ROW_GROUP = 250_000
# Decoded id bytes a partition is aimed at, beside spill.PART_ROWS: long ids get more partitions.
PART_BYTES = 64 << 20
# A batch file whose reading could weigh on the task (more ids than one read, or a row group of
# this many decoded bytes) is read under a marker of its own (``retrain.attempts``); smaller
# ones cannot exhaust the task and are read unmarked, at no extra request.
MARK_ROWS = ID_ROW_GROUP
MARK_BYTES = 16 << 20

HISTORY_SCHEMA = pa.schema([(ID_COLUMN, pa.large_string()), ("src", pa.int32())])
BATCH_SCHEMA = pa.schema([(ID_COLUMN, pa.large_string()), ("file", pa.int32())])


@dataclass(frozen=True)
class IdOverlap:
    """Ids of a new file that accepted files already brought."""

    count: int
    examples: tuple[str, ...]
    earlier: tuple[str, ...] = field(default=())  # content hashes of the files that had them


NO_OVERLAP = IdOverlap(0, ())


@dataclass(frozen=True)
class IdFile:
    """A local Parquet file of ids (text column ``id``), as staged or accepted, and its size
    from the Parquet metadata (nothing read yet)."""

    sha256: str
    path: Path
    rows: int
    bytes: int  # decoded size of its ids
    largest_group: int  # decoded bytes of its largest row group

    @classmethod
    def open(cls, sha256: str, path: Path) -> IdFile:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        column = meta.schema.to_arrow_schema().get_field_index(ID_COLUMN)
        if column < 0:
            raise ValueError(f"{path}: an id file needs a column {ID_COLUMN!r}")
        groups = [
            meta.row_group(g).column(column).total_uncompressed_size
            for g in range(meta.num_row_groups)
        ]
        return cls(sha256, Path(path), meta.num_rows, sum(groups), max(groups, default=0))

    @property
    def heavy(self) -> bool:
        return self.rows > MARK_ROWS or self.largest_group > MARK_BYTES


def iter_ids(path: Path) -> Iterator[pa.Array]:
    """The file's ids as text, at most :data:`ID_ROW_GROUP` at a time (a missing id is none)."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering holds whole row groups
    for batch in source.iter_batches(batch_size=ID_ROW_GROUP, columns=[ID_COLUMN]):
        ids = batch.column(0)
        if pa.types.is_dictionary(ids.type):
            ids = ids.dictionary_decode()
        ids = ids.cast(pa.large_string())
        yield ids.drop_null() if ids.null_count else ids


class IdWriter:
    """A local id file written chunk by chunk, in row groups of at most :data:`ID_ROW_GROUP`
    (what :meth:`retrain.ledger.Ledger.stage_ids` uploads as is)."""

    def __init__(self, where: Path | BinaryIO) -> None:
        """``where``: a local path, or a writable binary file (e.g. a buffer to upload)."""
        import pyarrow.parquet as pq

        schema = pa.schema([(ID_COLUMN, pa.string())])
        self._writer = pq.ParquetWriter(
            where if not isinstance(where, Path) else str(where), schema
        )
        self.rows = 0

    def add(self, ids: Any) -> None:
        """Append ids (a pandas Series or an Arrow array: written as text)."""
        if not isinstance(ids, pa.Array | pa.ChunkedArray):
            ids = pa.array(ids.astype(str).to_numpy(), pa.string())
        table = pa.table({ID_COLUMN: ids.cast(pa.string())})
        self._writer.write_table(table, row_group_size=ID_ROW_GROUP)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> IdWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Shared:
    """Ids of a batch, none in the history, that several of its files have."""

    files: tuple[str, ...]  # their content hashes, in the batch's order
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class BatchOverlap:
    """What :func:`check` found for a batch's files (by content hash)."""

    history: Mapping[str, IdOverlap] = field(default_factory=dict)  # ids ingested before
    shared: tuple[Shared, ...] = ()  # ids shared within the batch, not in the history
    parts: int = 0  # partitions the pass used (0: nothing to compare, nothing read)

    def overlap(self, sha256: str, accepted: Sequence[str] = ()) -> IdOverlap:
        """The file's ids already ingested: by the history, or by the batch's files
        ``accepted`` before it (content hashes, in the order they were accepted)."""
        before = self.history.get(sha256, NO_OVERLAP)
        order = {s: n for n, s in enumerate(accepted) if s != sha256}
        count, examples, mates = before.count, [], set()
        for group in self.shared:
            if sha256 in group.files and (hit := [f for f in group.files if f in order]):
                count += group.count
                examples += group.examples
                mates.update(hit)
        return IdOverlap(
            count,
            (before.examples + tuple(sorted(examples)))[:EXAMPLES],
            before.earlier + tuple(sorted(mates, key=order.__getitem__)),
        )


def parts_for(files: Iterable[IdFile]) -> int:
    """Partitions that keep each at about ``spill.PART_ROWS`` ids and :data:`PART_BYTES`."""
    files = list(files)
    by_rows = spill.parts_for(sum(f.rows for f in files), spill.PART_ROWS)
    return max(by_rows, -(-sum(f.bytes for f in files) // PART_BYTES))


def check(
    history: Sequence[IdFile],
    batch: Sequence[IdFile],
    workdir: Path,
    *,
    reading: Callable[[str], AbstractContextManager[Any]] | None = None,
) -> BatchOverlap:
    """Every batch file's ids found in the history, and the batch's ids its files share, in
    one pass: each file is read once, row group by row group, and deleted once spilled
    (``workdir`` holds the partitions until the pass ends; local disk peaks at about the id
    files plus their partitions). ``reading(sha256)`` wraps the reading of each heavy batch
    file (:attr:`IdFile.heavy`): its route death marker."""
    if not batch or (len(batch) == 1 and not any(f.rows for f in history)):
        return BatchOverlap()
    parts = parts_for((*history, *batch))
    tally = _Tally(len(batch))
    with (
        spill.Spill(workdir / "history", parts, HISTORY_SCHEMA, ID_COLUMN) as known,
        spill.Spill(workdir / "batch", parts, BATCH_SCHEMA, ID_COLUMN) as new,
    ):
        for n, f in enumerate(history):
            _spill(f, known, "src", n)
        for n, f in enumerate(batch):
            marker = reading(f.sha256) if reading and f.heavy else contextlib.nullcontext()
            with marker:
                _spill(f, new, "file", n)
        for part in range(parts):
            if not new.rows[part]:
                continue
            ids = new.read(part)
            if known.rows[part]:
                ids = _history_hits(ids, known.read(part), tally)
            if len(batch) > 1 and ids.num_rows:
                _shared(ids, tally)
    for spilled in (known, new):  # the disk they took is free before the claims and moves
        shutil.rmtree(spilled.directory, ignore_errors=True)
    return tally.result([f.sha256 for f in history], [f.sha256 for f in batch], parts)


def _spill(f: IdFile, into: spill.Spill, column: str, index: int) -> None:
    for ids in iter_ids(f.path):
        into.add(pa.table({ID_COLUMN: ids, column: pa.array(np.full(len(ids), index, np.int32))}))
    f.path.unlink(missing_ok=True)  # its ids are in the partitions now


class _Tally:
    """What the partitions found so far, merged (each id lives in exactly one partition)."""

    def __init__(self, files: int) -> None:
        self.count = [0] * files
        self.examples: list[list[str]] = [[] for _ in range(files)]
        self.earlier: list[set[int]] = [set() for _ in range(files)]
        self.shared: dict[tuple[int, ...], tuple[int, list[str]]] = {}

    def hits(self, file: int, ids: pa.Array, srcs: np.ndarray) -> None:
        distinct = pc.unique(ids)
        self.count[file] += len(distinct)
        self.examples[file] = _smallest(self.examples[file] + _smallest_of(distinct))
        self.earlier[file].update(np.unique(srcs).tolist())

    def share(self, files: tuple[int, ...], count: int, examples: list[str]) -> None:
        before, seen = self.shared.get(files, (0, []))
        self.shared[files] = (before + count, _smallest(seen + examples))

    def result(self, history: list[str], batch: list[str], parts: int) -> BatchOverlap:
        found = {
            batch[f]: IdOverlap(
                self.count[f],
                tuple(self.examples[f]),
                tuple(history[s] for s in sorted(self.earlier[f])),
            )
            for f in range(len(batch))
            if self.count[f]
        }
        shared = tuple(
            Shared(tuple(batch[f] for f in files), count, tuple(examples))
            for files, (count, examples) in sorted(self.shared.items())
        )
        return BatchOverlap(found, shared, parts)


def _smallest(values: list[str]) -> list[str]:
    return sorted(set(values))[:EXAMPLES]


def _smallest_of(values: pa.Array) -> list[str]:
    table = pa.table({ID_COLUMN: values})
    picked = pc.select_k_unstable(table, k=EXAMPLES, sort_keys=[(ID_COLUMN, "ascending")])
    return values.take(picked).to_pylist()


def _history_hits(part: pa.Table, known: pa.Table, tally: _Tally) -> pa.Table:
    """Tally the partition's batch ids that the history has; return the other rows.

    Each id found is charged to the first history file (in key order) that has it: the
    ``earlier`` files then name files that brought the ids, without a row per id and history
    file (an id upserted daily is in every day's file)."""
    found = pc.is_in(part[ID_COLUMN], value_set=known[ID_COLUMN])
    if not pc.any(found).as_py():
        return part
    hits = part.filter(found)
    known = known.filter(pc.is_in(known[ID_COLUMN], value_set=hits[ID_COLUMN]))
    first = known.group_by(ID_COLUMN).aggregate([("src", "min")])
    where = pc.index_in(hits[ID_COLUMN], value_set=first[ID_COLUMN])
    srcs = first["src_min"].take(where).to_numpy()
    ids = hits[ID_COLUMN].combine_chunks()
    files = hits["file"].to_numpy()
    for file, rows in _runs(files):
        tally.hits(file, ids.take(rows), srcs[rows])
    return part.filter(pc.invert(found))


def _runs(files: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Each file index with the positions of its rows."""
    if not len(files):
        return
    order = np.argsort(files, kind="stable")
    values, starts = np.unique(files[order], return_index=True)
    for value, start, stop in zip(values, starts, [*starts[1:], len(order)], strict=True):
        yield int(value), order[start:stop]


def _shared(part: pa.Table, tally: _Tally) -> None:
    """Tally the partition's ids that several batch files have, by the set of those files."""
    counts = pc.value_counts(part[ID_COLUMN])
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if not len(repeated):
        return
    rows = part.filter(pc.is_in(part[ID_COLUMN], value_set=repeated))
    rows = rows.take(pc.sort_indices(rows, [(ID_COLUMN, "ascending"), ("file", "ascending")]))
    ids, files = rows[ID_COLUMN].combine_chunks(), rows["file"].to_numpy()
    first_of_id = _changes(ids)
    keep = first_of_id | np.concatenate(([True], files[1:] != files[:-1]))  # (id, file) once
    ids, files, first_of_id = ids.filter(pa.array(keep)), files[keep], first_of_id[keep]
    starts = np.flatnonzero(first_of_id)
    sizes = np.diff(np.append(starts, len(files)))
    offsets = pa.array(np.append(starts, len(files)).astype(np.int32))
    sets = pc.binary_join(pa.ListArray.from_arrays(offsets, pa.array(files).cast(pa.string())), ",")
    several = sizes > 1  # an id repeated within one file only is none of this
    sets = sets.filter(pa.array(several))
    distinct = ids.take(pa.array(starts[several]))  # sorted: the first of a set are its smallest
    encoded = pc.dictionary_encode(sets)
    codes = encoded.indices.to_numpy()
    for code, rows_of_set in _runs(codes):
        files_of_set = tuple(int(f) for f in encoded.dictionary[code].as_py().split(","))
        tally.share(
            files_of_set, len(rows_of_set), distinct.take(rows_of_set[:EXAMPLES]).to_pylist()
        )


def _changes(values: pa.Array) -> np.ndarray:
    """True where a value differs from the one before it (and at the first)."""
    changed = np.ones(len(values), dtype=bool)
    if len(values) > 1:
        differs = pc.not_equal(values.slice(1), values.slice(0, len(values) - 1))
        changed[1:] = differs.to_numpy(zero_copy_only=False)
    return changed
