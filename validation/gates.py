"""Run the two GX checkpoints and turn their results into something a DAG can act on and log.

:class:`GateResult` is plain, frozen and JSON-able (Airflow XCom, quarantine reports) and its
:meth:`GateResult.summary` says in one paragraph why a file or training set was rejected. GX keeps
nothing: the result lives in the returned object only (see :mod:`validation.context`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrain.clip import shown
from retrain.config import Config, DatasetConfig
from retrain.tables import as_text, parse_timestamps
from validation.bounds import MESSAGE_CHARS, bounded_item, column_set_reason, quoted
from validation.context import (
    DATASOURCE,
    RAW_CHECKPOINT,
    RAW_ROWS_CHECKPOINT,
    RAW_TOTALS_CHECKPOINT,
    RESULT_FORMAT,
    TRAINING_CHECKPOINT,
    ChunkedRawGate,
    expectation_key,
    get_chunked_raw_gate,
    get_context,
)
from validation.suites import raw_suite_name

if TYPE_CHECKING:
    from great_expectations.data_context import EphemeralDataContext

_EXAMPLES = 3  # example values quoted per failure in a summary
# Rows per chunk when a landed file is validated in chunks (retrain.tables.iter_table): GX's
# working memory grows with the rows it checks at once (~1 GB for a 1M-row file in one piece),
# its fixed cost with the runs (~0.4 s each): 250k rows, a 1M-row file in 12 s (100k: 15 s)
# within ~580 MB (100k: ~520 MB).
RAW_CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class FailedExpectation:
    """One failed expectation: GX's type name, the column (None for table-level) and its result."""

    expectation_type: str
    column: str | None
    details: dict[str, Any] = field(default_factory=dict)  # kwargs, result, exception

    def describe(self) -> str:
        """Short human-readable reason, e.g. ``contract has unknown values ['platinum']``."""
        kwargs = self.details.get("kwargs", {})
        result = self.details.get("result") or {}
        col = self.column
        if exception := self.details.get("exception"):
            check = _CHECKS.get(self.expectation_type, self.expectation_type)
            return f"{col or 'table'} {check} not checked ({exception})"
        count = result.get("unexpected_count")
        plural = "s" if count != 1 else ""
        rows = f"{count} row{plural}"
        examples = ", ".join(quoted(v) for v in _unique_examples(result, _EXAMPLES))
        match self.expectation_type:
            case "file_readable":
                return f"file could not be read: {shown(self.details.get('error'), 500)}"
            case "expect_table_columns_to_match_set":
                return column_set_reason(_mismatched(result), kwargs.get("column_set") or [])
            case "expect_column_to_exist":
                return f"column {col} missing"
            case "expect_table_row_count_to_be_between":
                rows_seen, needed = result.get("observed_value"), kwargs.get("min_value")
                return f"only {rows_seen} rows (at least {needed} required)"
            case "expect_column_values_to_not_be_null":
                mostly = kwargs.get("mostly")
                allowed = f", at most {1 - mostly:.0%} allowed" if mostly is not None else ""
                share = result.get("unexpected_percent") or 0.0
                return f"{col} has {count} missing value{plural} ({share:.0f}%{allowed})"
            case "expect_column_values_to_be_numbers":
                return f"{col} values not numeric ({rows}, e.g. {examples})"
            case "expect_column_values_to_be_between":
                bounds = f"[{_num(kwargs.get('min_value'))}, {_num(kwargs.get('max_value'))}]"
                return f"{col} out of range {bounds} ({rows}, e.g. {examples})"
            case "expect_column_values_to_be_in_set":
                unknown = ", ".join(quoted(v) for v in _unique_examples(result, 10))
                return f"{col} has unknown values [{unknown}] ({rows})"
            case "expect_column_values_to_be_in_type_list":
                return f"{col} not parseable as timestamps ({rows}, e.g. {examples})"
            case "expect_column_values_to_be_unique":
                return f"{col} has duplicate values ({rows}, e.g. {examples})"
            case "expect_column_mean_to_be_between":
                mean, low, high = (
                    _num(result.get("observed_value")),
                    _num(kwargs.get("min_value")),
                    _num(kwargs.get("max_value")),
                )
                return f"{col} mean {mean} outside [{low}, {high}]"
        where = f" on {col}" if col else ""
        return f"{self.expectation_type}{where} failed"


