"""Retrain: pin the feature files, gate the training set, train, evaluate, decide, deploy.

Each step reloads the pinned feature files by key (only keys travel through XCom) and assembles
them the same way, so the gate, the training and the evaluation see the same table.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from retrain import metrics as statsd
from retrain import reports
from retrain.alerts import Alert, Incidents, first_line
from retrain.config import Config
from retrain.decision import decide
from retrain.drift import DriftReport, compare, reference_profile
from retrain.history import Entry, History
from retrain.layout import Layout
from retrain.registry import ChampionChanged, ModelRegistry
from retrain.steps.reporting import publish_index
from retrain.storage import S3Storage
from retrain.training import Metrics, Model, evaluate, split_by_time, train_model

log = logging.getLogger(__name__)


class TrainingSetRejected(RuntimeError):
    """The training set failed its GX checkpoint: no model is trained, the champion stays.

    Deterministic: the same feature files fail the same way, so the task fails without retries.
    """


@dataclass(frozen=True)
class TrainingSet:
    """The pinned feature files as one table; ``sources`` names each row's feature file."""

    frame: pd.DataFrame
    sources: pd.Series
    replaced_rows: int  # rows an upsert replaced by a newer row with the same id


def pinned_feature_keys(storage: S3Storage, cfg: Config) -> tuple[str, ...]:
    """Every feature file, oldest first (ingest order decides which row an upsert keeps)."""
    objects = [
        o for o in storage.list_objects(cfg.storage.features_prefix) if o.key.endswith(".parquet")
    ]
    return tuple(o.key for o in sorted(objects, key=lambda o: (o.last_modified, o.key)))


def assemble_training_set(
    storage: S3Storage, cfg: Config, keys: list[str] | tuple[str, ...]
) -> TrainingSet:
    """Concatenate the feature files in the given order; under ``duplicate_ids = "upsert"`` keep
    the newest row per id (latest time column; on a tie, the later file)."""
    frames = [storage.read_parquet(k) for k in keys]
    sources = pd.Series(
        [k for k, f in zip(keys, frames, strict=True) for _ in range(len(f))], dtype=object
    )
    df = pd.concat(frames, ignore_index=True)
    replaced = 0
    if cfg.ingest.duplicate_ids == "upsert" and len(df):
        ds = cfg.dataset
        order = df.sort_values(ds.time_column, kind="stable").index
        keep = ~df.loc[order, ds.id_column].duplicated(keep="last")
        kept = order[keep.to_numpy()].sort_values()
        replaced = len(df) - len(kept)
        df, sources = df.loc[kept].reset_index(drop=True), sources.loc[kept].reset_index(drop=True)
        if replaced:
            log.info("upsert: %d row(s) replaced by newer rows with the same id", replaced)
    return TrainingSet(frame=df, sources=sources, replaced_rows=replaced)


def load_features(storage: S3Storage, cfg: Config, keys: list[str] | tuple[str, ...]):
    return assemble_training_set(storage, cfg, keys).frame


# -- training ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSetCheck:
    feature_keys: tuple[str, ...]
    rows: int
    summary: str
    replaced_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"feature_keys": list(self.feature_keys)}


def check_training_set(storage: S3Storage, cfg: Config, *, run_name: str) -> TrainingSetCheck:
    """Pin the feature files of this training run and gate them with the training checkpoint."""
    from validation.gates import validate_training_set

    keys = pinned_feature_keys(storage, cfg)
    if not keys:
        raise TrainingSetRejected(
            f"no feature files under {storage.uri(cfg.storage.features_prefix)}"
        )
    ts = assemble_training_set(storage, cfg, keys)
    result = validate_training_set(ts.frame, cfg, run_name=run_name)
    raw = [] if result.success else _raw_keys_of(storage, cfg, responsible_files(result, ts))
    report_key = _record_training_check(storage, cfg, run_name, keys, result, raw)
    if not result.success:
        blame = f"; files responsible: {raw} (`retrain retract FILE`)" if raw else ""
        raise TrainingSetRejected(
            f"training set rejected ({len(ts.frame)} rows from {len(keys)} files): "
            f"{result.summary()}{blame} -- report: {storage.uri(report_key)}; "
            "the champion keeps serving"
        )
    return TrainingSetCheck(
        feature_keys=keys,
        rows=len(ts.frame),
        summary=result.summary(),
        replaced_rows=ts.replaced_rows,
    )


