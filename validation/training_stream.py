"""The training-set gate without the training set in memory: exact streaming checks plus the GX
training checkpoint on a seeded sample, as one :class:`validation.gates.GateResult`.

:func:`validation.gates.validate_training_set` runs the training checkpoint on the whole
concatenated frame: GX's working memory grows with it (several GB at 5M rows). Here:

1. The GX training checkpoint (the suite of :mod:`validation.suites`, unchanged) runs on a
   sample of at most ``sample_rows`` rows (:data:`SAMPLE_ROWS`), drawn uniformly without
   replacement among the training set's rows with ``numpy.random.default_rng(seed)``
   (:data:`SAMPLE_SEED`): the same files give the same sample, so the same verdict.
2. Every expectation of that suite that can be decided exactly without the table is replaced
   by its exact result (counts over all rows, examples in row order), computed from the
   :class:`retrain.trainset.RowIndex` and one streamed pass over the bounded numeric columns:

   - the row count, and the target's mean (the positive share: both classes present within
     the configured limits);
   - the target never missing and in {0, 1};
   - the id column unique: duplicates are found among the 64-bit id hashes (sorted a range of
     values at a time: :func:`retrain.trainset.duplicated_hashes`), then the ids of the rows
     whose hash repeats are read back and compared, so a hash collision (probability
     ~ n**2 / 2**65: 1e-5 at 20M rows) can never reject a set;
   - each column present in every file, numeric ranges over every row.

   The time column is also checked never missing (not in the suite: the table gate never
   needed it, but the streamed split orders by it). Anything else in the suite keeps its
   sampled verdict: the result's ``meta`` lists which expectations were exact.

Memory: the index (17 bytes a row, shared with training; a spilled one pages its time and id
hash in only for the exact checks, and not while GX runs), a sorted range of the id hashes, a
read batch, and GX on the sample. ``meta["responsible_files"]`` names the files holding rows
that fail an exact check (for ``retrain retract``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.trainset import (
    DEFAULT_BATCH_ROWS,
    NAT,
    NULL_ID_HASH,
    TARGET_MISSING,
    TARGET_OTHER,
    RowIndex,
    duplicated_hashes,
    in_sorted,
    read_rows,
    release_memory,
    selected_batches,
)
from validation.context import RESULT_FORMAT, TRAINING_CHECKPOINT, expectation_key, get_context
from validation.gates import (
    GateResult,
    assembled_validation,
    gate_result,
    partial_counts,
    run_checkpoint,
)

SAMPLE_ROWS = 100_000  # GX's working memory is ~1 KB a row: ~100 MB for the sample
SAMPLE_SEED = 0
_EXAMPLES = int(RESULT_FORMAT["partial_unexpected_count"])
_NOT_NULL = "expect_column_values_to_not_be_null"


def validate_training_stream(
    paths: Sequence[str | Path],
    index: RowIndex,
    cfg: Config,
    *,
    run_name: str,
    mask: np.ndarray | None = None,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = SAMPLE_SEED,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> GateResult:
    """Gate the rows of ``mask`` (default: every row of ``index``; after an upsert, the rows
    :func:`retrain.trainset.newest_per_id` kept) of the feature files ``paths``."""
    mask = np.ones(index.n_rows, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    ds = cfg.dataset
    sample = seeded_sample(mask, sample_rows, seed)
    checks = _ExactChecks(paths, index, mask, cfg, batch_rows)
    checks.scan_index()  # before GX: its working memory and the paged-in index never add up
    release_memory()
    frame = _sample_frame(paths, index, sample, cfg)
    validation = run_checkpoint(get_context(cfg), TRAINING_CHECKPOINT, frame, run_name)
    del frame
    results, exact = [], []
    for item in validation["results"]:
        config = item["expectation_config"]
        replaced = checks.result(config["type"], config["kwargs"])
        if replaced is not None:
            item = {**item, **replaced}
            exact.append(expectation_key(config["type"], config["kwargs"]))
        results.append(item)
    time_check = _time_not_null(results, checks, ds.time_column)
    if time_check is not None:
        results.append(time_check)
        exact.append(expectation_key(_NOT_NULL, {"column": ds.time_column}))
    meta = {k: v for k, v in (validation.get("meta") or {}).items() if "batch" not in k}
    meta |= {
        "rows": int(np.count_nonzero(mask)),
        "sample": {"rows": len(sample), "seed": seed, "limit": sample_rows},
        "exact": exact,
        "responsible_files": sorted(str(paths[f]) for f in checks.responsible),
    }
    return gate_result(
        assembled_validation(validation["suite_name"], results, meta), ds.column_names
    )


def seeded_sample(mask: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Positions of at most ``rows`` rows of ``mask``, uniform without replacement, sorted."""
    total = int(np.count_nonzero(mask))
    k = min(rows, total)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    ranks = np.sort(np.random.default_rng(seed).choice(total, size=k, replace=False))
    positions = np.empty(k, dtype=np.int64)
    seen = done = 0
    chunk = 1 << 20
    for start in range(0, len(mask), chunk):  # the ranks-th selected rows, without an array
        part = np.flatnonzero(mask[start : start + chunk])  # of every selected position
        upto = np.searchsorted(ranks, seen + len(part))
        positions[done:upto] = start + part[ranks[done:upto] - seen]
        seen += len(part)
        done = upto
    return positions