# Summary order within a column, and the noun used when a check could not run.
_CHECKS = {
    "expect_table_row_count_to_be_between": "row count",
    "expect_table_columns_to_match_set": "column set",
    "expect_column_to_exist": "presence",
    "expect_column_values_to_not_be_null": "missing values",
    "expect_column_values_to_be_numbers": "numeric check",
    "expect_column_values_to_be_between": "range",
    "expect_column_values_to_be_in_set": "allowed values",
    "expect_column_values_to_be_in_type_list": "timestamp check",
    "expect_column_values_to_be_unique": "uniqueness",
    "expect_column_mean_to_be_between": "mean",
}


@dataclass(frozen=True)
class GateResult:
    """Outcome of one checkpoint run; ``result`` is GX's validation result as JSON-able dict."""

    success: bool
    suite: str
    evaluated: int
    failed: tuple[FailedExpectation, ...]
    statistics: dict[str, Any]
    result: dict[str, Any]

    def summary(self) -> str:
        """One paragraph: what passed, or which expectations failed and why."""
        if self.success:
            return f"all {self.evaluated} expectations of {self.suite} passed"
        missing = {f.column for f in self.failed if f.expectation_type == "expect_column_to_exist"}
        not_numeric = {
            f.column
            for f in self.failed
            if f.expectation_type == "expect_column_values_to_be_numbers"
        }
        reasons = []
        for failure in self.failed:
            # A missing column fails every expectation on it, and a range check cannot run on
            # text: the first reason explains the others.
            if failure.column in missing and failure.expectation_type != "expect_column_to_exist":
                continue
            if failure.column in not_numeric and failure.details.get("exception"):
                continue
            if _only_missing_columns(failure):
                continue
            reasons.append(failure.describe())
        if self.evaluated == 0:
            return "; ".join(reasons)
        return f"{len(self.failed)} of {self.evaluated} expectations failed: " + "; ".join(reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (e.g. for XCom or the quarantine report)."""
        return {
            "success": self.success,
            "suite": self.suite,
            "evaluated": self.evaluated,
            "summary": self.summary(),
            "failed": [
                {"expectation_type": f.expectation_type, "column": f.column, "details": f.details}
                for f in self.failed
            ],
            "statistics": self.statistics,
            "result": self.result,
        }


def validate_raw_file(df: pd.DataFrame, cfg: Config, *, run_name: str) -> GateResult:
    """Validate one landed file as returned by :func:`retrain.tables.read_table`.

    With ``[validation] extra_columns = "ignore"`` columns the config does not name are dropped
    first: they can neither fail the file nor reach training.
    """
    return validate_raw_view(raw_file_view(df, cfg), cfg, run_name=run_name)


def validate_raw_view(view: pd.DataFrame, cfg: Config, *, run_name: str) -> GateResult:
    """:func:`validate_raw_file` for a frame already turned into :func:`raw_file_view`."""
    context = get_context(cfg)  # first: it quiets GX's loggers before importing GX
    validation = run_raw_checkpoint(context, RAW_CHECKPOINT, view, run_name)
    return gate_result(validation, cfg.dataset.column_names)


def raw_file_view(df: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    view = raw_view(df, cfg.dataset)
    if cfg.validation.extra_columns == "ignore":
        configured = set(cfg.dataset.column_names)
        view = view[[c for c in view.columns if c in configured]]
    return view


@dataclass(frozen=True)
class RawValidation:
    """A landed file's raw verdict plus what ingest needs from the file, so the caller does not
    have to keep the whole parsed file for them."""

    result: GateResult
    rows: int
    # The file's id column as text, as the ledger stages it (empty if the file has none).
    ids: pd.Series = field(compare=False, repr=False)
    # validation.grouped: the files (positions in its input) this result was shared with.
    group: tuple[int, ...] = ()


def validate_raw_chunks(
    chunks: Iterable[pd.DataFrame], cfg: Config, *, run_name: str
) -> RawValidation:
    """Validate one landed file given as chunks (:func:`retrain.tables.iter_table`), with the
    verdict :func:`validate_raw_file` gives for the whole file, in memory bounded by the chunk.

    A single chunk is simply validated whole. Otherwise the raw suite runs split in two (see
    :func:`validation.context.classify_raw_expectation`): the row-wise expectations on each
    chunk, their counts added up and the examples of the first failing chunks kept; the others
    (row count, missing shares, uniqueness) once on a compact frame with the file's rows, the
    values of the columns that must be unique (the ids, which ingest needs anyway) and a
    missing-value marker per column with a missing-share limit. An unreadable chunk raises
    :class:`retrain.tables.UnreadableFile` as :func:`retrain.tables.read_table` would.
    """
    iterator = iter(chunks)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no chunks (iter_table yields one even for a file without rows)")
    second = next(iterator, None)
    id_column = cfg.dataset.id_column
    if second is None:
        ids = text_ids(first, id_column)
        result = validate_raw_file(first, cfg, run_name=run_name)
        return RawValidation(result=result, rows=len(first), ids=ids)
    run = _ChunkedRun(get_chunked_raw_gate(cfg), cfg, run_name)
    run.add(first)
    del first  # from here on, one chunk at a time
    run.add(second)
    del second
    for chunk in iterator:
        run.add(chunk)
        del chunk  # not alive while the next one is parsed
    return run.finish()


def _release_freed_memory() -> None:
    """Return what pyarrow's allocator keeps of freed chunks (their text columns) to the system:
    one chunk's pages rarely fit the next, and over a 1M-row file tens of MB of them pile up."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # ~2 ms


class _ChunkedRun:
    """State of one chunked validation: merged row-wise results and the compact frame's parts."""

    def __init__(self, gate: ChunkedRawGate, cfg: Config, run_name: str) -> None:
        self.gate, self.cfg, self.run_name = gate, cfg, run_name
        self.results: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {}
        self.chunks = 0
        self.rows = 0
        self.columns: list[str] | None = None  # the view's columns, the same in every chunk
        self.values: dict[str, list[pd.Series]] = {c: [] for c in gate.value_columns}
        self.missing: dict[str, list[np.ndarray]] = {c: [] for c in gate.null_columns}
        self.ids: list[pd.Series] = []
        self.ids_are_values = True  # the text ids are the id column's view values (no 2nd copy)

    def add(self, chunk: pd.DataFrame) -> None:
        view = raw_file_view(chunk, self.cfg)
        if self.columns is None:
            self.columns = list(view.columns)
        elif list(view.columns) != self.columns:
            raise ValueError(f"chunk {self.chunks} has other columns than the first chunk")
        validation = run_raw_checkpoint(self.gate.context, RAW_ROWS_CHECKPOINT, view, self.run_name)
        for item in validation["results"]:
            key = _item_key(item)
            self.results[key] = _merge_item(self.results.get(key), item)
        if not self.meta:  # without the batch markers: they would describe the first chunk only
            meta = validation.get("meta") or {}
            self.meta = {k: v for k, v in meta.items() if "batch" not in k}
        for name, parts in self.values.items():
            if name in view.columns:
                parts.append(view[name].reset_index(drop=True))
        for name, parts in self.missing.items():
            if name in view.columns:
                marker = np.ones(len(view), dtype=np.float16)
                marker[view[name].isna().to_numpy()] = np.nan
                parts.append(marker)
        id_column = self.cfg.dataset.id_column
        if id_column in chunk.columns:
            ids = text_ids(chunk, id_column).reset_index(drop=True)
            values = self.values.get(id_column)
            if values and ids.dtype == values[-1].dtype and ids.equals(values[-1]):
                ids = values[-1]
            else:
                self.ids_are_values = False
            self.ids.append(ids)
        self.chunks += 1
        self.rows += len(chunk)
        del view
        _release_freed_memory()

    def finish(self) -> RawValidation:
        index = pd.RangeIndex(self.rows)
        compact = pd.DataFrame(index=index)
        values: dict[str, pd.Series] = {}
        for name, value_parts in self.values.items():
            if value_parts:
                values[name] = _concat(value_parts, index)
                compact[name] = _equality_codes(values[name])
        while self.missing:  # one column's parts at a time: they and the whole never all coexist
            name, marker_parts = self.missing.popitem()
            if marker_parts:
                compact[name] = np.concatenate(marker_parts)
                marker_parts.clear()
        self.values.clear()
        _release_freed_memory()
        totals = run_checkpoint(self.gate.context, RAW_TOTALS_CHECKPOINT, compact, self.run_name)
        for item in totals["results"]:
            column = item["expectation_config"]["kwargs"].get("column")
            if column in values and compact[column] is not values[column]:
                item = _decoded(item, compact[column], values[column])
            self.results[_item_key(item)] = item
        del compact
        id_column = self.cfg.dataset.id_column
        if self.ids_are_values and id_column in values:
            ids = values[id_column].rename(id_column)
        else:
            ids = _concat(self.ids, index).rename(id_column) if self.ids else _no_ids(id_column)
        position = {key: i for i, key in enumerate(self.gate.order)}
        results = sorted(self.results.values(), key=lambda r: position.get(_item_key(r), 1 << 30))
        meta = {**self.meta, "chunks": self.chunks, "rows": self.rows}
        validation = assembled_validation(self.gate.suite, results, meta)
        result = gate_result(validation, self.cfg.dataset.column_names)
        return RawValidation(result=result, rows=self.rows, ids=ids)


def assembled_validation(
    suite: str, results: list[dict[str, Any]], meta: dict[str, Any]
) -> dict[str, Any]:
    """A GX validation result (as JSON) put together from the results of several runs."""
    successful = sum(bool(r["success"]) for r in results)
    return {
        "success": successful == len(results),
        "suite_name": suite,
        "suite_parameters": {},
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": successful,
            "unsuccessful_expectations": len(results) - successful,
            "success_percent": 100 * successful / len(results) if results else None,
        },
        "results": results,
        "meta": meta,
        "id": None,
    }


