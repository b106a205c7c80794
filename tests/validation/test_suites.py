"""The suites follow the config alone, and the raw suite applies every column rule of the
training suite, so a file the training gate would reject cannot pass ingest."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, parse_config
from validation.suites import NUMERIC_REGEX, build_raw_suite, build_training_suite

# The only rules that need the whole training set; everything else must also hold per file.
SET_LEVEL = {"expect_table_row_count_to_be_between", "expect_column_mean_to_be_between"}

LOANS = {
    "dataset": {
        "name": "loans",
        "id_column": "loan_id",
        "time_column": "applied_at",
        "target": "defaulted",
        "columns": {
            "loan_id": {"dtype": "int", "min": 1},  # numeric id, nullable left at its default
            "applied_at": "datetime",
            "amount": {"dtype": "float", "max": 1e6, "max_missing_fraction": 0.0},
            "term_months": "int",  # numeric without bounds
            "purpose": "string",  # free text: not in the feature table
            "defaulted": "int",  # nullable by default: the target is still checked not null
        },
    },
    "validation": {
        "min_rows": 3,
        "max_missing_fraction": 1.0,
        "training_min_rows": 7,
        "extra_columns": "ignore",
    },
}


@pytest.fixture(scope="module")
def loans() -> Config:
    """A config unlike retrain.toml: other names, a numeric id, no categories, ignore extras."""
    return parse_config(LOANS, env={})


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
    columns = got[("expect_table_columns_to_match_set", None)]
    assert columns["column_set"] == list(config.dataset.column_names)
    assert columns.get("exact_match", True) is True  # GX's default; False ignores extras
    for name in config.dataset.column_names:
        assert ("expect_column_to_exist", name) in got
    assert ("expect_column_values_to_be_unique", "customer_id") in got
    not_null = "expect_column_values_to_not_be_null"
    assert "mostly" not in got[(not_null, "customer_id")]  # nullable = false
    assert "mostly" not in got[(not_null, "contract")]
    assert "mostly" not in got[(not_null, "churned")]
    assert got[(not_null, "total_charges")]["mostly"] == 0.7  # its own max_missing_fraction
    assert got[(not_null, "region")]["mostly"] == 0.8  # the [validation] default
    for name in ("tenure_months", "monthly_charges", "total_charges", "data_usage_gb"):
        assert got[("expect_column_values_to_be_numbers", name)]["regex"] == NUMERIC_REGEX
    between = got[("expect_column_values_to_be_between", "total_charges")]
    assert (between["min_value"], between["max_value"]) == (0, 60000)
    in_set = "expect_column_values_to_be_in_set"
    assert got[(in_set, "contract")]["value_set"] == ["month-to-month", "one-year", "two-year"]
    assert got[(in_set, "churned")]["value_set"] == [0, 1]
    assert ("expect_column_values_to_be_in_type_list", "event_time") in got
    # The target's {0, 1} set check subsumes a numeric and a range check.
    assert ("expect_column_values_to_be_between", "churned") not in got
    assert ("expect_column_values_to_be_numbers", "churned") not in got
    assert ("expect_column_mean_to_be_between", "churned") not in got  # set-level only


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
    # Typed table: no text checks, and no file-only schema rule.
    kinds = {kind for kind, _ in got}
    assert "expect_column_values_to_be_numbers" not in kinds
    assert "expect_table_columns_to_match_set" not in kinds


def _spec(expectation: dict[str, Any]) -> tuple[str, str]:
    return expectation["type"], json.dumps(expectation["kwargs"], sort_keys=True)


@pytest.mark.parametrize("which", ["shipped", "loans"])
def test_every_training_column_rule_is_also_a_raw_rule(which, config, loans) -> None:
    """Whatever the training gate checks per row must already fail the file at ingest: else one
    bad file passes and every later training set fails, and the pipeline stalls for good."""
    cfg = config if which == "shipped" else loans
    raw = {_spec(e) for e in build_raw_suite(cfg).to_json_dict()["expectations"]}
    training = build_training_suite(cfg).to_json_dict()["expectations"]
    shared = [_spec(e) for e in training if e["type"] not in SET_LEVEL]
    assert shared, "the training suite has no column rules"
    assert [s for s in shared if s not in raw] == []
    kinds = {kind for kind, _ in shared}
    assert {"expect_column_values_to_be_unique", "expect_column_values_to_not_be_null"} <= kinds
    assert {e["type"] for e in training if e["type"] in SET_LEVEL} == SET_LEVEL


def test_suites_are_built_from_any_dataset_config(loans: Config) -> None:
    suite = build_raw_suite(loans)
    got = expectations(suite)
    assert suite.name == "loans.raw"
    assert got[("expect_table_row_count_to_be_between", None)]["min_value"] == 3
    assert got[("expect_column_values_to_be_between", "amount")]["max_value"] == 1e6
    assert got[("expect_column_values_to_be_between", "loan_id")]["min_value"] == 1
    assert got[("expect_column_values_to_not_be_null", "amount")].get("mostly", 1) == 1
    # max_missing_fraction = 1.0: any amount of missing values is fine, so no expectation...
    assert ("expect_column_values_to_not_be_null", "purpose") not in got
    assert ("expect_column_values_to_not_be_null", "loan_id") not in got
    # ...except for the target, which must be labelled even though the config forgot it.
    assert "mostly" not in got[("expect_column_values_to_not_be_null", "defaulted")]
    assert ("expect_column_values_to_be_unique", "loan_id") in got
    # extra_columns = "ignore": the extra columns are dropped before validation instead.
    assert ("expect_table_columns_to_match_set", None) not in got
    assert ("expect_column_values_to_be_in_set", "purpose") not in got
    assert {col for _, col in got} == {None} | set(loans.dataset.column_names)
    training = expectations(build_training_suite(loans))
    assert build_training_suite(loans).name == "loans.training"
    assert ("expect_column_values_to_be_unique", "loan_id") in training
    # Free text and unbounded numbers are not in the training table's checks.
    assert {col for _, col in training} == {None, "loan_id", "amount", "defaulted"}


def test_extra_columns_policy_only_changes_the_raw_schema_rule(config: Config) -> None:
    ignore = dataclasses.replace(
        config, validation=dataclasses.replace(config.validation, extra_columns="ignore")
    )
    rejecting, ignoring = (
        expectations(build_raw_suite(config)),
        expectations(build_raw_suite(ignore)),
    )
    assert set(rejecting) - set(ignoring) == {("expect_table_columns_to_match_set", None)}
    assert set(ignoring) <= set(rejecting)
    assert expectations(build_training_suite(ignore)) == expectations(build_training_suite(config))


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
        ("\u0663", False),  # a digit to Python's \\d, not to pandas.to_numeric
        ("\xa04", False),  # a space to Python's \\s, not to pandas.to_numeric
    ],
)
def test_numeric_regex(text: str, numeric: bool) -> None:
    assert bool(re.search(NUMERIC_REGEX, text)) is numeric
    try:  # what the raw gate promises: to_numeric reads it as a finite number
        reads = bool(np.isfinite(pd.to_numeric(pd.Series([text], dtype=object)).iloc[0]))
    except ValueError:
        reads = False
    assert reads is numeric


def test_numbers_are_checked_as_their_text_would_be(config: Config) -> None:
    """The numbers check asks a numeric column isfinite instead of matching each value's text:
    the verdicts are the regex's on that text."""
    import great_expectations as gx

    from validation.context import DATASOURCE
    from validation.expectations import ExpectColumnValuesToBeNumbers

    values = [1e-05, -0.0, 1.5e20, 12.0, np.inf, -np.inf, np.nan, 3.25]
    frame = pd.DataFrame(
        {"floats": values, "ints": range(len(values)), "text": [str(v) for v in values]}
    )
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas(DATASOURCE)
        .add_dataframe_asset("numbers")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    for column, failing in (("floats", [4, 5]), ("ints", []), ("text", [4, 5, 6])):
        check = ExpectColumnValuesToBeNumbers(column=column, regex=NUMERIC_REGEX)
        result = batch.validate(check, result_format="COMPLETE").to_json_dict()["result"]
        assert result["unexpected_index_list"] == failing, column
        by_text = [
            i
            for i, v in enumerate(frame[column])
            if pd.notna(v) and not re.search(NUMERIC_REGEX, str(v))
        ]
        assert by_text == failing, column
