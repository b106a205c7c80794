"""Scoring: the champion's scores for the newest accepted data (batch) and for a local file.

Batch scoring runs on the model asset (``dags/scoring_dag.py``), which only a deploy emits: a
run of the retrain DAG that holds its challenger skips the deploy task and emits nothing, and
:func:`score_newest` refuses a version that the gate never deployed besides, so a held model
never scores.

Which files are new for a model: the feature files of its training set (its metadata's
``feature_keys``, oldest first) that no scoring saw before; ``predictions/_scored.json`` keeps
every feature key a scoring has seen. The first scoring has no such record and scores the newest
batch of the model's training set only (the files of the batch of its newest feature file):
history is not back-scored. Each file becomes ``predictions/<version>/<its partition and
name>.parquet`` with the dataset's id and time columns, ``score`` (P(target = 1)) and
``model_version``; ``predictions/<version>/manifest.json`` is written after them (what that
version's scoring wrote), the record of seen files last, so a retry after a crash scores the
same files again and overwrites them with the same scores.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from dataclasses import replace as dc_replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrain.config import Config, DatasetConfig
from retrain.features import build_features
from retrain.layout import Layout
from retrain.registry import Champion, ModelRegistry
from retrain.storage import ObjectNotFound, S3Storage
from retrain.tables import UnreadableFile, coerce_types, read_table

if TYPE_CHECKING:
    import pandas as pd

    from retrain.training import Model

log = logging.getLogger(__name__)

SCORE_COLUMN = "score"
VERSION_COLUMN = "model_version"


class ScoringRefused(RuntimeError):
    """No model may score: no champion, or the version was never deployed (a held model).

    Deterministic: the same request is refused the same way, so the task fails without retries.
    """


class ScoringInputError(ValueError):
    """A file to score is unreadable, lacks columns the features need, or has bad values."""


# -- scoring a frame ---------------------------------------------------------------------------


def prediction_columns(ds: DatasetConfig) -> list[str]:
    return [ds.id_column, ds.time_column, SCORE_COLUMN, VERSION_COLUMN]


def score_frame(
    model: Model, features: pd.DataFrame, ds: DatasetConfig, version: str
) -> pd.DataFrame:
    """A ``build_features`` frame's predictions: id, time, score, model_version."""
    import pandas as pd

    return pd.DataFrame(
        {
            ds.id_column: features[ds.id_column].to_numpy(),
            ds.time_column: features[ds.time_column].to_numpy(),
            SCORE_COLUMN: model.predict_proba(features),
            VERSION_COLUMN: version,
        }
    )


def features_for_scoring(frame: pd.DataFrame, ds: DatasetConfig) -> pd.DataFrame:
    """A raw frame (as :func:`retrain.tables.read_table` reads it) typed and featurized exactly
    as training data are; the target column is optional, every other configured one required."""
    needed = [c for c in ds.column_names if c != ds.target]
    if missing := [c for c in needed if c not in frame.columns]:
        raise ScoringInputError(
            f"missing column(s) {missing}; scoring needs {needed} (the target is optional)"
        )
    inputs = dc_replace(ds, columns=tuple(c for c in ds.columns if c.name != ds.target))
    try:
        typed = coerce_types(frame, inputs)
    except ValueError as exc:
        raise ScoringInputError(str(exc)) from exc
    return build_features(typed, inputs)


def read_file_for_scoring(path: Path, ds: DatasetConfig) -> pd.DataFrame:
    """A local csv/parquet file in the dataset's raw format, featurized."""
    try:
        frame = read_table(Path(path).read_bytes(), Path(path).name, ds)
    except UnreadableFile as exc:
        raise ScoringInputError(str(exc)) from exc
    try:
        return features_for_scoring(frame, ds)
    except ScoringInputError as exc:
        raise ScoringInputError(f"{Path(path).name}: {exc}") from exc


def champion_model(registry: ModelRegistry) -> tuple[Champion, Model]:
    """The current champion and its model, or :class:`ScoringRefused` when there is none."""
    from retrain.training import Model

    champion = registry.champion()
    if champion is None:
        raise ScoringRefused(
            f"no champion deployed under {registry.storage.uri(registry.prefix)}: nothing scores "
            "until a retrain deploys a model"
        )
    return champion, Model.from_text(registry.load_model_text(champion.version))


# -- batch scoring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringResult:
    version: str  # the model that scored (the champion)
    requested_version: str | None  # the deployed version the model event named
    feature_keys: tuple[str, ...]  # the feature files scored
    prediction_keys: tuple[str, ...]  # one per scored feature file, same order
    rows: int
    manifest_key: str | None  # None: nothing was new
    missing: tuple[str, ...] = ()  # new for the model but gone since (retracted)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "feature_keys": list(self.feature_keys),
            "prediction_keys": list(self.prediction_keys),
            "missing": list(self.missing),
        }


