"""A landed file validated chunk by chunk, with the verdict GX gives the whole file, in memory
bounded by the chunk whatever the file's size.

The raw suite runs split in two (:func:`validation.context.classify_raw_expectation`):

- the row-wise expectations run as a GX checkpoint on each chunk; their counts add up and the
  examples of the first failing chunks are kept, as a whole-file run lists them.
- the totals (row count, missing shares, uniqueness) are counted over the chunks: rows and
  missing values as they come, each unique column's values spilled to hash partitions on local
  disk (:mod:`validation.uniqueness`). Their results are GX's own items, taken from the totals
  checkpoint run on the file's columns without rows (a column the file lacks fails there as it
  would in a whole-file run), with the file's counts put in.

The ids ingest stages are written the same way, chunk by chunk, to a local Parquet file.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrain.id_overlap import IdWriter
from retrain.spill import parts_for
from validation.context import (
    NOT_NULL,
    RAW_ROWS_CHECKPOINT,
    RAW_TOTALS_CHECKPOINT,
    RESULT_FORMAT,
    ROW_COUNT,
    UNIQUE,
    ChunkedRawGate,
    expectation_key,
    get_chunked_raw_gate,
)
from validation.gates import (
    RawValidation,
    assembled_validation,
    exception_of,
    gate_result,
    partial_counts,
    raw_file_view,
    run_checkpoint,
    run_raw_checkpoint,
    text_ids,
    validate_raw_file,
)
from validation.uniqueness import UniqueCheck

if TYPE_CHECKING:
    from retrain.config import Config

IDS_FILE = "ids.parquet"
# Values a uniqueness partition is aimed at: finding its duplicates holds it, a hash table of it
# and the rows that repeat (~25 MB for 250k text ids), within a light task's memory.
UNIQUE_PART_ROWS = 250_000
MAX_PARTS = 512  # open partition files per unique column (beyond: larger partitions)


def validate_raw_chunks(
    chunks: Iterable[pd.DataFrame],
    cfg: Config,
    *,
    run_name: str,
    workdir: Path,
    rows_hint: int = 0,
) -> RawValidation:
    """Validate one landed file given as chunks (:func:`retrain.tables.iter_table`).

    A single chunk is simply validated whole (its ids come back in memory). Otherwise local
    files go under ``workdir`` (the caller's, e.g. a temporary directory: the ids file is
    returned in it): the ids (:data:`IDS_FILE`) and the uniqueness partitions, as many as
    ``rows_hint`` rows need (an estimate: the file's size is enough). An unreadable chunk
    raises :class:`retrain.tables.UnreadableFile` as :func:`retrain.tables.read_table` would.
    """
    iterator = iter(chunks)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no chunks (iter_table yields one even for a file without rows)")
    second = next(iterator, None)
    if second is None:
        ids = text_ids(first, cfg.dataset.id_column)
        result = validate_raw_file(first, cfg, run_name=run_name)
        return RawValidation(result=result, rows=len(first), ids=ids)
    parts = min(MAX_PARTS, parts_for(rows_hint, UNIQUE_PART_ROWS))
    run = _ChunkedRun(get_chunked_raw_gate(cfg), cfg, run_name, Path(workdir), parts)
    try:
        run.add(first)
        del first  # from here on, one chunk at a time
        run.add(second)
        del second
        for chunk in iterator:
            run.add(chunk)
            del chunk  # not alive while the next one is parsed
        return run.finish()
    finally:
        run.close()


def _release_freed_memory() -> None:
    """Return what the allocators keep of a freed chunk to the system: pyarrow's (its text
    columns) and glibc's (GX's and pandas' temporaries, spread over the threads' arenas). One
    chunk's pages rarely fit the next, and over a 1M-row file tens of MB of them pile up."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # ~2 ms
    if (libc := _glibc()) is not None:
        libc.malloc_trim(0)  # ~1 ms