def _equality_codes(values: pd.Series) -> pd.Series:
    """Text values as dense ranks (equal iff the texts are equal; missing stays missing), or the
    values themselves. pandas finds duplicates among a million text ids through a dictionary of
    them (+~120 MB at once), among their ranks with ~25 MB; pyarrow ranks them by sorting."""
    dtype = values.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return values
    import pyarrow as pa
    import pyarrow.compute as pc

    ranks = pc.rank(pa.array(values.array), sort_keys="ascending", tiebreaker="dense")
    codes = ranks.to_numpy().astype(np.float64)  # exact below 2**53
    codes[values.isna().to_numpy()] = np.nan
    return pd.Series(codes, index=values.index)


def _decoded(item: dict[str, Any], codes: pd.Series, values: pd.Series) -> dict[str, Any]:
    """A result on :func:`_equality_codes` with its example codes turned back into values."""
    result = dict(item.get("result") or {})
    examples = result.get("partial_unexpected_list")
    if not examples:
        return item
    positions = codes.to_numpy()
    value_of = {
        code: values.iloc[int(np.flatnonzero(positions == code)[0])] for code in set(examples)
    }
    result["partial_unexpected_list"] = [value_of[code] for code in examples]
    result.pop("partial_unexpected_counts", None)
    if (counts := _partial_counts(result["partial_unexpected_list"])) is not None:
        result["partial_unexpected_counts"] = counts
    return {**item, "result": result}