def newest_batch(feature_keys: list[str] | tuple[str, ...]) -> list[str]:
    """The files of the newest feature file's batch (all of them, in the given order)."""
    if not feature_keys:
        return []
    batch = Layout.batch_of(feature_keys[-1])
    if batch is None:
        return [feature_keys[-1]]
    return [k for k in feature_keys if Layout.batch_of(k) == batch]


def score_newest(
    storage: S3Storage, cfg: Config, version: str | None, *, now: datetime | None = None
) -> ScoringResult:
    """Score the feature files new for the deployed ``version`` with the current champion.

    ``version``: what the model event named; it must have been deployed by the gate, else
    :class:`ScoringRefused` (a held model never scores). Normally it is the champion; if the
    champion moved since (a rollback, a newer deploy), the champion scores the files that were
    new for ``version``, and the result's note says so. ``None``: the current champion scores
    the files new for it (a run without a model event).
    """
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    layout = Layout.of(cfg)
    if version is not None:
        if not registry.version_exists(version):
            raise ScoringRefused(f"model version {version!r} does not exist: nothing to score")
        if not registry.was_deployed(version):
            raise ScoringRefused(
                f"model version {version} was never deployed (the gate held it, or it was never "
                "decided): a held model never scores"
            )
    champion, model = champion_model(registry)
    used = champion.version
    notes = []
    if version is None:
        notes.append(f"no model event named a version: scored with the champion {used}")
    elif version != used:
        notes.append(
            f"the champion moved from {version} to {used} since {version} was deployed: scored "
            f"{version}'s new data with the champion {used}"
        )
    source = version or used
    candidates = list(registry.load_metadata(source).get("feature_keys") or [])
    if not candidates:
        raise ScoringRefused(f"model version {source}: metadata lists no feature_keys")

    state = _read_state(storage, layout)
    if state is None:
        new = newest_batch(candidates)
        notes.append(f"first scoring: the newest batch of {source}'s training data only")
    else:
        seen = set(state.get("feature_keys") or [])
        new = [k for k in candidates if k not in seen]
    if not new:
        log.info("scoring: nothing new for %s (every feature file was scored before)", source)
        return ScoringResult(
            version=used,
            requested_version=version,
            feature_keys=(),
            prediction_keys=(),
            rows=0,
            manifest_key=None,
            note="; ".join([*notes, "nothing new to score"]),
        )

    scored, written, missing, files, rows = [], [], [], [], 0
    for key in new:
        try:
            features = storage.read_parquet(key)
        except ObjectNotFound:
            missing.append(key)
            log.warning("scoring: %s is gone (retracted?), skipped", key)
            continue
        predictions = score_frame(model, features, cfg.dataset, used)
        target = layout.predictions_key(used, key)
        storage.write_parquet(target, predictions)
        scored.append(key)
        written.append(target)
        files.append({"feature_key": key, "predictions_key": target, "rows": len(predictions)})
        rows += len(predictions)
        log.info("scoring: %s -> %s (%d rows, model %s)", key, target, len(predictions), used)
    if missing:
        notes.append(f"{len(missing)} feature file(s) gone since (retracted?) skipped")

    at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    manifest_key = layout.predictions_manifest_key(used)
    _write_manifest(storage, manifest_key, used, version, files, missing, at, "; ".join(notes))
    storage.put_json(
        layout.scoring_state_key,
        {
            "feature_keys": sorted(set((state or {}).get("feature_keys") or []) | set(candidates)),
            "last": {"version": used, "requested_version": version, "manifest": manifest_key},
            "scored_at": at,
        },
    )
    return ScoringResult(
        version=used,
        requested_version=version,
        feature_keys=tuple(scored),
        prediction_keys=tuple(written),
        rows=rows,
        manifest_key=manifest_key,
        missing=tuple(missing),
        note="; ".join(notes),
    )


def _read_state(storage: S3Storage, layout: Layout) -> dict[str, Any] | None:
    try:
        return storage.get_json(layout.scoring_state_key)
    except ObjectNotFound:
        return None


def _write_manifest(
    storage: S3Storage,
    key: str,
    version: str,
    requested: str | None,
    files: list[dict[str, Any]],
    missing: list[str],
    at: str,
    note: str,
) -> None:
    """The version's manifest: every prediction file it wrote (an earlier scoring of the same
    version keeps its entries; a file scored again replaces its own)."""
    try:
        earlier = storage.get_json(key).get("files") or []
    except ObjectNotFound:
        earlier = []
    again = {f["feature_key"] for f in files}
    merged = [f for f in earlier if f.get("feature_key") not in again] + files
    storage.put_json(
        key,
        {
            "version": version,
            "requested_version": requested,
            "files": merged,
            "rows": sum(int(f["rows"]) for f in merged),
            "missing": missing,
            "scored_at": at,
            "note": note,
        },
    )
