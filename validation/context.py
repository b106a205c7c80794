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
import logging
from typing import TYPE_CHECKING

from retrain.config import Config
from validation.suites import build_raw_suite, build_training_suite

if TYPE_CHECKING:
    from great_expectations.data_context import EphemeralDataContext

DATASOURCE = "pandas"
ASSET = "dataframe"
BATCH_DEFINITION = "whole_dataframe"
RAW_CHECKPOINT = "raw_file"
TRAINING_CHECKPOINT = "training_set"
# SUMMARY keeps up to 20 example values per failed expectation: enough to explain a rejection,
# bounded for a million-row file (COMPLETE would list every failing row index).
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
GX_LOGGER = "great_expectations"


@functools.lru_cache(maxsize=8)
def get_context(cfg: Config) -> EphemeralDataContext:
    """An ephemeral context with the two checkpoints ``raw_file`` and ``training_set``."""
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
    batch_definition = (
        context.data_sources.add_pandas(DATASOURCE)
        .add_dataframe_asset(ASSET)
        .add_batch_definition_whole_dataframe(BATCH_DEFINITION)
    )
    for checkpoint, suite in (
        (RAW_CHECKPOINT, build_raw_suite(cfg)),
        (TRAINING_CHECKPOINT, build_training_suite(cfg)),
    ):
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(
                name=suite.name, data=batch_definition, suite=context.suites.add(suite)
            )
        )
        context.checkpoints.add(
            gx.Checkpoint(
                name=checkpoint,
                validation_definitions=[definition],
                actions=[],
                result_format=RESULT_FORMAT,
            )
        )
    quiet_gx_logs()  # again: a GX module sets INFO on its own logger when imported
    return context


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
