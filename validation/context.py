"""The GX Data Context: in memory, built from the config, once per process and config.

Nothing is read from or written to disk: a File Data Context under the code tree was shared by
every stack started from one checkout, missing on every other worker, and rewritten by a
bring-your-own config. Here suites, validation definitions and checkpoints are rebuilt from the
config (milliseconds, next to seconds for the GX import), so each worker validates against
exactly the config it runs with. Checkpoints have no actions: rendering Data Docs made a 200-row
run take ~1.5-2 s, without it ~0.2 s.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from retrain.config import Config
from validation.suites import build_raw_suite, build_training_suite

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.data_context import EphemeralDataContext

DATASOURCE = "pandas"
ASSET = "dataframe"
BATCH_DEFINITION = "whole_dataframe"
RAW_CHECKPOINT = "raw_file"
TRAINING_CHECKPOINT = "training_set"
# The raw suite split for files validated in chunks (see validation.gates.validate_raw_chunks).
RAW_ROWS_CHECKPOINT = "raw_file_rows"
RAW_TOTALS_CHECKPOINT = "raw_file_totals"
# SUMMARY keeps up to 20 example values per failed expectation: enough to explain a rejection,
# bounded for a million-row file (COMPLETE would list every failing row index).
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
# Many small files validated at once (validation.grouped): the index of every failing row, to
# name its file. Bounded by the rows of one group.
RAW_GROUP_ROWS_CHECKPOINT = "raw_group_rows"
RAW_GROUP_FILES_CHECKPOINT = "raw_group_files"
COMPLETE_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 20}
GX_LOGGER = "great_expectations"


@functools.lru_cache(maxsize=8)
def get_context(cfg: Config) -> EphemeralDataContext:
    """An ephemeral context with the two checkpoints ``raw_file`` and ``training_set`` (and, once
    :func:`get_chunked_raw_gate` asked for them, ``raw_file_rows`` and ``raw_file_totals``)."""
    quiet_gx_logs()  # before the first GX import, which alone logs ~200 INFO lines
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            # No temporary Data Docs site: nothing renders, nothing lands in /tmp.
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,  # no phoning home from workers
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        ),
    )
    datasource = context.data_sources.add_pandas(DATASOURCE)
    datasource.add_dataframe_asset(ASSET).add_batch_definition_whole_dataframe(BATCH_DEFINITION)
    _add_checkpoint(context, RAW_CHECKPOINT, build_raw_suite(cfg))
    _add_checkpoint(context, TRAINING_CHECKPOINT, build_training_suite(cfg))
    quiet_gx_logs()  # again: a GX module sets INFO on its own logger when imported
    return context


def _add_checkpoint(
    context: EphemeralDataContext,
    name: str,
    suite: gx.ExpectationSuite,
    result_format: dict[str, Any] = RESULT_FORMAT,
) -> None:
    import great_expectations as gx

    asset = context.data_sources.get(DATASOURCE).get_asset(ASSET)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(
            name=suite.name,
            data=asset.get_batch_definition(BATCH_DEFINITION),
            suite=context.suites.add(suite),
        )
    )
    context.checkpoints.add(
        gx.Checkpoint(
            name=name, validation_definitions=[definition], actions=[], result_format=result_format
        )
    )


# How each raw expectation type is checked when a file is validated in parts (chunks of one
# file, or many files at once). "rows": it holds for the file iff it holds for every part (each
# part has the file's columns), and its counts add up. "totals": it needs the whole file (row
# count, a missing share, uniqueness): validation.chunked counts them over the chunks,
# validation.grouped measures them per file. An expectation not listed here cannot be split:
# adding one to validation.suites without classifying it here fails loudly (and in the tests).
_ROW_WISE = frozenset(
    {
        "expect_column_to_exist",
        "expect_table_columns_to_match_set",
        "expect_column_values_to_be_numbers",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_in_type_list",
    }
)
ROW_COUNT = "expect_table_row_count_to_be_between"
_TOTALS = frozenset({ROW_COUNT, "expect_column_values_to_be_unique"})
NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"


def classify_raw_expectation(
    expectation_type: str, kwargs: Mapping[str, Any]
) -> Literal["rows", "totals"]:
    """``"rows"`` or ``"totals"`` (see above), or ``ValueError`` for a type nobody classified."""
    mostly = kwargs.get("mostly")
    if expectation_type == NOT_NULL:
        return "rows" if mostly is None or mostly >= 1 else "totals"
    if expectation_type in _TOTALS:
        return "totals"
    if expectation_type in _ROW_WISE and (mostly is None or mostly >= 1):
        return "rows"
    raise ValueError(
        f"cannot validate {expectation_type} {dict(kwargs)} chunk by chunk: classify it in "
        "validation.context.classify_raw_expectation"
    )


def expectation_key(expectation_type: str, kwargs: Mapping[str, Any]) -> str:
    """Identifies an expectation of a suite in a result (GX adds ``batch_id`` to the kwargs)."""
    shown = {k: v for k, v in kwargs.items() if k != "batch_id"}
    return f"{expectation_type} {json.dumps(shown, sort_keys=True, default=str)}"


@dataclass(frozen=True)
class ChunkedRawGate:
    """The raw suite split for chunked validation, as checkpoints of the config's context."""

    context: EphemeralDataContext
    suite: str  # the whole raw suite's name: chunked results read as its results
    order: tuple[str, ...]  # expectation_key of each raw expectation, in suite order
    unique_columns: tuple[str, ...]  # columns whose values must be unique over the file
    null_columns: tuple[str, ...]  # columns with a missing-share limit (``mostly``)