def _record_training_check(
    storage: S3Storage,
    cfg: Config,
    run_name: str,
    keys: tuple[str, ...],
    result: Any,
    responsible: list[str],
) -> str:
    """The check's result (JSON and page) under reports/training/, its line in the history, and
    (for a rejection, which no deploy will follow) the index."""
    layout = Layout.of(cfg)
    report_key = layout.training_report_key(hashlib.sha256(run_name.encode()).hexdigest()[:12])
    storage.put_json(
        report_key,
        {
            "run": run_name,
            "success": result.success,
            "reason": result.summary(),
            "responsible_files": responsible,
            "feature_keys": list(keys),
            "failed_expectations": [asdict(f) for f in result.failed],
            "validation_result": result.result,
        },
    )
    page_key = report_key.removesuffix(".json") + ".html"
    storage.put_bytes(
        page_key,
        reports.render_validation_result(result.to_dict(), keys, root="../").encode(),
        content_type=reports.HTML_CONTENT_TYPE,
    )
    History(storage, layout).append(
        [
            Entry(
                at=datetime.now(UTC).isoformat(timespec="seconds"),
                kind="training set",
                name=run_name,
                status="passed" if result.success else "rejected",
                reason=first_line(result.summary()),
                link=page_key[len(cfg.storage.reports_prefix) :],
            )
        ]
    )
    if not result.success:
        publish_index(storage, cfg)
    return report_key


def responsible_files(result: Any, ts: TrainingSet) -> list[str]:
    """Feature files holding the rows behind each failed column expectation: the files with a
    duplicated id, or with one of GX's example unexpected values (set-level failures, such as
    too few rows, have no single culprit and name none)."""
    files: set[str] = set()
    for failure in result.failed:
        column = failure.column
        if column is None or column not in ts.frame.columns:
            continue
        values = ts.frame[column]
        if failure.expectation_type == "expect_column_values_to_be_unique":
            mask = values.duplicated(keep=False) & values.notna()
        elif failure.expectation_type == "expect_column_values_to_not_be_null":
            mask = values.isna()
        else:
            examples = (failure.details.get("result") or {}).get("partial_unexpected_list") or []
            mask = values.isin(examples)
        files |= set(ts.sources[mask.to_numpy()])
    return sorted(files)


def _raw_keys_of(storage: S3Storage, cfg: Config, feature_keys: list[str]) -> list[str]:
    if not feature_keys:
        return []
    layout, wanted = Layout.of(cfg), set(feature_keys)
    by_feature = {
        layout.feature_key(o.key): o.key for o in storage.list_objects(cfg.storage.raw_prefix)
    }
    return [by_feature.get(k, k) for k in sorted(wanted)]


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
    df = load_features(storage, cfg, feature_keys)
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
    training_rows: int = 0
    replaced_rows: int = 0  # rows an upsert replaced by newer rows with the same id

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_and_decide(
    storage: S3Storage, cfg: Config, feature_keys: list[str], version: str
) -> DecisionRecord:
    """Score the champion on the challenger's holdout, check drift against the champion's
    reference, and let the gate decide. The record and its reports are written either way."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    ts = assemble_training_set(storage, cfg, feature_keys)
    df = ts.frame
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
        training_rows=len(df),
        replaced_rows=ts.replaced_rows,
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


def record_outcome(
    incidents: Incidents,
    storage: S3Storage,
    cfg: Config,
    record: dict[str, Any],
    result: DeployResult,
    *,
    run: str,
) -> Alert | None:
    """The retrain streak (runs in a row without a deploy) and, for a decision worth a look, a
    notice with the decision report: a deploy despite drift; a hold that is not the gate doing
    its job ("the challenger was not better") but drift, a challenger below the floor or with
    an undefined metric, or a champion moved under the decision."""
    drifted = bool((record.get("drift") or {}).get("drifted"))
    if result.deployed:
        incidents.reset_streak()
        notable, name = drifted, "retrain:deployed"
        title = f"retrain deployed {result.version} despite drift"
    else:
        streak = incidents.bump_streak(run, result.reason)
        metric = float(record["challenger_metrics"][cfg.gate.metric])
        below_floor = math.isnan(metric) or metric < cfg.gate.min_metric
        notable, name = drifted or below_floor or record["deploy"], "retrain:held"
        title = f"retrain held the champion ({streak.runs} run(s) in a row without a deploy)"
    if not notable:
        return None
    page = reports.report_keys(cfg.storage.reports_prefix, result.version).decision
    return incidents.notice(name, title, result.reason, links=(storage.uri(page),))


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
    name = cfg.gate.metric
    with statsd.Metrics.from_config(cfg.metrics) as m:
        statsd.record_decision(
            m,
            challenger_metric=record["challenger_metrics"][name],
            champion_metric=(record.get("champion_metrics") or {}).get(name),
            max_psi=(record.get("drift") or {}).get("max_psi"),
            deployed=result.deployed,
        )
    return result
