"""Run the two GX checkpoints and turn their results into something a DAG can act on and log.

:class:`GateResult` is plain, frozen and JSON-able (Airflow XCom, quarantine reports) and its
:meth:`GateResult.summary` says in one paragraph why a file or training set was rejected. GX keeps
nothing: the result lives in the returned object only (see :mod:`validation.context`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from retrain.config import Config, DatasetConfig
from retrain.tables import as_text, parse_timestamps
from validation.context import RAW_CHECKPOINT, TRAINING_CHECKPOINT, get_context
from validation.suites import raw_suite_name

_EXAMPLES = 3  # example values quoted per failure in a summary


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
        examples = ", ".join(repr(v) for v in _unique_examples(result, _EXAMPLES))
        match self.expectation_type:
            case "file_readable":
                return f"file could not be read: {self.details.get('error')}"
            case "expect_table_columns_to_match_set":
                mismatched = _mismatched(result)
                if extra := mismatched.get("unexpected"):
                    return (
                        f"unexpected column(s) {extra} (not in the config; "
                        'set [validation] extra_columns = "ignore" to drop them)'
                    )
                return f"column(s) {mismatched.get('missing', [])} missing"
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
            case "expect_column_values_to_match_regex":
                return f"{col} values not numeric ({rows}, e.g. {examples})"
            case "expect_column_values_to_be_between":
                bounds = f"[{_num(kwargs.get('min_value'))}, {_num(kwargs.get('max_value'))}]"
                return f"{col} out of range {bounds} ({rows}, e.g. {examples})"
            case "expect_column_values_to_be_in_set":
                return f"{col} has unknown values {_unique_examples(result, 10)} ({rows})"
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
    "expect_column_values_to_match_regex": "numeric check",
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
            if f.expectation_type == "expect_column_values_to_match_regex"
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
    view = raw_view(df, cfg.dataset)
    if cfg.validation.extra_columns == "ignore":
        configured = set(cfg.dataset.column_names)
        view = view[[c for c in view.columns if c in configured]]
    return _run(RAW_CHECKPOINT, view, cfg, run_name)


def validate_training_set(df: pd.DataFrame, cfg: Config, *, run_name: str) -> GateResult:
    """Validate the typed training table (the output of :func:`retrain.tables.coerce_types`)."""
    return _run(TRAINING_CHECKPOINT, df, cfg, run_name)


def unreadable_file_result(name: str, error: BaseException | str, cfg: Config) -> GateResult:
    """A failed raw result for a file :func:`retrain.tables.read_table` could not parse."""
    message = str(error)
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
            shown = parsed.astype(object).where(parsed.notna(), None)
            view[col.name] = shown.where(~bad, values.astype(object))
    return view


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
    from great_expectations.core.run_identifier import RunIdentifier

    result = context.checkpoints.get(checkpoint).run(
        batch_parameters={"dataframe": df}, run_id=RunIdentifier(run_name=run_name)
    )
    for key in result.run_results:
        # The in-memory store would keep every result for the life of the process.
        context.validation_results_store.remove_key(key)
    (validation,) = result.run_results.values()
    return _gate_result(validation.to_json_dict(), cfg.dataset.column_names)


def _gate_result(validation: dict[str, Any], columns: tuple[str, ...]) -> GateResult:
    failed = []
    for item in validation["results"]:
        if item["success"]:
            continue
        config = item["expectation_config"]
        exception = item.get("exception_info") or {}
        if not exception.get("raised_exception"):
            # GX nests it per metric when several failed; the first message is enough here
            nested = [v for v in exception.values() if isinstance(v, dict)]
            exception = next((v for v in nested if v.get("raised_exception")), {})
        details = {
            "kwargs": {k: v for k, v in config["kwargs"].items() if k != "batch_id"},
            "result": item.get("result") or {},
            "exception": _short(exception.get("exception_message"))
            if exception.get("raised_exception")
            else None,
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
    return first[:200]


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
