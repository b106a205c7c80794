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
from validation.suites import build_raw_suite, build_training_suite, raw_suite_name

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


def _add_checkpoint(context: EphemeralDataContext, name: str, suite: gx.ExpectationSuite) -> None:
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
            name=name, validation_definitions=[definition], actions=[], result_format=RESULT_FORMAT
        )
    )


# How each raw expectation type is checked when a file is validated in chunks. "rows": it holds
# for the file iff it holds for every chunk (each chunk has the file's columns), and its counts
# add up. "totals": it needs the whole file (row count, a missing share, uniqueness) and runs
# once on a compact frame of the file. An expectation not listed here cannot be split: adding
# one to validation.suites without classifying it here fails loudly (and in the tests).
_ROW_WISE = frozenset(
    {
        "expect_column_to_exist",
        "expect_table_columns_to_match_set",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_in_type_list",
    }
)
_TOTALS = frozenset({"expect_table_row_count_to_be_between", "expect_column_values_to_be_unique"})
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
    value_columns: tuple[str, ...]  # columns whose values the totals need (uniqueness)
    null_columns: tuple[str, ...]  # columns whose missing share the totals check (``mostly``)


@functools.lru_cache(maxsize=8)
def get_chunked_raw_gate(cfg: Config) -> ChunkedRawGate:
    """Adds the checkpoints ``raw_file_rows`` and ``raw_file_totals`` to the config's context,
    once per process and config (not in :func:`get_context`: a whole-file run needs neither)."""
    import great_expectations as gx

    context = get_context(cfg)
    suite = build_raw_suite(cfg)
    parts: dict[str, list[Any]] = {"rows": [], "totals": []}
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        parts[classify_raw_expectation(expectation.expectation_type, kwargs)].append(expectation)
    existing = {checkpoint.name for checkpoint in context.checkpoints.all()}
    for part, checkpoint in (("rows", RAW_ROWS_CHECKPOINT), ("totals", RAW_TOTALS_CHECKPOINT)):
        if checkpoint in existing:
            continue  # this cache forgot the config, get_context's did not: added already
        name = f"{suite.name}.{part}"
        _add_checkpoint(
            context, checkpoint, gx.ExpectationSuite(name=name, expectations=parts[part])
        )
    totals = [(e.expectation_type, e.configuration.kwargs) for e in parts["totals"]]
    values = tuple(dict.fromkeys(k["column"] for t, k in totals if t == UNIQUE))
    nulls = tuple(
        dict.fromkeys(k["column"] for t, k in totals if t == NOT_NULL and k["column"] not in values)
    )
    return ChunkedRawGate(
        context=context,
        suite=raw_suite_name(cfg),
        order=tuple(
            expectation_key(e.expectation_type, e.configuration.kwargs) for e in suite.expectations
        ),
        value_columns=values,
        null_columns=nulls,
    )


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
