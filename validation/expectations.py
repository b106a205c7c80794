"""The project's own GX expectation: a column's values are numbers.

GX's ``ExpectColumnValuesToMatchRegex`` turns every value into text and matches it, which for a
column the raw view has already parsed into numbers (the usual case: a CSV's numeric column)
means formatting a million floats per check, a quarter of a 1M-row file's validation. This
expectation asks the same question of each value, "would ``pandas.to_numeric`` read it as a
finite number?", in the cheapest way the column allows: ``isfinite`` for a numeric column, the
regex (:data:`validation.suites.NUMERIC_REGEX`) for text. Same rows pass and fail, same result
format; importing this module registers it with GX.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.core.expect_column_values_to_match_regex import (
    ExpectColumnValuesToMatchRegex,
)
from great_expectations.expectations.metrics import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

NUMBERS_METRIC = "column_values.numbers"


class ColumnValuesNumbers(ColumnMapMetricProvider):
    """Per value: a finite number, or text that ``regex`` accepts (nulls are left out by GX)."""

    condition_metric_name = NUMBERS_METRIC
    condition_value_keys = ("regex",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, regex: str, **kwargs: Any) -> pd.Series:
        if column.dtype.kind in "iuf":
            finite = np.isfinite(column.to_numpy(dtype=np.float64))
            return pd.Series(finite, index=column.index)
        return column.astype(str).str.contains(regex)


class ExpectColumnValuesToBeNumbers(ExpectColumnValuesToMatchRegex):
    """Expect each value to be a finite number, or text ``pandas.to_numeric`` reads as one
    (``regex``). The regex expectation's parameters and results, checked without turning
    numbers into text."""

    map_metric: ClassVar[str] = NUMBERS_METRIC