def _split_raw_suite(cfg: Config) -> tuple[gx.ExpectationSuite, list[Any], list[Any]]:
    """The raw suite and its expectations split into ``"rows"`` and ``"totals"``."""
    suite = build_raw_suite(cfg)
    parts: dict[str, list[Any]] = {"rows": [], "totals": []}
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        parts[classify_raw_expectation(expectation.expectation_type, kwargs)].append(expectation)
    return suite, parts["rows"], parts["totals"]


def _add_missing_checkpoints(
    context: EphemeralDataContext, suites: Mapping[str, tuple[gx.ExpectationSuite, dict]]
) -> None:
    """Add each ``checkpoint name -> (suite, result format)`` the context does not have yet (an
    lru_cache below forgot the config while get_context's did not: added already)."""
    existing = {checkpoint.name for checkpoint in context.checkpoints.all()}
    for checkpoint, (suite, result_format) in suites.items():
        if checkpoint not in existing:
            _add_checkpoint(context, checkpoint, suite, result_format)


@functools.lru_cache(maxsize=8)
def get_chunked_raw_gate(cfg: Config) -> ChunkedRawGate:
    """Adds the checkpoints ``raw_file_rows`` and ``raw_file_totals`` to the config's context,
    once per process and config (not in :func:`get_context`: a whole-file run needs neither)."""
    import great_expectations as gx

    context = get_context(cfg)
    suite, rows, totals = _split_raw_suite(cfg)
    name = suite.name
    _add_missing_checkpoints(
        context,
        {
            RAW_ROWS_CHECKPOINT: (
                gx.ExpectationSuite(name=f"{name}.rows", expectations=rows),
                RESULT_FORMAT,
            ),
            RAW_TOTALS_CHECKPOINT: (
                gx.ExpectationSuite(name=f"{name}.totals", expectations=totals),
                RESULT_FORMAT,
            ),
        },
    )
    kinds = [(e.expectation_type, e.configuration.kwargs) for e in totals]
    unique = tuple(dict.fromkeys(k["column"] for t, k in kinds if t == UNIQUE))
    nulls = tuple(dict.fromkeys(k["column"] for t, k in kinds if t == NOT_NULL))
    return ChunkedRawGate(
        context=context,
        suite=name,
        order=tuple(
            expectation_key(e.expectation_type, e.configuration.kwargs) for e in suite.expectations
        ),
        unique_columns=unique,
        null_columns=nulls,
    )


@dataclass(frozen=True)
class FileMeasure:
    """One column of the per-file summary a grouped run checks: what it measures in each file
    and the raw expectation whose verdict it decides."""

    column: str  # e.g. "rows", "duplicates:customer_id", "present:tenure_months"
    kind: Literal["rows", "duplicates", "present"]
    source: str | None  # the file's column it measures (None for the row count)


@dataclass(frozen=True)
class GroupedRawGate:
    """The raw suite for many small files at once (see :mod:`validation.grouped`): its
    row-wise part over their concatenation, its totals as checks of a per-file summary table,
    both with COMPLETE results so that every failing row or file can be traced to its file."""

    context: EphemeralDataContext
    suite: str
    measures: tuple[FileMeasure, ...]


@functools.lru_cache(maxsize=8)
def get_grouped_raw_gate(cfg: Config) -> GroupedRawGate:
    """Adds the checkpoints ``raw_group_rows`` and ``raw_group_files`` to the config's context.

    Each totals expectation of one file becomes a range check on one summary column: the row
    count on ``rows``; uniqueness on the number of rows sharing a non-missing value with
    another row (GX's own definition: ``duplicated(keep=False)``), which must be 0; a
    missing-value share (``mostly``) on the share of present values, which must be at least
    ``mostly`` (GX's ``_mostly_success``).
    """
    import great_expectations as gx

    ex = gx.expectations
    context = get_context(cfg)
    suite, rows, totals = _split_raw_suite(cfg)
    name = suite.name
    measures: list[FileMeasure] = []
    checks: list[Any] = []
    for expectation in totals:
        kind, kwargs = expectation.expectation_type, expectation.configuration.kwargs
        if kind == ROW_COUNT:
            measure = FileMeasure("rows", "rows", None)
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
        elif kind == UNIQUE:
            measure = FileMeasure(f"duplicates:{kwargs['column']}", "duplicates", kwargs["column"])
            low, high = 0, 0
        elif kind == NOT_NULL:
            measure = FileMeasure(f"present:{kwargs['column']}", "present", kwargs["column"])
            low, high = kwargs["mostly"], None
        else:  # classify_raw_expectation admitted a new totals type: say where to add it
            raise ValueError(f"no per-file measure for {kind}: add one in get_grouped_raw_gate")
        measures.append(measure)
        checks.append(
            ex.ExpectColumnValuesToBeBetween(column=measure.column, min_value=low, max_value=high)
        )
    _add_missing_checkpoints(
        context,
        {
            RAW_GROUP_ROWS_CHECKPOINT: (
                gx.ExpectationSuite(name=f"{name}.group_rows", expectations=rows),
                COMPLETE_FORMAT,
            ),
            RAW_GROUP_FILES_CHECKPOINT: (
                gx.ExpectationSuite(name=f"{name}.group_files", expectations=checks),
                COMPLETE_FORMAT,
            ),
        },
    )
    return GroupedRawGate(context=context, suite=name, measures=tuple(measures))


def quiet_gx_logs() -> None:
    """GX logs hundreds of INFO lines per run; keep task logs to the pipeline's own lines.

    Raising the parent is not enough: some GX modules set INFO on their own logger.
    """
    logging.getLogger(GX_LOGGER).setLevel(logging.WARNING)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (
            name.startswith(f"{GX_LOGGER}.")
            and isinstance(logger, logging.Logger)
            and logging.NOTSET < logger.level < logging.WARNING
        ):
            logger.setLevel(logging.WARNING)
