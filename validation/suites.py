"""The two GX Expectation Suites, derived from the config alone so a new dataset needs no code.

``<dataset>.raw`` checks one landed file as :func:`validation.gates.validate_raw_file` presents it
(values as the user wrote them, timestamps pre-parsed), ``<dataset>.training`` checks the typed
feature table right before training. Nothing here is dataset-specific.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from retrain.config import Column, Config

if TYPE_CHECKING:
    import great_expectations as gx

# Anything pandas.to_numeric reads as a finite number; matched against str(value), so floats
# already parsed ("1e-05", "-0.0") pass as well as CSV text (" 12", "+.5").
NUMERIC_REGEX = r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$"
# The raw view replaces parseable timestamps by pd.Timestamp objects and keeps the rest as sent.
TIMESTAMP_TYPES = ["Timestamp"]
TARGET_VALUES = [0, 1]
SUITE_NOTES = "Generated from retrain.toml by validation.suites; edit the config, not this file."


def raw_suite_name(cfg: Config) -> str:
    return f"{cfg.dataset.name}.raw"


def training_suite_name(cfg: Config) -> str:
    return f"{cfg.dataset.name}.training"


def build_raw_suite(cfg: Config) -> gx.ExpectationSuite:
    """Expectations for one landed file: schema, size, missing values, types, ranges, sets."""
    import great_expectations as gx

    ds, limits = cfg.dataset, cfg.validation
    ex = gx.expectations
    expectations: list[Any] = [ex.ExpectTableRowCountToBeBetween(min_value=limits.min_rows)]
    for col in ds.columns:
        expectations.append(ex.ExpectColumnToExist(column=col.name))
        expectations.extend(_missing_values(col, limits.max_missing_fraction))
        if col.name == ds.target:
            expectations.append(
                ex.ExpectColumnValuesToBeInSet(column=col.name, value_set=TARGET_VALUES)
            )
        elif col.dtype in ("int", "float"):
            expectations.append(
                ex.ExpectColumnValuesToMatchRegex(column=col.name, regex=NUMERIC_REGEX)
            )
            expectations.extend(_range(col))
        elif col.dtype == "category" and col.categories is not None:
            expectations.append(
                ex.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.categories))
            )
        elif col.dtype == "datetime":
            expectations.append(
                ex.ExpectColumnValuesToBeInTypeList(column=col.name, type_list=TIMESTAMP_TYPES)
            )
    return gx.ExpectationSuite(
        name=raw_suite_name(cfg), expectations=expectations, notes=SUITE_NOTES
    )


def build_training_suite(cfg: Config) -> gx.ExpectationSuite:
    """Expectations for the concatenated, typed training table: size, labels, unique ids, ranges."""
    import great_expectations as gx

    ds, limits = cfg.dataset, cfg.validation
    ex = gx.expectations
    numeric = [c for c in ds.feature_columns if c.dtype in ("int", "float")]
    expectations: list[Any] = [
        ex.ExpectTableRowCountToBeBetween(min_value=limits.training_min_rows),
        ex.ExpectColumnToExist(column=ds.id_column),
        ex.ExpectColumnValuesToBeUnique(column=ds.id_column),
        ex.ExpectColumnToExist(column=ds.target),
        ex.ExpectColumnValuesToNotBeNull(column=ds.target),
        ex.ExpectColumnValuesToBeInSet(column=ds.target, value_set=TARGET_VALUES),
        ex.ExpectColumnMeanToBeBetween(
            column=ds.target,
            min_value=limits.training_min_positive_fraction,
            max_value=limits.training_max_positive_fraction,
        ),
    ]
    for col in numeric:
        if col.min is not None or col.max is not None:
            expectations.append(ex.ExpectColumnToExist(column=col.name))
            expectations.extend(_range(col))
    return gx.ExpectationSuite(
        name=training_suite_name(cfg), expectations=expectations, notes=SUITE_NOTES
    )


def _missing_values(col: Column, default_fraction: float) -> list[Any]:
    import great_expectations as gx

    if not col.nullable:
        return [gx.expectations.ExpectColumnValuesToNotBeNull(column=col.name)]
    fraction = default_fraction if col.max_missing_fraction is None else col.max_missing_fraction
    if fraction >= 1:
        return []
    mostly = round(1 - fraction, 10)  # 1 - 0.3 must be 0.7, not 0.7000000000000001
    return [gx.expectations.ExpectColumnValuesToNotBeNull(column=col.name, mostly=mostly)]


def _range(col: Column) -> list[Any]:
    import great_expectations as gx

    if col.min is None and col.max is None:
        return []
    return [
        gx.expectations.ExpectColumnValuesToBeBetween(
            column=col.name, min_value=col.min, max_value=col.max
        )
    ]


def suite_spec(suite: gx.ExpectationSuite | dict[str, Any]) -> dict[str, Any]:
    """A suite's content without ids and GX version: equal specs mean nothing needs saving.

    Accepts a suite object or its stored JSON, so a committed file can be compared with what the
    config produces.
    """
    data = suite if isinstance(suite, dict) else suite.to_json_dict()
    data = json.loads(json.dumps(data, sort_keys=True, default=str))
    meta = {k: v for k, v in (data.get("meta") or {}).items() if k != "great_expectations_version"}
    return {
        "name": data["name"],
        "notes": data.get("notes"),
        "meta": meta,
        "expectations": [
            {k: v for k, v in e.items() if k not in ("id", "rendered_content")}
            for e in data.get("expectations", [])
        ],
    }
