"""The suites follow the config alone, and the committed GX files match what the config produces."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from retrain.config import Config, parse_config
from validation.context import CONTEXT_ROOT, RAW_CHECKPOINT, TRAINING_CHECKPOINT
from validation.suites import (
    NUMERIC_REGEX,
    build_raw_suite,
    build_training_suite,
    suite_spec,
)

COMMITTED = CONTEXT_ROOT / "gx"


def expectations(suite) -> dict[tuple[str, str | None], dict]:
    """(type, column) -> kwargs, for the suite's expectations."""
    out = {}
    for e in suite.to_json_dict()["expectations"]:
        key = (e["type"], e["kwargs"].get("column"))
        assert key not in out, f"duplicate expectation {key}"
        out[key] = e["kwargs"]
    return out


def test_raw_suite_covers_every_configured_rule(config: Config) -> None:
    suite = build_raw_suite(config)
    assert suite.name == "telco_churn.raw"
    got = expectations(suite)
    assert got[("expect_table_row_count_to_be_between", None)]["min_value"] == 20
    for name in config.dataset.column_names:
        assert ("expect_column_to_exist", name) in got
    not_null = "expect_column_values_to_not_be_null"
    assert "mostly" not in got[(not_null, "customer_id")]  # nullable = false
    assert "mostly" not in got[(not_null, "contract")]
    assert got[(not_null, "total_charges")]["mostly"] == 0.7  # its own max_missing_fraction
    assert got[(not_null, "region")]["mostly"] == 0.8  # the [validation] default
    for name in ("tenure_months", "monthly_charges", "total_charges", "data_usage_gb"):
        assert got[("expect_column_values_to_match_regex", name)]["regex"] == NUMERIC_REGEX
    between = got[("expect_column_values_to_be_between", "total_charges")]
    assert (between["min_value"], between["max_value"]) == (0, 60000)
    in_set = "expect_column_values_to_be_in_set"
    assert got[(in_set, "contract")]["value_set"] == ["month-to-month", "one-year", "two-year"]
    assert got[(in_set, "churned")]["value_set"] == [0, 1]
    assert ("expect_column_values_to_be_in_type_list", "event_time") in got
    # The target's {0, 1} set check subsumes a numeric and a range check.
    assert ("expect_column_values_to_be_between", "churned") not in got
    assert ("expect_column_values_to_match_regex", "churned") not in got


def test_training_suite_covers_size_labels_ids_and_ranges(config: Config) -> None:
    suite = build_training_suite(config)
    assert suite.name == "telco_churn.training"
    got = expectations(suite)
    assert got[("expect_table_row_count_to_be_between", None)]["min_value"] == 500
    mean = got[("expect_column_mean_to_be_between", "churned")]
    assert (mean["min_value"], mean["max_value"]) == (0.01, 0.6)
    assert ("expect_column_values_to_be_unique", "customer_id") in got
    assert ("expect_column_values_to_not_be_null", "churned") in got
    ranged = {col for kind, col in got if kind == "expect_column_values_to_be_between"}
    assert ranged == {"tenure_months", "monthly_charges", "total_charges", "support_calls"} | {
        "data_usage_gb"
    }


