"""The GX checkpoints pass good data and name each defect; the context lives in memory only.

Real GX throughout, on in-memory frames: nothing here (or at run time) writes a file.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config
from retrain.tables import UnreadableFile, coerce_types, read_table
from validation.context import (
    RAW_CHECKPOINT,
    RESULT_FORMAT,
    TRAINING_CHECKPOINT,
    get_context,
)
from validation.gates import (
    GateResult,
    raw_file_view,
    unreadable_file_result,
    validate_raw_file,
    validate_training_set,
)
from validation.suites import build_raw_suite

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def with_validation(cfg: Config, **changes) -> Config:
    return dataclasses.replace(cfg, validation=dataclasses.replace(cfg.validation, **changes))


def demo_frame(n: int = 50, seed: int = 0) -> pd.DataFrame:
    """Valid rows of the demo (telco churn) schema, as a user would export them."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"C{seed:03d}-{i:06d}" for i in range(n)],
            "event_time": pd.date_range("2024-01-01", periods=n, freq="min"),
            "tenure_months": rng.integers(0, 121, n),
            "monthly_charges": rng.uniform(0, 500, n).round(2),
            "total_charges": rng.uniform(0, 60000, n).round(2),
            "support_calls": rng.integers(0, 51, n),
            "data_usage_gb": rng.uniform(0, 2000, n).round(1),
            "contract": rng.choice(["month-to-month", "one-year", "two-year"], n),
            "payment_method": rng.choice(["card", "bank-transfer", "e-check", "mailed-check"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "churned": (np.arange(n) % 4 == 0).astype("int64"),
        }
    )