def _sample_frame(
    paths: Sequence[str | Path], index: RowIndex, sample: np.ndarray, cfg: Config
) -> pd.DataFrame:
    if len(sample) or not paths:
        return read_rows(paths, index, sample, ds=cfg.dataset)
    import pyarrow.parquet as pq

    return pq.read_schema(paths[0]).empty_table().to_pandas()  # no rows: still the columns


class _ExactChecks:
    """Exact results for the expectations of the training suite that allow them."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        index: RowIndex,
        mask: np.ndarray,
        cfg: Config,
        batch_rows: int,
    ) -> None:
        import pyarrow.parquet as pq

        self.paths, self.index, self.mask, self.cfg = paths, index, mask, cfg
        self.batch_rows = batch_rows
        self.rows = int(np.count_nonzero(mask))
        self.files = [f for f in range(index.n_files) if index.file_mask(mask, f).any()]
        self.schemas = {f: set(pq.read_schema(paths[f]).names) for f in self.files}
        every = set().union(*self.schemas.values())
        self.partial = {c for c in every if any(c not in s for s in self.schemas.values())}
        self.responsible: set[int] = set()
        self._found_duplicates: tuple[np.ndarray, list[Any], int] | None = None
        self._missing_times: np.ndarray | None = None
        self._ranges: dict[str, dict[str, Any]] | None = None

    def result(self, kind: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """``{"success", "result", "exception_info"}`` for an expectation, or None (sampled)."""
        ds = self.cfg.dataset
        column = kwargs.get("column")
        if kind == "expect_table_row_count_to_be_between":
            return _verdict(_within(self.rows, kwargs), {"observed_value": self.rows})
        if kind == "expect_column_to_exist":
            lacking = [str(self.paths[f]) for f in self.files if column not in self.schemas[f]]
            return _verdict(not lacking, {"details": {"files_without_it": lacking}})
        if column in self.partial:
            return None  # GX's sampled verdict (an exception) says it cannot be checked
        if column == ds.target:
            return self._target(kind, kwargs)
        if kind == "expect_column_values_to_be_unique" and column == ds.id_column:
            return self._unique(column)
        if kind == "expect_column_values_to_be_between":
            return self._range(column, kwargs)
        return None

    def scan_index(self) -> None:
        """The checks that scan the index's id hashes and times over every row, done at once
        (their results are kept for :meth:`result`); the pages go afterwards."""
        if self.cfg.dataset.id_column not in self.partial:
            self._duplicates()
        self.missing_times()

    def _duplicates(self) -> tuple[np.ndarray, list[Any], int]:
        """Positions of the rows sharing a present id with another row (GX's count), confirmed
        on the ids; the first of those ids; and the number of rows with an id."""
        if self._found_duplicates is None:
            column = self.cfg.dataset.id_column
            present = self.mask & (self.index.id_hash != NULL_ID_HASH)
            repeated = duplicated_hashes(self.index.id_hash, present)
            candidates = np.flatnonzero(present & in_sorted(self.index.id_hash, repeated))
            self.index.release()
            duplicates, examples = np.zeros(0, dtype=np.int64), []
            if len(candidates):
                ids = read_rows(self.paths, self.index, candidates, [column])[column]
                shared = ids.duplicated(keep=False).to_numpy()
                duplicates, examples = candidates[shared], ids[shared].head(_EXAMPLES).tolist()
            self._found_duplicates = duplicates, examples, int(np.count_nonzero(present))
        return self._found_duplicates

    def missing_times(self) -> np.ndarray:
        """Positions of the rows without a time."""
        if self._missing_times is None:
            self._missing_times = np.flatnonzero(self.mask & (self.index.time == NAT))
            self.index.release()
        return self._missing_times

    def _blame(self, positions: np.ndarray) -> None:
        self.responsible.update(int(f) for f in np.unique(self.index.file_of(positions)))

    def _target(self, kind: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        target = self.index.target
        chosen = target[self.mask]
        missing = int(np.count_nonzero(chosen == TARGET_MISSING))
        if kind == _NOT_NULL and kwargs.get("mostly") is None:
            where = np.flatnonzero(self.mask & (target == TARGET_MISSING)) if missing else None
            if where is not None:
                self._blame(where)
            return _verdict(not missing, _null_result(self.rows, where))
        if kind == "expect_column_values_to_be_in_set" and sorted(kwargs["value_set"]) == [0, 1]:
            bad = np.flatnonzero(self.mask & (target == TARGET_OTHER))
            examples: list[Any] = []
            if len(bad):
                self._blame(bad)
                column = self.cfg.dataset.target
                shown = bad[:_EXAMPLES]
                examples = read_rows(self.paths, self.index, shown, [column])[column].tolist()
            result = _map_result(self.rows, len(bad), examples, missing=missing, where=bad)
            return _verdict(not len(bad), result)
        if kind == "expect_column_mean_to_be_between":
            labelled = chosen[(chosen == 0) | (chosen == 1)]
            mean = float(labelled.mean()) if len(labelled) else None
            ok = mean is not None and _within(mean, kwargs)
            return _verdict(ok, {"observed_value": mean})
        return None

    def _unique(self, column: str) -> dict[str, Any]:
        """Rows sharing a present id with another row (GX's count), confirmed on the ids."""
        duplicates, examples, present = self._duplicates()
        if len(duplicates):
            self._blame(duplicates)
        missing = self.rows - present
        result = _map_result(
            self.rows, len(duplicates), examples, missing=missing, where=duplicates
        )
        return _verdict(not len(duplicates), result)

    def _range(self, column: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if self._ranges is None:
            self._ranges = self._scan_ranges()
        found = self._ranges.get(column)
        if found is None:
            return None
        result = _map_result(
            self.rows,
            found["unexpected"],
            found["examples"],
            missing=found["missing"],
            where=np.asarray(found["where"], dtype=np.int64),
        )
        return _verdict(not found["unexpected"], result)

    def _scan_ranges(self) -> dict[str, dict[str, Any]]:
        """One streamed pass over every column with a range rule in the suite, all files."""
        bounds = {
            c.name: (c.min, c.max)
            for c in self.cfg.dataset.columns
            if c.dtype in ("int", "float") and (c.min is not None or c.max is not None)
        }
        found = {c: {"unexpected": 0, "missing": 0, "examples": [], "where": []} for c in bounds}
        for f in self.files:
            columns = [c for c in bounds if c in self.schemas[f]]
            selected = self.index.file_mask(self.mask, f)
            batches = selected_batches(self.paths[f], columns, selected, self.batch_rows)
            for position, batch in batches:
                for name in columns:
                    values = batch.column(name).to_numpy(zero_copy_only=False).astype(float)
                    low, high = bounds[name]
                    missing = np.isnan(values)
                    bad = ~missing & (
                        (values < (-math.inf if low is None else low))
                        | (values > (math.inf if high is None else high))
                    )
                    entry = found[name]
                    entry["missing"] += int(np.count_nonzero(missing))
                    if bad.any():  # rare: only then the positions of the file's rows
                        ranks = position + np.flatnonzero(bad)
                        where = self.index.offsets[f] + np.flatnonzero(selected)[ranks]
                        entry["unexpected"] += len(where)
                        room = _EXAMPLES - len(entry["examples"])
                        entry["examples"] += values[bad][:room].tolist()
                        entry["where"] += where[:room].tolist()
                        self.responsible.add(f)
        return found


def _time_not_null(
    results: list[dict[str, Any]], checks: _ExactChecks, time_column: str
) -> dict[str, Any] | None:
    """An item for "the time column is never missing", shaped like the suite's not-null items
    (the target has one to copy)."""
    template = next(
        (r for r in results if r["expectation_config"]["type"] == _NOT_NULL),
        None,
    )
    if template is None:
        return None
    item = copy.deepcopy(template)
    item["expectation_config"]["kwargs"] = {"column": time_column}
    item["expectation_config"]["id"] = None
    item["expectation_config"]["meta"] = {"added_by": "validation.training_stream"}
    missing = checks.missing_times()
    if len(missing):
        checks._blame(missing)
    verdict = _verdict(not len(missing), _null_result(checks.rows, missing))
    return {**item, **verdict}


def _verdict(success: bool, result: dict[str, Any]) -> dict[str, Any]:
    none = {"raised_exception": False, "exception_traceback": None, "exception_message": None}
    return {"success": bool(success), "result": result, "exception_info": none}


def _within(value: float, kwargs: dict[str, Any]) -> bool:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    return (low is None or value >= low) and (high is None or value <= high)


def _null_result(elements: int, where: np.ndarray | None) -> dict[str, Any]:
    """GX's SUMMARY result of a not-null expectation; ``where``: the missing rows' positions."""
    where = np.zeros(0, dtype=np.int64) if where is None else where
    missing = len(where)
    shown = [None] * min(missing, _EXAMPLES)
    result: dict[str, Any] = {
        "element_count": elements,
        "unexpected_count": missing,
        "unexpected_percent": missing / elements * 100 if elements else None,
        "partial_unexpected_list": shown,
    }
    if shown:
        result["partial_unexpected_counts"] = [{"value": None, "count": len(shown)}]
        result["partial_unexpected_index_list"] = [int(p) for p in where[:_EXAMPLES]]
    return result


def _map_result(
    elements: int,
    unexpected: int,
    examples: list[Any],
    *,
    missing: int,
    where: np.ndarray,
) -> dict[str, Any]:
    """GX's SUMMARY result of a column map expectation, from exact counts; the index list holds
    row positions in the training set (file order), as the concatenated table numbered them."""
    nonmissing = elements - missing
    percent = unexpected / nonmissing * 100 if nonmissing else None
    result: dict[str, Any] = {
        "element_count": elements,
        "unexpected_count": unexpected,
        "unexpected_percent": percent,
        "partial_unexpected_list": list(examples[:_EXAMPLES]),
        "missing_count": missing,
        "missing_percent": missing / elements * 100 if elements else None,
        "unexpected_percent_total": unexpected / elements * 100 if elements else None,
        "unexpected_percent_nonmissing": percent,
        "partial_unexpected_index_list": [int(p) for p in where[:_EXAMPLES]],
    }
    if (counts := partial_counts(result["partial_unexpected_list"])) is not None:
        result["partial_unexpected_counts"] = counts
    return result