@functools.cache
def _glibc() -> Any:
    """glibc, for ``malloc_trim`` (None elsewhere: musl, macOS)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


class _ChunkedRun:
    """State of one chunked validation: merged row-wise results, counts, spilled values."""

    def __init__(
        self, gate: ChunkedRawGate, cfg: Config, run_name: str, workdir: Path, parts: int
    ) -> None:
        self.gate, self.cfg, self.run_name = gate, cfg, run_name
        self.results: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {}
        self.chunks = 0
        self.rows = 0
        self.empty: pd.DataFrame | None = None  # the view's columns, without rows
        workdir.mkdir(parents=True, exist_ok=True)
        self._spills = Path(tempfile.mkdtemp(prefix="unique-", dir=workdir))
        self.unique = {
            column: UniqueCheck(column, self._spills / str(i), parts)
            for i, column in enumerate(gate.unique_columns)
        }
        self.missing = {column: _Missing() for column in gate.null_columns}
        self.ids_path = workdir / IDS_FILE
        self._ids: IdWriter | None = None

    def add(self, chunk: pd.DataFrame) -> None:
        view = raw_file_view(chunk, self.cfg)
        if self.empty is None:
            self.empty = view.iloc[:0].copy()
        elif list(view.columns) != list(self.empty.columns):
            raise ValueError(f"chunk {self.chunks} has other columns than the first chunk")
        validation = run_raw_checkpoint(self.gate.context, RAW_ROWS_CHECKPOINT, view, self.run_name)
        for item in validation["results"]:
            key = _item_key(item)
            self.results[key] = _merge_item(self.results.get(key), item)
        if not self.meta:  # without the batch markers: they would describe the first chunk only
            meta = validation.get("meta") or {}
            self.meta = {k: v for k, v in meta.items() if "batch" not in k}
        for column, check in self.unique.items():
            if column in view.columns:
                check.add(view[column])
        for column, missing in self.missing.items():
            if column in view.columns:
                missing.add(view[column].isna().to_numpy(), self.rows)
        del view
        id_column = self.cfg.dataset.id_column
        if id_column in chunk.columns:
            self._write_ids(text_ids(chunk, id_column))
        self.chunks += 1
        self.rows += len(chunk)
        _release_freed_memory()

    def _write_ids(self, ids: pd.Series) -> None:
        import pyarrow as pa

        if self._ids is None:
            self._ids = IdWriter(self.ids_path)
        self._ids.add(pa.array(ids.array))

    def finish(self) -> RawValidation:
        assert self.empty is not None
        totals = run_checkpoint(self.gate.context, RAW_TOTALS_CHECKPOINT, self.empty, self.run_name)
        for item in totals["results"]:
            self.results[_item_key(item)] = self._counted(item)
        position = {key: i for i, key in enumerate(self.gate.order)}
        results = sorted(self.results.values(), key=lambda r: position.get(_item_key(r), 1 << 30))
        meta = {**self.meta, "chunks": self.chunks, "rows": self.rows}
        validation = assembled_validation(self.gate.suite, results, meta)
        result = gate_result(validation, self.cfg.dataset.column_names)
        if self._ids is not None:
            self._ids.close()
            self._ids = None
            ids: pd.Series | Path = self.ids_path
        else:
            ids = text_ids(pd.DataFrame(), self.cfg.dataset.id_column)
        return RawValidation(result=result, rows=self.rows, ids=ids)

    def _counted(self, item: dict[str, Any]) -> dict[str, Any]:
        """A totals item of the run without rows, with the file's counts (a check that raised
        there, e.g. on a missing column, stays as GX reported it)."""
        if exception_of(item):
            return item
        config = item["expectation_config"]
        if config["type"] == ROW_COUNT:
            success = _between(self.rows, config["kwargs"])
            return {**item, "success": success, "result": {"observed_value": self.rows}}
        limit = int(RESULT_FORMAT["partial_unexpected_count"])
        column = config["kwargs"].get("column")
        if config["type"] == NOT_NULL and column in self.missing:
            success, result = self.missing[column].result(self.rows, config["kwargs"], limit)
            return {**item, "success": success, "result": result}
        if config["type"] == UNIQUE and (check := self.unique.get(column)):
            success, result = check.result(limit)
            counts = partial_counts(result["partial_unexpected_list"])
            if counts is not None:
                result["partial_unexpected_counts"] = counts
            return {**item, "success": success, "result": result}
        raise ValueError(f"no count for {config['type']}: classify_raw_expectation let it in")

    def close(self) -> None:
        import shutil

        if self._ids is not None:
            self._ids.close()
        shutil.rmtree(self._spills, ignore_errors=True)


class _Missing:
    """One column's missing values over the chunks: the count and the first rows."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[int] = []

    def add(self, mask: np.ndarray, offset: int) -> None:
        self.count += int(mask.sum())
        wanted = int(RESULT_FORMAT["partial_unexpected_count"]) - len(self.first)
        if wanted > 0:
            self.first += (np.flatnonzero(mask)[:wanted] + offset).tolist()

    def result(self, rows: int, kwargs: dict[str, Any], limit: int) -> tuple[bool, dict[str, Any]]:
        """ExpectColumnValuesToNotBeNull's verdict and SUMMARY result on the file's counts."""
        # its own rule (ExpectColumnValuesToNotBeNull._validate), not _mostly_success
        success = rows == 0 or (rows - self.count) / rows >= kwargs.get("mostly", 1)
        first = self.first[:limit]
        result: dict[str, Any] = {
            "element_count": rows,
            "unexpected_count": self.count,
            "unexpected_percent": self.count / rows * 100 if rows else None,
            "partial_unexpected_list": [None] * len(first),
            "partial_unexpected_index_list": first,
        }
        if (counts := partial_counts(result["partial_unexpected_list"])) is not None:
            result["partial_unexpected_counts"] = counts
        return success, result