def test_suites_are_built_from_any_dataset_config() -> None:
    raw = {
        "dataset": {
            "name": "loans",
            "id_column": "loan_id",
            "time_column": "applied_at",
            "target": "defaulted",
            "columns": {
                "loan_id": {"dtype": "string", "nullable": False},
                "applied_at": "datetime",
                "amount": {"dtype": "float", "max": 1e6, "max_missing_fraction": 0.0},
                "grade": {"dtype": "category", "categories": ["A", "B"]},
                "defaulted": {"dtype": "int", "nullable": False},
            },
        },
        "validation": {"min_rows": 3, "max_missing_fraction": 1.0, "training_min_rows": 7},
    }
    cfg = parse_config(raw, env={})
    suite = build_raw_suite(cfg)
    got = expectations(suite)
    assert suite.name == "loans.raw"
    assert got[("expect_table_row_count_to_be_between", None)]["min_value"] == 3
    assert got[("expect_column_values_to_be_between", "amount")]["max_value"] == 1e6
    assert got[("expect_column_values_to_not_be_null", "amount")].get("mostly", 1) == 1
    # max_missing_fraction = 1.0: any amount of missing values is fine, so no expectation
    assert ("expect_column_values_to_not_be_null", "grade") not in got
    assert got[("expect_column_values_to_be_in_set", "grade")]["value_set"] == ["A", "B"]
    assert {col for _, col in got} == {None, "loan_id", "applied_at", "amount", "grade"} | {
        "defaulted"
    }
    training = build_training_suite(cfg)
    assert training.name == "loans.training"
    assert ("expect_column_values_to_be_unique", "loan_id") in expectations(training)


@pytest.mark.parametrize(
    ("text", "numeric"),
    [
        ("12", True),
        ("-3.5", True),
        (" +.5 ", True),
        ("1e-05", True),
        ("1.5e+20", True),
        ("5.", True),
        ("n/a", False),
        ("1,000", False),
        ("inf", False),
        ("nan", False),
        ("True", False),
        ("", False),
        ("12abc", False),
    ],
)
def test_numeric_regex(text: str, numeric: bool) -> None:
    assert bool(re.search(NUMERIC_REGEX, text)) is numeric


def _committed_suites() -> dict[str, dict]:
    files = sorted((COMMITTED / "expectations").rglob("*.json"))
    return {(data := json.loads(p.read_text()))["name"]: data for p in files}


def test_committed_suites_match_the_config(config: Config) -> None:
    """Fails when retrain.toml changed but `get_context(load_config())` was not re-run."""
    committed = _committed_suites()
    expected = {s.name: s for s in (build_raw_suite(config), build_training_suite(config))}
    assert sorted(committed) == sorted(expected)
    for name, suite in expected.items():
        assert suite_spec(committed[name]) == suite_spec(suite), f"{name} is stale: regenerate"


def test_committed_checkpoints_and_definitions_wire_the_suites(config: Config) -> None:
    suites = _committed_suites()
    definitions = {
        d["name"]: d
        for d in (
            json.loads(p.read_text()) for p in (COMMITTED / "validation_definitions").glob("*.json")
        )
    }
    assert sorted(definitions) == sorted(suites)
    for name, definition in definitions.items():
        assert definition["suite"]["id"] == suites[name]["id"]
    checkpoints = {
        p.stem: json.loads(p.read_text()) for p in (COMMITTED / "checkpoints").glob("*.json")
    }
    assert sorted(checkpoints) == sorted([RAW_CHECKPOINT, TRAINING_CHECKPOINT])
    wired = {n: [v["name"] for v in c["validation_definitions"]] for n, c in checkpoints.items()}
    assert wired == {
        RAW_CHECKPOINT: ["telco_churn.raw"],
        TRAINING_CHECKPOINT: ["telco_churn.training"],
    }
    for checkpoint in checkpoints.values():
        assert [a["type"] for a in checkpoint["actions"]] == ["update_data_docs"]
    project = yaml.safe_load((COMMITTED / "great_expectations.yml").read_text())
    assert project["analytics_enabled"] is False
    assert project["progress_bars"] == {"globally": False, "metric_calculations": False}
    assert "pandas" in project["fluent_datasources"]


def test_committed_tree_has_no_uncommitted_artifacts_outside_uncommitted() -> None:
    allowed = {"expectations", "checkpoints", "validation_definitions", "plugins", "uncommitted"}
    top = {p.name for p in COMMITTED.iterdir() if p.is_dir()}
    assert top <= allowed
    assert (COMMITTED / ".gitignore").read_text().strip().endswith("uncommitted/")