def csv_roundtrip(df: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    return read_table(df.to_csv(index=False).encode(), "file.csv", cfg.dataset)


def parquet_roundtrip(df: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Like a user's tool would: a column mixing text and numbers is written as a text column."""
    df = df.infer_objects()
    for name in df.select_dtypes(include="object").columns:
        df[name] = df[name].map(lambda v: v if pd.isna(v) else str(v))
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return read_table(buf.getvalue(), "file.parquet", cfg.dataset)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (bytecode caches aside) with its size and mtime."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def raw(config: Config) -> Callable[..., GateResult]:
    def run(df: pd.DataFrame, name: str = "test") -> GateResult:
        return validate_raw_file(df, config, run_name=name)

    return run


@pytest.mark.parametrize("roundtrip", [csv_roundtrip, parquet_roundtrip])
def test_valid_file_passes(raw, config: Config, roundtrip) -> None:
    df = demo_frame()
    df.loc[:9, "total_charges"] = np.nan  # 20% missing, within its 30%
    result = raw(roundtrip(df, config))
    assert result.success, result.summary()
    assert result.evaluated == len(build_raw_suite(config).expectations)
    assert result.failed == ()
    assert result.summary().startswith(f"all {result.evaluated} expectations")
    assert result.statistics["unsuccessful_expectations"] == 0
    json.dumps(result.to_dict())  # XCom / quarantine report material


@pytest.mark.parametrize("roundtrip", [csv_roundtrip, parquet_roundtrip])
def test_a_parsed_time_column_is_typed_and_its_check_still_counts_rows(config, roundtrip) -> None:
    """GX checks a typed column's dtype once instead of each value; the result still says how
    many values it covered, as for a column of objects (chunk results add those up)."""
    df = roundtrip(demo_frame(), config)
    df.loc[4, "event_time"] = None  # the config forbids it: a failure elsewhere, counted here
    assert str(raw_file_view(df, config)["event_time"].dtype) == "datetime64[ns]"
    result = validate_raw_file(df, config, run_name="typed")
    (check,) = [
        r
        for r in result.result["results"]
        if r["expectation_config"]["type"] == "expect_column_values_to_be_in_type_list"
    ]
    assert check["success"]
    counts = {k: check["result"][k] for k in ("element_count", "missing_count", "unexpected_count")}
    assert counts == {"element_count": 50, "missing_count": 1, "unexpected_count": 0}
    assert str(raw_file_view(_set(df, [7], "event_time", "soon"), config)["event_time"].dtype) == (
        "object"
    )


def _set(df: pd.DataFrame, rows, column: str, value) -> pd.DataFrame:
    df[column] = df[column].astype(object)
    df.loc[rows, column] = value
    return df


DEFECTS = {
    "missing column": (
        lambda df: df.drop(columns=["region"]),
        "expect_column_to_exist",
        "column region missing",
    ),
    "text in numeric column": (
        lambda df: _set(df, [3, 4], "monthly_charges", "n/a"),
        "expect_column_values_to_be_numbers",
        "monthly_charges values not numeric (2 rows, e.g. 'n/a')",
    ),
    "digits to_numeric does not read": (
        lambda df: _set(df, [3, 4], "monthly_charges", "\u0663"),  # ARABIC-INDIC DIGIT THREE
        "expect_column_values_to_be_numbers",
        "monthly_charges values not numeric (2 rows, e.g. '\u0663')",
    ),
    "out of range": (
        lambda df: _set(df, [5], "tenure_months", 500),
        "expect_column_values_to_be_between",
        "tenure_months out of range [0, 120] (1 row, e.g. 500)",
    ),
    "unknown category": (
        lambda df: _set(df, [1, 2, 3], "contract", "platinum"),
        "expect_column_values_to_be_in_set",
        "contract has unknown values ['platinum'] (3 rows)",
    ),
    "unparseable time": (
        lambda df: _set(df, [0], "event_time", "yesterday"),
        "expect_column_values_to_be_in_type_list",
        "event_time not parseable as timestamps (1 row, e.g. 'yesterday')",
    ),
    "too few rows": (
        lambda df: df.head(5),
        "expect_table_row_count_to_be_between",
        "only 5 rows (at least 20 required)",
    ),
    "too many nulls": (
        lambda df: _set(df, list(range(20)), "total_charges", np.nan),
        "expect_column_values_to_not_be_null",
        "total_charges has 20 missing values (40%, at most 30% allowed)",
    ),
    "missing target": (
        lambda df: _set(df, [7], "churned", np.nan),
        "expect_column_values_to_not_be_null",
        "churned has 1 missing value (2%)",
    ),
    "target not binary": (
        lambda df: _set(df, [8], "churned", 2),
        "expect_column_values_to_be_in_set",
        "churned has unknown values [2]",
    ),
    "repeated ids": (
        lambda df: _set(df, [1, 2, 5], "customer_id", "C000-000000"),
        "expect_column_values_to_be_unique",
        "customer_id has duplicate values (4 rows, e.g. 'C000-000000')",
    ),
    "extra columns": (
        lambda df: df.assign(notes="call back", score=1.5),
        "expect_table_columns_to_match_set",
        "unexpected column(s) ['notes', 'score'] (not in the config; "
        'set [validation] extra_columns = "ignore" to drop them)',
    ),
}


@pytest.mark.parametrize("roundtrip", [csv_roundtrip, parquet_roundtrip])
@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_fails_with_its_expectation_named(raw, config, defect, roundtrip) -> None:
    mutate, expectation_type, reason = DEFECTS[defect]
    df = roundtrip(mutate(demo_frame()), config)
    result = raw(df, name=f"defect-{defect}")
    assert not result.success
    assert expectation_type in {f.expectation_type for f in result.failed}
    assert reason in result.summary()
    assert result.summary().startswith(f"{len(result.failed)} of {result.evaluated} expectations")


def test_summary_lists_several_defects_and_explains_the_cause_once(raw, config) -> None:
    df = demo_frame()
    _set(df, [3], "monthly_charges", "n/a")
    _set(df, [4], "contract", "platinum")
    df = csv_roundtrip(df.drop(columns=["region"]), config)
    result = raw(df)
    summary = result.summary()
    assert summary.index("monthly_charges") < summary.index("contract") < summary.index("region")
    # The range check cannot run on text, and every region check (the column set's too) fails
    # for lack of the column; all are counted but not repeated as separate reasons.
    assert "not checked" not in summary
    assert summary.count("region") == 1
    assert len(result.failed) == 7


def test_unreadable_file_result_is_a_failed_raw_result(config: Config) -> None:
    with pytest.raises(UnreadableFile) as err:
        read_table(b"\x00\x01 not parquet", "broken.parquet")
    result = unreadable_file_result("broken.parquet", err.value, config)
    assert not result.success
    assert result.suite == "telco_churn.raw"
    assert [f.expectation_type for f in result.failed] == ["file_readable"]
    assert "broken.parquet" in result.summary()
    assert "could not be read" in result.summary()
    json.dumps(result.to_dict())


def test_a_missing_target_fails_even_if_the_config_allows_nulls(config: Config) -> None:
    """A row without a label cannot be trained on: the target is never optional."""
    target = dataclasses.replace(config.dataset.column("churned"), nullable=True)
    columns = tuple(target if c.name == "churned" else c for c in config.dataset.columns)
    lax = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, columns=columns))
    df = csv_roundtrip(_set(demo_frame(), [7], "churned", np.nan), lax)
    result = validate_raw_file(df, lax, run_name="lax")
    assert not result.success
    assert "churned has 1 missing value (2%)" in result.summary()


def test_extra_columns_are_dropped_when_ignored(config: Config) -> None:
    ignore = with_validation(config, extra_columns="ignore")
    df = csv_roundtrip(demo_frame().assign(notes="call back", score="n/a"), ignore)
    result = validate_raw_file(df, ignore, run_name="extra")
    assert result.success, result.summary()
    assert result.evaluated == len(build_raw_suite(ignore).expectations)
    # Dropping the extras does not hide what the config does name.
    broken = csv_roundtrip(demo_frame().assign(notes="x").drop(columns=["region"]), ignore)
    summary = validate_raw_file(broken, ignore, run_name="extra-missing").summary()
    assert "column region missing" in summary
    assert "notes" not in summary