def _concat(parts: list[pd.Series], index: pd.RangeIndex) -> pd.Series:
    values = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    parts.clear()
    return values.set_axis(index)


def text_ids(df: pd.DataFrame, id_column: str) -> pd.Series:
    if id_column not in df.columns:
        return _no_ids(id_column)
    return df[id_column].astype(str)


def _no_ids(id_column: str) -> pd.Series:
    return pd.Series([], dtype="str", name=id_column)


def _item_key(item: dict[str, Any]) -> str:
    config = item["expectation_config"]
    return expectation_key(config["type"], config["kwargs"])


def _merge_item(merged: dict[str, Any] | None, item: dict[str, Any]) -> dict[str, Any]:
    """One row-wise expectation over the chunks so far: failed if it failed in any chunk, with
    the counts added up and the examples of the first failing chunks (as a whole-file run would
    list them: in file order, up to the result format's limit)."""
    if merged is None:
        return item
    if _exception(merged):
        return merged  # as in a whole-file run, a check that could not run has no counts
    if _exception(item):
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
            out[key] = [*_list(a, key), *_list(b, key)][:limit]
    examples = out.get("partial_unexpected_list")
    if examples is not None and (counts := _partial_counts(examples)) is not None:
        out["partial_unexpected_counts"] = counts
    return out


def _partial_counts(examples: list[Any]) -> list[dict[str, Any]] | None:
    """GX's ``partial_unexpected_counts`` of example values (None where GX leaves them out:
    unhashable or unorderable values)."""
    limit = int(RESULT_FORMAT["partial_unexpected_count"])
    try:
        counts = Counter(examples).most_common(limit)
        return [
            {"value": value, "count": count}
            for value, count in sorted(counts, key=lambda x: (-x[1], x[0]))
        ]
    except TypeError:
        return None


