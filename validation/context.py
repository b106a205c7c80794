"""The GX File Data Context in ``validation/gx/``, kept in step with the config.

The suites, validation definitions and checkpoints are committed files generated from the config
(``get_context(load_config())`` regenerates them). Several Airflow workers open the context at
once, so :func:`get_context` only compares when everything already matches and writes nothing;
creating or updating happens under a file lock, after re-reading what another process may have
just written. Validation results and Data Docs go to the gitignored ``uncommitted/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrain.config import Config
from validation.suites import (
    build_raw_suite,
    build_training_suite,
    suite_spec,
)

if TYPE_CHECKING:
    from great_expectations.data_context import FileDataContext

log = logging.getLogger(__name__)

CONTEXT_ROOT = Path(__file__).parent
ROOT_ENV = "RETRAIN_GX_ROOT"  # points tests (or a deployment) at another project root
CONTEXT_DIR_NAME = "gx"
DATASOURCE = "pandas"
ASSET = "dataframe"
BATCH_DEFINITION = "whole_dataframe"
RAW_CHECKPOINT = "raw_file"
TRAINING_CHECKPOINT = "training_set"
DOCS_ACTION = "update_data_docs"
DOCS_SITE = "local_site"
# SUMMARY keeps up to 20 example values per failed expectation: enough to explain a rejection,
# bounded for a million-row file (COMPLETE would list every failing row index).
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
_LOCK_NAME = ".retrain-sync.lock"


def context_root(root: str | Path | None = None) -> Path:
    """The GX project root: ``root``, else ``$RETRAIN_GX_ROOT``, else this package's folder."""
    if root is not None:
        return Path(root)
    if env := os.environ.get(ROOT_ENV):
        return Path(env)
    return CONTEXT_ROOT


def context_dir(root: str | Path | None = None) -> Path:
    return context_root(root) / CONTEXT_DIR_NAME


def data_docs_dir(root: str | Path | None = None) -> Path:
    return context_dir(root) / "uncommitted" / "data_docs" / DOCS_SITE


@dataclass(frozen=True)
class _Gate:
    checkpoint: str
    suite: Any  # gx.ExpectationSuite built from the config


def _gates(cfg: Config) -> tuple[_Gate, ...]:
    return (
        _Gate(RAW_CHECKPOINT, build_raw_suite(cfg)),
        _Gate(TRAINING_CHECKPOINT, build_training_suite(cfg)),
    )


def get_context(cfg: Config, root: str | Path | None = None) -> FileDataContext:
    """Open the File Data Context, creating it and syncing it with ``cfg`` only when needed."""
    import great_expectations as gx

    root = context_root(root)
    if (context_dir(root) / "great_expectations.yml").exists():
        context = gx.get_context(mode="file", project_root_dir=root)
        drift = _sync(context, cfg, write=False)
        if not drift:
            return context
        log.info("GX context %s differs from the config: %s", context_dir(root), "; ".join(drift))
    with _lock(root):
        # Re-open: another worker may have created or synced the context while we waited.
        context = gx.get_context(mode="file", project_root_dir=root)
        if drift := _sync(context, cfg, write=True):
            log.info("GX context %s updated: %s", context_dir(root), "; ".join(drift))
    return context


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    lock_dir = context_dir(root) / "uncommitted"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / _LOCK_NAME).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sync(context: FileDataContext, cfg: Config, *, write: bool) -> list[str]:
    """What differs from the config (empty: in step); with ``write``, also fix it."""
    drift = _sync_settings(context, write)
    batch_definition = _sync_batch_definition(context, drift, write)
    gates = _gates(cfg)
    for gate in gates:
        suite = _sync_suite(context, gate.suite, drift, write)
        definition = _sync_validation_definition(
            context, gate.suite.name, suite, batch_definition, drift, write
        )
        _sync_checkpoint(context, gate.checkpoint, definition, drift, write)
    _prune(context, gates, drift, write)
    return drift


