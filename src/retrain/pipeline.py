"""The pipeline's steps, one function per Airflow task, wired from the pure modules.

Each step takes the storage and the config, does its I/O through them, and returns a frozen
result whose ``as_dict()`` is what the task hands on through XCom (keys and numbers, never data).
Steps are idempotent where a retry can repeat them: a file already routed is not routed twice, a
feature file already built is not rebuilt, a model version is written once.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from retrain import reports
from retrain.config import Config
from retrain.decision import decide
from retrain.drift import DriftReport, compare, reference_profile
from retrain.features import build_features
from retrain.registry import ChampionChanged, ModelRegistry
from retrain.storage import S3Storage
from retrain.tables import UnreadableFile, coerce_types, read_table
from retrain.training import Metrics, Model, evaluate, split_by_time, train_model

log = logging.getLogger(__name__)


class TrainingSetRejected(RuntimeError):
    """The training set failed its GX checkpoint: no model is trained, the champion stays."""


def batch_id_for(run_id: str) -> str:
    """A short, stable batch id per DAG run: a retried task writes to the same place."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:12]


def _relative(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else posixpath.basename(key)


# -- ingest ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    source_key: str
    dest_key: str
    valid: bool
    reason: str
    report_key: str | None = None
    rows: int | None = None


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    outcomes: tuple[FileOutcome, ...]
    summary_key: str

    @property
    def raw_keys(self) -> tuple[str, ...]:
        return tuple(o.dest_key for o in self.outcomes if o.valid)

    @property
    def quarantined(self) -> tuple[FileOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.valid)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "raw_keys": list(self.raw_keys),
            "quarantined": [asdict(o) for o in self.quarantined],
            "outcomes": [asdict(o) for o in self.outcomes],
            "summary_key": self.summary_key,
        }


def ingest_batch(
    storage: S3Storage,
    cfg: Config,
    files: list[dict[str, Any]],
    *,
    batch_id: str,
    ingest_date: date | None = None,
) -> IngestResult:
    """Gate every landed file with the raw GX checkpoint and route it to raw/ or quarantine/.

    A rejected file keeps its bytes: it moves to quarantine/ next to a JSON report saying why.
    The report is written before the file moves, so a quarantined file always has its reason.
    """
    from validation.gates import build_data_docs, unreadable_file_result, validate_raw_file

    s = cfg.storage
    day = (ingest_date or datetime.now(UTC).date()).isoformat()
    partition = f"ingest_date={day}/batch={batch_id}/"
    outcomes = []
    for item in files:
        key = item["key"]
        rel = _relative(key, s.landing_prefix)
        raw_key = f"{s.raw_prefix}{partition}{rel}"
        quarantine_key = f"{s.quarantine_prefix}{partition}{rel}"
        if not storage.exists(key):
            outcomes.append(_already_routed(storage, key, raw_key, quarantine_key))
            continue
        data, rows = storage.get_bytes(key), None
        try:
            df = read_table(data, rel, cfg.dataset)
            rows = len(df)
            result = validate_raw_file(df, cfg, run_name=f"{batch_id}-{rel}")
        except UnreadableFile as exc:
            result = unreadable_file_result(rel, exc, cfg)
        except Exception as exc:
            # A file that crashes the gate would otherwise fail every retry and every later
            # batch behind it: quarantine it with the error, keep the pipeline moving.
            log.exception("validating %s crashed", key)
            result = unreadable_file_result(rel, f"validation crashed: {exc!r}", cfg)
        if result.success:
            storage.move(key, raw_key)
            outcomes.append(FileOutcome(key, raw_key, True, "passed", rows=rows))
            log.info("valid: %s -> %s (%s rows)", key, raw_key, rows)
            continue
        report_key, reason = f"{quarantine_key}.report.json", result.summary()
        storage.put_json(
            report_key,
            {
                "file": key,
                "quarantined_as": quarantine_key,
                "batch_id": batch_id,
                "reason": reason,
                "failed_expectations": [asdict(f) for f in result.failed],
                "statistics": result.statistics,
                "validation_result": result.result,
            },
        )
        storage.move(key, quarantine_key)
        outcomes.append(FileOutcome(key, quarantine_key, False, reason, report_key, rows))
        log.warning(
            "QUARANTINED %s -> %s: %s (report: %s)",
            key,
            storage.uri(quarantine_key),
            reason,
            storage.uri(report_key),
        )

    docs_prefix = f"{s.reports_prefix}gx/"
    storage.upload_dir(build_data_docs(cfg), docs_prefix)
    entries = [
        {
            "file": o.source_key,
            "status": "passed" if o.valid else "quarantined",
            "reason": o.reason,
            "destination": o.dest_key,
            "report": o.report_key,
            "data_docs": "gx/index.html",
        }
        for o in outcomes
    ]
    summary_key = reports.publish_validation_summary(storage, s.reports_prefix, batch_id, entries)
    publish_index(storage, cfg)
    return IngestResult(batch_id=batch_id, outcomes=tuple(outcomes), summary_key=summary_key)