def _between(n: int, kwargs: dict[str, Any]) -> bool:
    """ExpectTableRowCountToBeBetween on ``n`` rows."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and (n <= low if kwargs.get("strict_min") else n < low):
        return False
    return not (high is not None and (n >= high if kwargs.get("strict_max") else n > high))


def _item_key(item: dict[str, Any]) -> str:
    config = item["expectation_config"]
    return expectation_key(config["type"], config["kwargs"])


def _merge_item(merged: dict[str, Any] | None, item: dict[str, Any]) -> dict[str, Any]:
    """One row-wise expectation over the chunks so far: failed if it failed in any chunk, with
    the counts added up and the examples of the first failing chunks (as a whole-file run would
    list them: in file order, up to the result format's limit)."""
    if merged is None:
        return item
    if exception_of(merged):
        return merged  # as in a whole-file run, a check that could not run has no counts
    if exception_of(item):
        return {**merged, "success": False, "result": {}, "exception_info": item["exception_info"]}
    out = {**merged, "success": bool(merged["success"] and item["success"])}
    before, after = merged.get("result") or {}, item.get("result") or {}
    if "element_count" in before and "element_count" in after:
        out["result"] = _merge_counts(before, after)
    elif merged["success"] and not item["success"]:
        out["result"] = after  # e.g. the column set: the first failing chunk explains it
    return out


def _merge_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """GX's SUMMARY map result of two consecutive parts of a column (see GX's
    ``_format_map_output``: same fields, same percentages)."""
    limit = int(RESULT_FORMAT["partial_unexpected_count"])
    elements = int(a["element_count"]) + int(b["element_count"])
    unexpected = int(a.get("unexpected_count") or 0) + int(b.get("unexpected_count") or 0)
    has_missing = "missing_count" in a or "missing_count" in b
    missing = int(a.get("missing_count") or 0) + int(b.get("missing_count") or 0)
    total = unexpected / elements * 100 if elements else None
    nonmissing = elements - missing
    percent = total if not has_missing else (unexpected / nonmissing * 100 if nonmissing else None)
    out: dict[str, Any] = {
        "element_count": elements,
        "unexpected_count": unexpected,
        "unexpected_percent": percent if elements else None,
    }
    if has_missing:
        out["missing_count"] = missing
        out["missing_percent"] = missing / elements * 100 if elements else None
        out["unexpected_percent_total"] = total
        out["unexpected_percent_nonmissing"] = percent if elements else None
    for key in ("partial_unexpected_list", "partial_unexpected_index_list"):
        if key in a or key in b:
            out[key] = [*(a.get(key) or []), *(b.get(key) or [])][:limit]
    examples = out.get("partial_unexpected_list")
    if examples is not None and (counts := partial_counts(examples)) is not None:
        out["partial_unexpected_counts"] = counts
    return out