def _sync_settings(context: FileDataContext, write: bool) -> list[str]:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    drift = []
    variables = context.variables
    # No phoning home from workers, and no tqdm bars in the Airflow task logs.
    if variables.analytics_enabled is not False:
        drift.append("analytics enabled")
        if write:
            variables.analytics_enabled = False
    bars = variables.progress_bars  # a dict once read back from the YAML
    if isinstance(bars, ProgressBarsConfig):
        bars = {"globally": bars.globally, "metric_calculations": bars.metric_calculations}
    if not bars or any(bars.get(key) is not False for key in ("globally", "metric_calculations")):
        drift.append("progress bars enabled")
        if write:
            variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    if drift and write:
        variables.save()
    return drift


def _sync_batch_definition(context: FileDataContext, drift: list[str], write: bool) -> Any:
    try:
        datasource = context.data_sources.get(DATASOURCE)
    except Exception:  # GX raises different types for "missing" across versions
        drift.append(f"data source {DATASOURCE} missing")
        if not write:
            return None
        datasource = context.data_sources.add_pandas(DATASOURCE)
    try:
        asset = datasource.get_asset(ASSET)
    except Exception:
        drift.append(f"asset {ASSET} missing")
        if not write:
            return None
        asset = datasource.add_dataframe_asset(ASSET)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION)
    except Exception:
        drift.append(f"batch definition {BATCH_DEFINITION} missing")
        if not write:
            return None
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)


def _sync_suite(context: FileDataContext, desired: Any, drift: list[str], write: bool) -> Any:
    try:
        existing = context.suites.get(desired.name)
    except Exception:
        existing = None
        drift.append(f"suite {desired.name} missing")
    else:
        if suite_spec(existing) == suite_spec(desired):
            return existing
        drift.append(f"suite {desired.name} differs")
    return context.suites.add_or_update(desired) if write else existing


def _sync_validation_definition(
    context: FileDataContext,
    name: str,
    suite: Any,
    batch_definition: Any,
    drift: list[str],
    write: bool,
) -> Any:
    import great_expectations as gx

    try:
        existing = context.validation_definitions.get(name)
    except Exception:
        existing = None
        drift.append(f"validation definition {name} missing")
    else:
        if (
            suite is not None
            and batch_definition is not None
            and existing.suite.id == suite.id
            and existing.data.id == batch_definition.id
        ):
            return existing
        drift.append(f"validation definition {name} differs")
    if not write:
        return existing
    return context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
    )


def _sync_checkpoint(
    context: FileDataContext, name: str, definition: Any, drift: list[str], write: bool
) -> None:
    import great_expectations as gx

    try:
        existing = context.checkpoints.get(name)
    except Exception:
        drift.append(f"checkpoint {name} missing")
    else:
        if definition is not None and _checkpoint_spec(existing) == _checkpoint_spec_for(
            definition
        ):
            return
        drift.append(f"checkpoint {name} differs")
    if write:
        context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name=DOCS_ACTION)],
                result_format=RESULT_FORMAT,
            )
        )


def _checkpoint_spec(checkpoint: Any) -> dict[str, Any]:
    data = checkpoint.dict()
    return {
        "validation_definitions": [(v.name, v.id) for v in checkpoint.validation_definitions],
        "actions": [(a["type"], a["name"], a.get("site_names")) for a in data["actions"]],
        "result_format": data["result_format"],
    }


def _checkpoint_spec_for(definition: Any) -> dict[str, Any]:
    return {
        "validation_definitions": [(definition.name, definition.id)],
        "actions": [("update_data_docs", DOCS_ACTION, [])],
        "result_format": RESULT_FORMAT,
    }


def _prune(context: FileDataContext, gates: tuple[_Gate, ...], drift: list[str], write: bool):
    """Drop checkpoints, definitions and suites the config no longer produces (e.g. a renamed
    dataset), so the committed tree holds exactly what the config describes."""
    checkpoints = {g.checkpoint for g in gates}
    suites = {g.suite.name for g in gates}
    for kind, factory, keep in (
        ("checkpoint", context.checkpoints, checkpoints),
        ("validation definition", context.validation_definitions, suites),
        ("suite", context.suites, suites),
    ):
        for obj in list(factory.all()):
            if obj.name not in keep:
                drift.append(f"{kind} {obj.name} not in the config")
                if write:
                    factory.delete(obj.name)
