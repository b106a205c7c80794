"""The GX checkpoints pass good data, name each defect, and the context syncs without churn.

Every test runs against a copy of the committed context in tmp_path (RETRAIN_GX_ROOT), so
nothing here writes into validation/gx.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config
from retrain.tables import UnreadableFile, coerce_types, read_table
from validation.context import CONTEXT_ROOT, ROOT_ENV, context_dir, get_context
from validation.gates import (
    GateResult,
    build_data_docs,
    unreadable_file_result,
    validate_raw_file,
    validate_training_set,
)
from validation.suites import build_raw_suite, suite_spec

COMMITTED = CONTEXT_ROOT / "gx"


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


def copy_context(dest: Path) -> Path:
    """The committed context (without local results) under ``dest``; returns the project root."""
    shutil.copytree(COMMITTED, dest / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    return dest


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(folder)): (
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def gx_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = copy_context(tmp_path_factory.mktemp("gx-root"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ROOT_ENV, str(root))  # a forgotten root= would still stay out of the repo
        yield root


@pytest.fixture(scope="module")
def raw(gx_root: Path, config: Config) -> Callable[..., GateResult]:
    def run(df: pd.DataFrame, name: str = "test") -> GateResult:
        return validate_raw_file(df, config, run_name=name, root=gx_root)

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
        "expect_column_values_to_match_regex",
        "monthly_charges values not numeric (2 rows, e.g. 'n/a')",
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
    # The range check cannot run on text and every region check fails for lack of the column;
    # both are counted but not repeated as separate reasons.
    assert "not checked" not in summary
    assert summary.count("region") == 1
    assert len(result.failed) == 6


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


def test_results_and_data_docs_stay_in_the_configured_root(raw, gx_root, config) -> None:
    raw(demo_frame(), name="batch-1/sub dir/file.csv")
    validations = gx_root / "gx" / "uncommitted" / "validations"
    assert any("batch-1" in str(p) for p in validations.rglob("*.json"))
    site = build_data_docs(config, root=gx_root)
    assert site == gx_root / "gx" / "uncommitted" / "data_docs" / "local_site"
    index = (site / "index.html").read_text()
    assert "batch-1_sub_dir_file.csv" in index  # a "/" in the run name must not nest folders
    assert (site / "expectations" / "telco_churn" / "raw.html").is_file()
    shutil.rmtree(site)
    assert (build_data_docs(config, root=gx_root) / "index.html").is_file()  # full rebuild


def training_frame(cfg: Config, n: int = 600) -> pd.DataFrame:
    return coerce_types(demo_frame(n), cfg.dataset)


def test_training_set_passes(gx_root, config) -> None:
    result = validate_training_set(training_frame(config), config, run_name="t", root=gx_root)
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
def test_training_set_defects_fail(gx_root, config, defect, reason) -> None:
    df = defect(training_frame(config))
    result = validate_training_set(df, config, run_name="t-bad", root=gx_root)
    assert not result.success
    assert reason in result.summary()


def test_get_context_twice_writes_nothing(tmp_path: Path, config: Config) -> None:
    root = copy_context(tmp_path)
    committed = snapshot(root / "gx")
    get_context(config, root)
    after_first = snapshot(root / "gx")
    # The committed files are in step with the config: opening them rewrites none of them.
    assert {k: v for k, v in after_first.items() if not k.startswith("uncommitted")} == committed
    get_context(config, root)
    assert snapshot(root / "gx") == after_first


def test_get_context_creates_a_context_equal_to_the_committed_one(tmp_path, config) -> None:
    get_context(config, tmp_path)
    for suite in ("raw", "training"):
        fresh = json.loads((tmp_path / "gx/expectations/telco_churn" / f"{suite}.json").read_text())
        committed = json.loads(
            (COMMITTED / "expectations/telco_churn" / f"{suite}.json").read_text()
        )
        assert suite_spec(fresh) == suite_spec(committed)
    fresh_files = {k for k in snapshot(tmp_path / "gx") if not k.startswith("uncommitted")}
    committed_files = {k for k in snapshot(COMMITTED) if not k.startswith("uncommitted")}
    assert fresh_files == committed_files
    assert context_dir(tmp_path) == tmp_path / "gx"


def test_a_config_edit_updates_the_context_once(tmp_path: Path, config: Config) -> None:
    root = copy_context(tmp_path)
    edited = dataclasses.replace(
        config, validation=dataclasses.replace(config.validation, min_rows=5)
    )
    small = demo_frame(10)
    assert not validate_raw_file(small, config, run_name="before", root=root).success
    assert validate_raw_file(small, edited, run_name="after", root=root).success
    suite = json.loads((root / "gx/expectations/telco_churn/raw.json").read_text())
    assert suite_spec(suite) == suite_spec(build_raw_suite(edited))
    settled = snapshot(root / "gx")
    get_context(edited, root)
    assert snapshot(root / "gx") == settled


def test_a_renamed_dataset_leaves_no_stale_files(tmp_path: Path, config: Config) -> None:
    root = copy_context(tmp_path)
    renamed = dataclasses.replace(
        config, dataset=dataclasses.replace(config.dataset, name="churn_v2")
    )
    get_context(renamed, root)
    suites = sorted(
        p.relative_to(root / "gx/expectations") for p in (root / "gx/expectations").rglob("*.json")
    )
    assert [str(p) for p in suites] == ["churn_v2/raw.json", "churn_v2/training.json"]
    definitions = sorted(p.name for p in (root / "gx/validation_definitions").glob("*.json"))
    assert definitions == ["churn_v2.raw.json", "churn_v2.training.json"]
    checkpoint = json.loads((root / "gx/checkpoints/raw_file.json").read_text())
    assert [v["name"] for v in checkpoint["validation_definitions"]] == ["churn_v2.raw"]