def _list(result: dict[str, Any], key: str) -> list[Any]:
    return list(result.get(key) or [])


def validate_training_set(df: pd.DataFrame, cfg: Config, *, run_name: str) -> GateResult:
    """Validate the typed training table (the output of :func:`retrain.tables.coerce_types`)."""
    return _run(TRAINING_CHECKPOINT, df, cfg, run_name)


def unreadable_file_result(name: str, error: BaseException | str, cfg: Config) -> GateResult:
    """A failed raw result for a file :func:`retrain.tables.read_table` could not parse."""
    message = shown(str(error), MESSAGE_CHARS)
    failure = FailedExpectation("file_readable", None, {"file": name, "error": message})
    return GateResult(
        success=False,
        suite=raw_suite_name(cfg),
        evaluated=0,
        failed=(failure,),
        statistics={"evaluated_expectations": 0, "unsuccessful_expectations": 0},
        result={"success": False, "file": name, "error": message},
    )


def raw_view(df: pd.DataFrame, ds: DatasetConfig) -> pd.DataFrame:
    """The frame the raw suite sees: values as sent, made comparable across CSV and Parquet.

    Numeric columns that are text only because of the file format become numbers when every
    value parses (else they stay text, and the numeric check names the bad values);
    string/category values become ``str``; datetime columns hold ``pd.Timestamp`` where
    :func:`retrain.tables.parse_timestamps` succeeds and the original value where it does not.
    """
    view = df.copy(deep=False)
    for col in ds.columns:
        if col.name not in view.columns:
            continue
        values = view[col.name]
        if col.dtype in ("int", "float"):
            view[col.name] = _numeric_view(values)
        elif col.dtype in ("string", "category"):
            view[col.name] = as_text(values)
        else:
            parsed, bad = parse_timestamps(values)
            if bad.any():
                shown = parsed.astype(object).where(parsed.notna(), None)
                view[col.name] = shown.where(~bad, values.astype(object))
            else:  # typed: GX checks the dtype once, not each of 1M values (~2.5 s)
                view[col.name] = parsed
    return view


def run_raw_checkpoint(
    context: EphemeralDataContext, checkpoint: str, view: pd.DataFrame, run_name: str
) -> dict[str, Any]:
    """:func:`run_checkpoint` on a :func:`raw_view` (every raw run: whole, chunk, group), its
    passed type checks of typed columns counted as GX counts an object column's
    (:func:`_with_value_counts`)."""
    return _with_value_counts(run_checkpoint(context, checkpoint, view, run_name), view)


def _with_value_counts(validation: dict[str, Any], view: pd.DataFrame) -> dict[str, Any]:
    """``validation`` (GX's result on ``view``) with each passed type check of a typed column
    given the counts GX gives an object column. GX checks a typed column's dtype once
    (``observed_value``) and an object column value by value (counts, examples); the raw view
    types a timestamp column whose values all parsed, and chunk results add up counts."""
    for item in validation["results"]:
        column = item["expectation_config"]["kwargs"].get("column")
        result = item.get("result") or {}
        if (
            item["expectation_config"]["type"] != "expect_column_values_to_be_in_type_list"
            or not item["success"]
            or "element_count" in result
            or column not in view.columns
        ):
            continue
        rows, missing = len(view), int(view[column].isna().sum())
        nonmissing = rows - missing
        item["result"] = {
            "element_count": rows,
            "unexpected_count": 0,
            "unexpected_percent": 0.0 if nonmissing else None,
            "partial_unexpected_list": [],
            "missing_count": missing,
            "missing_percent": missing / rows * 100 if rows else None,
            "unexpected_percent_total": 0.0 if rows else None,
            "unexpected_percent_nonmissing": 0.0 if nonmissing else None,
            "partial_unexpected_counts": [],
            "partial_unexpected_index_list": [],
        }
    return validation


