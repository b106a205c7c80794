"""The two GX Expectation Suites, derived from the config alone so a new dataset needs no code.

``<dataset>.raw`` checks one landed file as :func:`validation.gates.validate_raw_file` presents it
(values as the user wrote them, timestamps pre-parsed), ``<dataset>.training`` checks the typed
feature table right before training. Nothing here is dataset-specific.

Both suites start from :func:`shared_column_rules`: every rule the training gate applies to a
column is also applied to each file at ingest, so a file that would make every later training set
fail (repeated ids, a missing label) is quarantined on arrival instead of stalling the pipeline.
The suites differ only by :func:`file_rules` (what one file as sent must look like) and
:func:`set_level_rules` (what only the concatenated training table can show).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrain.config import Column, Config

if TYPE_CHECKING:
    import great_expectations as gx

# Text pandas.to_numeric reads as a finite number (" 12", "+.5", "1e-05"), the numbers check
# (validation.expectations) for a column still holding text; numbers it asks isfinite, with the
# verdict this regex gives their str(). ASCII digits and spaces only, as to_numeric reads them:
# Python's \d and \s would pass "٣" and "\xa04", which to_numeric rejects, and they keep pandas
# from matching with pyarrow (4x faster).
NUMERIC_REGEX = (
    r"^[ \t\n\r\f\v]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r\f\v]*$"
)
# The raw view types a timestamp column whose values all parse (GX then checks its dtype), and
# otherwise holds pd.Timestamp objects where they parse and the rest as sent.
TIMESTAMP_TYPES = ["Timestamp", "datetime64[ns]"]
TARGET_VALUES = [0, 1]
SUITE_NOTES = "Built in memory from the config by validation.suites."


def raw_suite_name(cfg: Config) -> str:
    return f"{cfg.dataset.name}.raw"


def training_suite_name(cfg: Config) -> str:
    return f"{cfg.dataset.name}.training"


def build_raw_suite(cfg: Config) -> gx.ExpectationSuite:
    """One landed file: the shared column rules plus size, schema, missing values and types."""
    import great_expectations as gx

    return gx.ExpectationSuite(
        name=raw_suite_name(cfg),
        expectations=[*shared_column_rules(cfg), *file_rules(cfg)],
        notes=SUITE_NOTES,
    )


def build_training_suite(cfg: Config) -> gx.ExpectationSuite:
    """The concatenated, typed training table: the shared column rules plus size and label mix."""
    import great_expectations as gx

    return gx.ExpectationSuite(
        name=training_suite_name(cfg),
        expectations=[*shared_column_rules(cfg), *set_level_rules(cfg)],
        notes=SUITE_NOTES,
    )


def shared_column_rules(cfg: Config) -> list[Any]:
    """Rules that hold for every file and therefore for any union of files: ids are unique, the
    target is a non-null 0/1 label, bounded numbers are in range, and those columns exist.

    Ids unique within each file do not make the union unique (an id may come back in a later
    file): that is ``[ingest] duplicate_ids``' job, and the training gate stays the last line.
    """
    import great_expectations as gx

    ds = cfg.dataset
    ex = gx.expectations
    shared = _shared_columns(cfg)
    rules: list[Any] = []
    for col in ds.columns:
        if col.name not in shared:
            continue
        rules.append(ex.ExpectColumnToExist(column=col.name))
        if col.name == ds.id_column:
            rules.append(ex.ExpectColumnValuesToBeUnique(column=col.name))
        if col.name == ds.target:
            # Not null even if the config forgot nullable = false: a row without a label cannot
            # be trained on. The {0, 1} set subsumes a numeric and a range check.
            rules.append(ex.ExpectColumnValuesToNotBeNull(column=col.name))
            rules.append(ex.ExpectColumnValuesToBeInSet(column=col.name, value_set=TARGET_VALUES))
        else:
            rules.extend(_range(col))
    return rules


def _shared_columns(cfg: Config) -> set[str]:
    """Columns the shared rules check. Not every column: the feature table the training gate sees
    drops e.g. free-text columns, so only these are certain to be there."""
    ds = cfg.dataset
    bounded = {
        c.name
        for c in ds.columns
        if c.dtype in ("int", "float") and (c.min is not None or c.max is not None)
    }
    return {ds.id_column, ds.target} | bounded


def file_rules(cfg: Config) -> list[Any]:
    """Rules for one file as sent: size, extra columns, missing values, numeric text, category
    sets and timestamps (the training table is already typed, so these cannot fail there)."""
    import great_expectations as gx

    from validation.expectations import ExpectColumnValuesToBeNumbers

    ds, limits = cfg.dataset, cfg.validation
    ex = gx.expectations
    rules: list[Any] = [ex.ExpectTableRowCountToBeBetween(min_value=limits.min_rows)]
    if limits.extra_columns == "reject":
        # exact_match=False would only catch missing columns (ExpectColumnToExist names those
        # one by one); exact_match=True also fails on columns the config does not name.
        rules.append(
            ex.ExpectTableColumnsToMatchSet(column_set=list(ds.column_names), exact_match=True)
        )
    shared = _shared_columns(cfg)
    for col in ds.columns:
        if col.name not in shared:
            rules.append(ex.ExpectColumnToExist(column=col.name))
        if col.name == ds.target:
            continue  # shared rules: not null, in {0, 1}
        rules.extend(_missing_values(col, limits.max_missing_fraction))
        if col.dtype in ("int", "float"):
            rules.append(ExpectColumnValuesToBeNumbers(column=col.name, regex=NUMERIC_REGEX))
        elif col.dtype == "category" and col.categories is not None:
            rules.append(
                ex.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.categories))
            )
        elif col.dtype == "datetime":
            rules.append(
                ex.ExpectColumnValuesToBeInTypeList(column=col.name, type_list=TIMESTAMP_TYPES)
            )
    return rules


def set_level_rules(cfg: Config) -> list[Any]:
    """Rules only the whole training set can meet: enough rows and a usable share of positives."""
    import great_expectations as gx

    ds, limits = cfg.dataset, cfg.validation
    ex = gx.expectations
    return [
        ex.ExpectTableRowCountToBeBetween(min_value=limits.training_min_rows),
        ex.ExpectColumnMeanToBeBetween(
            column=ds.target,
            min_value=limits.training_min_positive_fraction,
            max_value=limits.training_max_positive_fraction,
        ),
    ]


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