def test_extra_and_missing_columns_are_each_named_once(raw, config: Config) -> None:
    df = csv_roundtrip(demo_frame().assign(notes="x").drop(columns=["region"]), config)
    result = raw(df)
    summary = result.summary()
    assert "unexpected column(s) ['notes']" in summary
    assert summary.count("region") == 1  # by ExpectColumnToExist, not again by the set check
    # Only missing columns: the column set check fails too but adds no second reason.
    result = raw(csv_roundtrip(demo_frame().drop(columns=["region"]), config))
    assert "expect_table_columns_to_match_set" in {f.expectation_type for f in result.failed}
    assert result.summary().count("region") == 1
    assert "unexpected column" not in result.summary()


def training_frame(cfg: Config, n: int = 600) -> pd.DataFrame:
    return coerce_types(demo_frame(n), cfg.dataset)


def test_training_set_passes(config: Config) -> None:
    result = validate_training_set(training_frame(config), config, run_name="t")
    assert result.success, result.summary()
    assert result.suite == "telco_churn.training"


@pytest.mark.parametrize(
    ("defect", "reason"),
    [
        (lambda df: pd.concat([df, df.head(3)], ignore_index=True), "customer_id has duplicate"),
        (lambda df: df.assign(churned=0), "churned mean 0 outside [0.01, 0.6]"),
        (lambda df: df.assign(churned=1), "churned mean 1 outside [0.01, 0.6]"),
        (lambda df: df.head(100), "only 100 rows (at least 500 required)"),
        (lambda df: df.assign(support_calls=99.0), "support_calls out of range [0, 50]"),
    ],
)
def test_training_set_defects_fail(config, defect, reason) -> None:
    df = defect(training_frame(config))
    result = validate_training_set(df, config, run_name="t-bad")
    assert not result.success
    assert reason in result.summary()


def test_the_context_is_in_memory_and_built_once_per_config(config: Config) -> None:
    context = get_context(config)
    assert type(context).__name__ == "EphemeralDataContext"
    assert get_context(config) is context
    assert context.variables.analytics_enabled is False
    for name, suite in (
        (RAW_CHECKPOINT, "telco_churn.raw"),
        (TRAINING_CHECKPOINT, "telco_churn.training"),
    ):
        checkpoint = context.checkpoints.get(name)
        assert checkpoint.actions == []  # no Data Docs: nothing rendered, nothing written
        assert checkpoint.result_format == RESULT_FORMAT
        assert [v.suite.name for v in checkpoint.validation_definitions] == [suite]
    other = with_validation(config, min_rows=5)
    assert get_context(other) is not context


def test_contexts_of_several_configs_coexist(config: Config) -> None:
    """Tests (and a long-lived process) validate against several configs in turn."""
    small = demo_frame(10)
    lenient = with_validation(config, min_rows=5)
    assert not validate_raw_file(small, config, run_name="before").success
    assert validate_raw_file(small, lenient, run_name="lenient").success
    assert not validate_raw_file(small, config, run_name="again").success
    renamed = dataclasses.replace(
        config, dataset=dataclasses.replace(config.dataset, name="churn_v2")
    )
    assert validate_raw_file(demo_frame(), renamed, run_name="renamed").suite == "churn_v2.raw"


def test_validation_keeps_no_results_and_writes_no_files(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # anything written relative to the working directory shows
    fresh = with_validation(config, min_rows=21)  # a context not built by an earlier test
    before = snapshot(PROJECT_ROOT / "validation")
    assert validate_raw_file(demo_frame(), fresh, run_name="batch/sub dir/a.csv").success
    assert validate_training_set(training_frame(fresh), fresh, run_name="train").success
    assert snapshot(PROJECT_ROOT / "validation") == before
    assert list(tmp_path.iterdir()) == []
    assert get_context(fresh).validation_results_store.list_keys() == []


def test_great_expectations_logs_nothing_below_warning(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """Task logs keep the pipeline's own lines; GX alone logs hundreds at INFO."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="great_expectations")  # as if nothing quieted it yet
    fresh = with_validation(config, min_rows=19)  # builds a new context: quiets the loggers
    assert validate_raw_file(demo_frame(), fresh, run_name="quiet").success
    df = csv_roundtrip(_set(demo_frame(), [3], "monthly_charges", "n/a"), fresh)
    assert not validate_raw_file(df, fresh, run_name="quiet-bad").success
    assert validate_training_set(training_frame(fresh), fresh, run_name="quiet").success
    noisy = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith("great_expectations") and r.levelno < logging.WARNING
    ]
    assert noisy == []