def _already_routed(storage: S3Storage, key: str, raw_key: str, quarantine_key: str) -> FileOutcome:
    """A retried task finds the file gone from landing/: report where the first try put it."""
    if storage.exists(raw_key):
        return FileOutcome(key, raw_key, True, "passed (routed by an earlier try)")
    if storage.exists(quarantine_key):
        return FileOutcome(
            key,
            quarantine_key,
            False,
            "quarantined by an earlier try",
            f"{quarantine_key}.report.json",
        )
    raise FileNotFoundError(
        f"{storage.uri(key)} vanished from landing/ and is in neither {raw_key} nor "
        f"{quarantine_key}: it was deleted or moved by something outside this pipeline"
    )


# -- features ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureBuild:
    written: tuple[str, ...]
    rows: int
    already_built: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "written": list(self.written),
            "rows": self.rows,
            "already_built": self.already_built,
        }


def feature_key_for(raw_key: str, cfg: Config) -> str:
    rel = _relative(raw_key, cfg.storage.raw_prefix)
    stem = rel.removesuffix(".gz").rsplit(".", 1)[0]
    return f"{cfg.storage.features_prefix}{stem}.parquet"


def build_features_for_new_raw(storage: S3Storage, cfg: Config) -> FeatureBuild:
    """Featurize each raw file that has no feature file yet (features are row-wise)."""
    existing = {o.key for o in storage.list_objects(cfg.storage.features_prefix)}
    written, rows, already = [], 0, 0
    for obj in storage.list_objects(cfg.storage.raw_prefix):
        target = feature_key_for(obj.key, cfg)
        if target in existing:
            already += 1
            continue
        typed = coerce_types(
            read_table(storage.get_bytes(obj.key), obj.key, cfg.dataset), cfg.dataset
        )
        table = build_features(typed, cfg.dataset)
        storage.write_parquet(target, table)
        written.append(target)
        rows += len(table)
        log.info("features: %s -> %s (%d rows)", obj.key, target, len(table))
    return FeatureBuild(written=tuple(written), rows=rows, already_built=already)


def load_features(storage: S3Storage, keys: list[str] | tuple[str, ...]) -> pd.DataFrame:
    return pd.concat([storage.read_parquet(k) for k in keys], ignore_index=True)


# -- training ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSetCheck:
    feature_keys: tuple[str, ...]
    rows: int
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return {"feature_keys": list(self.feature_keys), "rows": self.rows, "summary": self.summary}


def check_training_set(storage: S3Storage, cfg: Config, *, run_name: str) -> TrainingSetCheck:
    """Pin the feature files of this training run and gate them with the training checkpoint."""
    from validation.gates import build_data_docs, validate_training_set

    keys = tuple(
        o.key
        for o in storage.list_objects(cfg.storage.features_prefix)
        if o.key.endswith(".parquet")
    )
    if not keys:
        raise TrainingSetRejected(
            f"no feature files under {storage.uri(cfg.storage.features_prefix)}"
        )
    df = load_features(storage, keys)
    result = validate_training_set(df, cfg, run_name=run_name)
    storage.upload_dir(build_data_docs(cfg), f"{cfg.storage.reports_prefix}gx/")
    if not result.success:
        report_key = f"{cfg.storage.reports_prefix}training/{batch_id_for(run_name)}.json"
        storage.put_json(
            report_key,
            {
                "run": run_name,
                "reason": result.summary(),
                "failed_expectations": [asdict(f) for f in result.failed],
                "validation_result": result.result,
            },
        )
        raise TrainingSetRejected(
            f"training set rejected ({len(df)} rows from {len(keys)} files): {result.summary()} "
            f"-- report: {storage.uri(report_key)}; the champion keeps serving"
        )
    return TrainingSetCheck(feature_keys=keys, rows=len(df), summary=result.summary())