def _numeric_view(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(object)  # True/False are not numbers in a data file
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values if values.dtype.kind in "iuf" else values.astype("float64")
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().sum() == values.notna().sum():
        return numbers
    return values.astype(object)


def _run(checkpoint: str, df: pd.DataFrame, cfg: Config, run_name: str) -> GateResult:
    context = get_context(cfg)  # first: it quiets GX's loggers before importing GX
    return gate_result(run_checkpoint(context, checkpoint, df, run_name), cfg.dataset.column_names)


def run_checkpoint(
    context: EphemeralDataContext, checkpoint: str, df: pd.DataFrame, run_name: str
) -> dict[str, Any]:
    """Run one checkpoint of ``context`` on ``df``; GX's validation result as a JSON-able dict."""
    from great_expectations.core.run_identifier import RunIdentifier

    try:
        result = context.checkpoints.get(checkpoint).run(
            batch_parameters={"dataframe": df}, run_id=RunIdentifier(run_name=run_name)
        )
    finally:
        _release_batch(context)
    for key in result.run_results:
        # The in-memory store would keep every result for the life of the process.
        context.validation_results_store.remove_key(key)
    (validation,) = result.run_results.values()
    return validation.to_json_dict()


def _release_batch(context: EphemeralDataContext) -> None:
    """GX's execution engine keeps the frame it last validated until the next run: a chunk would
    outlive its check (two in memory at a time) and a whole file the task's use of it."""
    manager = context.data_sources.get(DATASOURCE).get_execution_engine().batch_manager
    manager.reset_batch_cache()
    manager.batch_data_cache.clear()


def gate_result(validation: dict[str, Any], columns: tuple[str, ...]) -> GateResult:
    """GX's validation result as a :class:`GateResult`, every value it quotes from the data
    bounded (:func:`bounded`): it travels into reasons, reports, claims and XComs."""
    validation = {**validation, "results": [bounded_item(i) for i in validation["results"]]}
    failed = []
    for item in validation["results"]:
        if item["success"]:
            continue
        config = item["expectation_config"]
        exception = _exception(item)
        details = {
            "kwargs": {k: v for k, v in config["kwargs"].items() if k != "batch_id"},
            "result": item.get("result") or {},
            "exception": _short(exception.get("exception_message")) if exception else None,
        }
        failed.append(FailedExpectation(config["type"], config["kwargs"].get("column"), details))
    # GX reports in its own order; table-level first, then config column order, reads better.
    position = {name: i for i, name in enumerate(columns)}
    kinds = list(_CHECKS)
    failed.sort(
        key=lambda f: (
            -1 if f.column is None else position.get(f.column, len(position)),
            kinds.index(f.expectation_type) if f.expectation_type in kinds else len(kinds),
        )
    )
    statistics = dict(validation.get("statistics") or {})
    return GateResult(
        success=bool(validation["success"]),
        suite=validation["suite_name"],
        evaluated=int(statistics.get("evaluated_expectations", len(validation["results"]))),
        failed=tuple(failed),
        statistics=statistics,
        result=validation,
    )


def _exception(item: dict[str, Any]) -> dict[str, Any]:
    """The exception an expectation raised, or ``{}``."""
    exception = item.get("exception_info") or {}
    if not exception.get("raised_exception"):
        # GX nests it per metric when several failed; the first message is enough here
        nested = [v for v in exception.values() if isinstance(v, dict)]
        exception = next((v for v in nested if v.get("raised_exception")), {})
    return exception if exception.get("raised_exception") else {}


def _mismatched(result: dict[str, Any]) -> dict[str, list[str]]:
    """ExpectTableColumnsToMatchSet's ``{"unexpected": [...], "missing": [...]}``."""
    return (result.get("details") or {}).get("mismatched") or {}


def _only_missing_columns(failure: FailedExpectation) -> bool:
    """A column set failure without extra columns: GX cannot flag extras alone (exact_match
    fails on missing columns too), and each missing column has its own ExpectColumnToExist."""
    if failure.expectation_type != "expect_table_columns_to_match_set":
        return False
    if failure.details.get("exception"):
        return False
    return not _mismatched(failure.details.get("result") or {}).get("unexpected")


def _short(message: str | None) -> str | None:
    if message is None:
        return None
    first = message.strip().splitlines()[0] if message.strip() else message
    return shown(first, 200)


def _unique_examples(result: dict[str, Any], limit: int) -> list[Any]:
    """Distinct failing values, most frequent first (GX's partial counts), ints shown as ints."""
    counts = result.get("partial_unexpected_counts") or []
    values = [c["value"] for c in counts] or list(result.get("partial_unexpected_list") or [])
    unique: list[Any] = []
    for value in values:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value not in unique:
            unique.append(value)
    return unique[:limit]


def _num(value: Any) -> str:
    """0.0 -> "0", 0.0123456 -> "0.01235", None -> "" (an open bound)."""
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)
