"""Run the two GX checkpoints and turn their results into something a DAG can act on and log.

:class:`GateResult` is plain, frozen and JSON-able (Airflow XCom, quarantine reports) and its
:meth:`GateResult.summary` says in one paragraph why a file or training set was rejected. GX keeps
nothing: the result lives in the returned object only (see :mod:`validation.context`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from retrain.clip import shown
from retrain.config import Config, DatasetConfig
from retrain.tables import as_text, parse_timestamps
from validation.bounds import MESSAGE_CHARS, bounded_item, column_set_reason, quoted
from validation.context import (
    DATASOURCE,
    RAW_CHECKPOINT,
    RESULT_FORMAT,
    TRAINING_CHECKPOINT,
    get_context,
)
from validation.suites import raw_suite_name

if TYPE_CHECKING:
    from great_expectations.data_context import EphemeralDataContext

_EXAMPLES = 3  # example values quoted per failure in a summary
# Rows per chunk when a landed file is validated in chunks (retrain.tables.iter_table): GX's
# working memory grows with the rows it checks at once (~1 KB a row of 20 columns), its fixed
# cost with the runs (~1 s each). A light task (validate_N, [resources] task_memory_mb, 512 MiB
# of which GX's import takes ~300) checks 100k rows at a time (50k of Parquet:
# retrain.steps.validate); validate_large, a heavy task (files of [resources] large_file_mb or
# more), 250k: a 20M-row file in 80 runs, not 200.
RAW_CHUNK_ROWS = 100_000
LARGE_CHUNK_ROWS = 250_000


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
    # The file's id column as text, as the ledger stages it (empty if the file has none): in
    # memory for a file of one chunk, else a local Parquet file (column ``id``, a row group a
    # chunk) written chunk by chunk (validation.chunked).
    ids: pd.Series | Path = field(compare=False, repr=False)
    # validation.grouped: the files (positions in its input) this result was shared with.
    group: tuple[int, ...] = ()


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


def text_ids(df: pd.DataFrame, id_column: str) -> pd.Series:
    if id_column not in df.columns:
        return _no_ids(id_column)
    return df[id_column].astype(str)


def _no_ids(id_column: str) -> pd.Series:
    return pd.Series([], dtype="str", name=id_column)


def partial_counts(examples: list[Any]) -> list[dict[str, Any]] | None:
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
        exception = exception_of(item)
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


def exception_of(item: dict[str, Any]) -> dict[str, Any]:
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