@dataclass(frozen=True)
class Challenger:
    version: str
    metrics: dict[str, Any]
    best_iteration: int
    n_train: int
    n_holdout: int
    holdout_start: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_challenger(storage: S3Storage, cfg: Config, feature_keys: list[str]) -> Challenger:
    """Train on the pinned features, evaluate on the time holdout, save a new model version."""
    df = load_features(storage, feature_keys)
    result = train_model(df, cfg)
    train_part, _ = split_by_time(df, cfg.dataset, cfg.training.holdout_fraction)
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    version = registry.new_version()
    challenger = Challenger(
        version=version,
        metrics=result.metrics.as_dict(),
        best_iteration=result.best_iteration,
        n_train=result.n_train,
        n_holdout=result.n_holdout,
        holdout_start=result.holdout_start,
    )
    registry.save_version(
        version,
        model_text=result.model.to_text(),
        metadata={
            **challenger.as_dict(),
            "dataset": cfg.dataset.name,
            "feature_keys": list(feature_keys),
            "feature_names": list(result.model.feature_names),
            "training": asdict(cfg.training),
            "created_at": datetime.now(UTC).isoformat(),
        },
        reference_profile=reference_profile(train_part, cfg.dataset, cfg.gate.psi_bins),
    )
    log.info("challenger %s: %s", version, challenger.metrics)
    return challenger


# -- decision and deploy -----------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRecord:
    version: str
    deploy: bool
    reason: str
    challenger_metrics: dict[str, Any]
    champion_version: str | None
    champion_metrics: dict[str, Any] | None
    drift: dict[str, Any] | None
    decided_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_and_decide(
    storage: S3Storage, cfg: Config, feature_keys: list[str], version: str
) -> DecisionRecord:
    """Score the champion on the challenger's holdout, check drift against the champion's
    reference, and let the gate decide. The record and its reports are written either way."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    df = load_features(storage, feature_keys)
    _, holdout = split_by_time(df, cfg.dataset, cfg.training.holdout_fraction)
    challenger_metrics = Metrics(**registry.load_metadata(version)["metrics"])
    champion = registry.champion()
    champion_metrics: Metrics | None = None
    drift: DriftReport | None = None
    if champion is not None:
        champion_model = Model.from_text(registry.load_model_text(champion.version))
        champion_metrics = evaluate(champion_model, holdout, cfg.dataset)
        drift = compare(
            registry.load_reference(champion.version), holdout, cfg.dataset, cfg.gate.psi_threshold
        )
    decision = decide(challenger_metrics, champion_metrics, drift, cfg.gate)
    record = DecisionRecord(
        version=version,
        deploy=decision.deploy,
        reason=decision.reason,
        challenger_metrics=challenger_metrics.as_dict(),
        champion_version=champion.version if champion else None,
        champion_metrics=champion_metrics.as_dict() if champion_metrics else None,
        drift=drift.as_dict() if drift else None,
        decided_at=datetime.now(UTC).isoformat(),
    )
    registry.record_decision(version, record.as_dict())
    rp = cfg.storage.reports_prefix
    reports.publish_decision(
        storage,
        rp,
        version,
        record.as_dict(),
        record.challenger_metrics,
        record.champion_metrics,
        record.drift,
    )
    if record.drift is not None:
        reports.publish_drift(storage, rp, version, record.drift)
    log.info("decision for %s: %s", version, "DEPLOY" if record.deploy else "HOLD")
    return record


@dataclass(frozen=True)
class DeployResult:
    version: str
    deployed: bool
    reason: str
    previous_version: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def deploy(storage: S3Storage, cfg: Config, record: dict[str, Any]) -> DeployResult:
    """Move the champion pointer to the challenger, if the gate said so and nobody else has
    moved it since the decision (compare-and-swap on models/champion.json)."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    version = record["version"]
    current = registry.champion()
    previous = current.version if current else None
    if not record["deploy"]:
        result = DeployResult(version, False, record["reason"], previous)
    elif previous != record["champion_version"]:
        result = DeployResult(
            version,
            False,
            f"champion changed from {record['champion_version']} "
            f"to {previous} after the decision; decide again",
            previous,
        )
    else:
        try:
            registry.promote(
                version,
                expected=current,
                reason=record["reason"],
                metrics=record["challenger_metrics"],
            )
            result = DeployResult(version, True, record["reason"], previous)
        except ChampionChanged as exc:
            result = DeployResult(version, False, f"lost the race to promote: {exc}", previous)
    publish_index(storage, cfg)
    return result


def publish_index(storage: S3Storage, cfg: Config) -> str:
    """Rebuild reports/index.html from what the bucket holds now."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    champion = registry.champion()
    decisions = [
        d
        for v in registry.list_versions()[-20:][::-1]
        if (d := registry.load_decision(v)) is not None
    ]
    return reports.publish_index(
        storage,
        cfg.storage.reports_prefix,
        champion=asdict(champion) if champion else None,
        latest_decisions=decisions,
        latest_validations=reports.latest_validation_entries(storage, cfg.storage.reports_prefix),
    )
