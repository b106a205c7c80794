"""Retrain: pin the feature files, gate the training set, train, evaluate, decide, deploy.

Each step stages the pinned feature files by key (only keys travel through XCom) the same way
(:mod:`retrain.steps.training_set`), so the gate, the training and the evaluation see the same
rows; none of them holds the table in pandas, and each reports its peak memory against
``[training] memory_budget_mb``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from retrain import metrics as statsd
from retrain import reports
from retrain.alerts import Alert, Incidents, first_line
from retrain.config import Config
from retrain.decision import FLAG_WORSE, Evidence, decide, flags
from retrain.drift import DriftReport, compare, reference_profile
from retrain.evaluation import Comparison, compare_models
from retrain.history import Entry, History
from retrain.layout import Layout, page_key, run_token
from retrain.registry import ChampionChanged, ModelRegistry
from retrain.steps.features import feature_rows
from retrain.steps.reporting import champion_history, publish_index
from retrain.steps.training_set import StagedSet, memory_use, staged_training_set
from retrain.storage import S3Storage
from retrain.training import Metrics, Model, metrics_of
from retrain.trainset import (
    budget_of,
    newest_rows,
    predict_streamed,
    refit_streamed,
    sample_rows,
    split_by_time,
    train_streamed,
)

log = logging.getLogger(__name__)


class TrainingSetRejected(RuntimeError):
    """The training set failed its GX checkpoint: no model is trained, the champion stays.

    Deterministic: the same feature files fail the same way, so the task fails without retries.
    """


def pinned_feature_keys(storage: S3Storage, cfg: Config) -> tuple[str, ...]:
    """The feature files of a training run, oldest first (ingest order decides which row an
    upsert keeps): every file, or the ``[training]`` window's."""
    objects = [
        o for o in storage.list_objects(cfg.storage.features_prefix) if o.key.endswith(".parquet")
    ]
    keys = tuple(o.key for o in sorted(objects, key=lambda o: (o.last_modified, o.key)))
    tc = cfg.training
    return training_window(
        keys,
        days=tc.window_days,
        rows=tc.window_rows,
        rows_of=lambda key: feature_rows(storage, key),
    )


def training_window(
    keys: tuple[str, ...], *, days: int, rows: int, rows_of: Callable[[str], int]
) -> tuple[str, ...]:
    """The newest of ``keys`` (oldest first) within the window; 0 means no limit. ``days``: the
    files that arrived on the newest arrival day or the ``days - 1`` days before it (the
    ``ingest_date`` of their keys). ``rows``: the newest files until at least that many rows
    (whole files; ``rows_of`` is asked only about files inside the day window, newest first)."""
    chosen = list(keys)
    if days and chosen:
        arrival = [Layout.ingest_day_of(k) for k in chosen]
        newest = max(d for d in arrival if d is not None) if any(arrival) else None
        if newest is not None:
            first = (date.fromisoformat(newest) - timedelta(days=days - 1)).isoformat()
            chosen = [k for k, d in zip(chosen, arrival, strict=True) if d is None or d >= first]
    if rows:
        total, start = 0, len(chosen)
        while start > 0 and total < rows:
            start -= 1
            total += rows_of(chosen[start])
        chosen = chosen[start:]
    return tuple(chosen)


def snapshot(ts: StagedSet, cfg: Config) -> dict[str, Any]:
    """What a model was trained from, to train it again: the feature files and their ETags, a
    hash of the config, the library versions and the seed (the same snapshot gives the same
    model: training is single-configuration, seeded and ``deterministic``)."""
    from importlib.metadata import version

    settings = {k: v for k, v in asdict(cfg).items() if k != "source"}
    text = json.dumps(settings, sort_keys=True, default=str)
    return {
        "files": [{"key": k, "etag": e} for k, e in zip(ts.keys, ts.etags, strict=True)],
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "libraries": {
            "python": platform.python_version(),
            **{name: version(name) for name in ("lightgbm", "numpy", "pandas", "pyarrow")},
        },
        "seed": cfg.training.seed,
    }


# -- training ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSetCheck:
    feature_keys: tuple[str, ...]
    rows: int
    summary: str
    replaced_rows: int = 0
    memory: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"feature_keys": list(self.feature_keys)}


def check_training_set(storage: S3Storage, cfg: Config, *, run_name: str) -> TrainingSetCheck:
    """Pin the feature files of this training run and gate them with the training checkpoint:
    exact streamed counts and checks, GX on a seeded sample
    (:func:`validation.training_stream.validate_training_stream`)."""
    from validation.training_stream import validate_training_stream

    keys = pinned_feature_keys(storage, cfg)
    if not keys:
        raise TrainingSetRejected(
            f"no feature files under {storage.uri(cfg.storage.features_prefix)}"
        )
    with staged_training_set(storage, cfg, keys) as ts:
        result = validate_training_stream(ts.paths, ts.index, cfg, run_name=run_name, mask=ts.rows)
        meta = result.result.get("meta") or {}
        culprits = sorted(ts.key_of(p) for p in meta.get("responsible_files", ()))
        result = dataclasses.replace(
            result, result={**result.result, "meta": {**meta, "responsible_files": culprits}}
        )
        n_rows, replaced = ts.n_rows, ts.replaced_rows
    raw = [] if result.success else _raw_keys_of(storage, cfg, culprits)
    report_key = _record_training_check(storage, cfg, run_name, keys, result, raw)
    memory = memory_use(cfg, "training-set check")
    if not result.success:
        blame = f"; files responsible: {raw} (`retrain retract FILE`)" if raw else ""
        raise TrainingSetRejected(
            f"training set rejected ({n_rows} rows from {len(keys)} files): "
            f"{result.summary()}{blame} -- report: {storage.uri(report_key)}; "
            "the champion keeps serving"
        )
    return TrainingSetCheck(
        feature_keys=keys,
        rows=n_rows,
        summary=result.summary(),
        replaced_rows=replaced,
        memory=memory.as_dict(),
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
    report_key = layout.training_report_key(run_token(run_name))
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
    html_key = page_key(report_key)
    storage.put_bytes(
        html_key,
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
                link=html_key[len(cfg.storage.reports_prefix) :],
            )
        ]
    )
    if not result.success:
        publish_index(storage, cfg)
    return report_key


def _raw_keys_of(storage: S3Storage, cfg: Config, feature_keys: list[str]) -> list[str]:
    if not feature_keys:
        return []
    layout, wanted = Layout.of(cfg), set(feature_keys)
    by_feature = {
        layout.feature_key(o.key): o.key for o in storage.list_objects(cfg.storage.raw_prefix)
    }
    return [by_feature.get(k, k) for k in sorted(wanted)]


# Fewer holdout rows than this among the rows the champion never saw, and the challenger is
# judged on the newest holdout_fraction by time instead (rows the champion may have trained on:
# that favours the champion, so it can only make a deploy harder). A retrain after a retraction
# has none.
MIN_NEW_ROWS = 100


def new_feature_keys(keys: tuple[str, ...], champion_keys: list[str] | None) -> tuple[str, ...]:
    """The feature files among ``keys`` that the champion never trained on."""
    if not champion_keys:
        return ()
    return tuple(sorted(set(keys) - set(champion_keys)))


def holdout_rows(ts: StagedSet, cfg: Config, new_keys: tuple[str, ...]) -> np.ndarray | None:
    """The rows both models are judged on: the newest ``new_data_holdout_fraction`` by time of
    the rows from ``new_keys``. The challenger trains on the older rest of them, so it has seen
    what changed, and on everything before; the champion has seen none of them. None (the time
    holdout) when there are too few, or a part would miss a class."""
    if not new_keys:
        return None
    new = ts.rows_of(new_keys)
    n_holdout = round(int(np.count_nonzero(new)) * cfg.training.new_data_holdout_fraction)
    if n_holdout < MIN_NEW_ROWS or n_holdout >= ts.n_rows:
        return None
    mask = newest_rows(ts.paths, ts.index, new, n_holdout, id_column=cfg.dataset.id_column)
    target = ts.index.target
    if len(np.unique(target[mask])) < 2 or len(np.unique(target[ts.rows & ~mask])) < 2:
        return None
    return mask


def split_rows(
    ts: StagedSet, cfg: Config, new_keys: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(training part, holdout, judged on new data): :func:`holdout_rows` when it has them,
    else the newest ``holdout_fraction`` of all rows by time."""
    newest = holdout_rows(ts, cfg, new_keys)
    if newest is not None:
        return ts.rows & ~newest, newest, True
    older, newest = split_by_time(
        ts.paths,
        ts.index,
        ts.rows,
        cfg.training.holdout_fraction,
        id_column=cfg.dataset.id_column,
    )
    return older, newest, False


@dataclass(frozen=True)
class Challenger:
    version: str
    metrics: dict[str, Any]
    best_iteration: int
    n_train: int
    n_holdout: int
    holdout_start: str
    # "new data": the newest rows from feature files the champion never trained on; "time":
    # the newest holdout_fraction (no champion, or too little new data)
    evaluated_on: str = "time"
    new_keys: tuple[str, ...] = ()  # the feature files the champion never saw ("new data")
    # the training part had this many rows and the model learned from a seeded sample of
    # n_train of them, to stay within the memory budget (0: it learned from all of them)
    sampled_from: int = 0
    memory: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"new_keys": list(self.new_keys)}


def train_challenger(storage: S3Storage, cfg: Config, feature_keys: list[str]) -> Challenger:
    """Train on the pinned features with the newest data held out, save a new model version."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    champion = registry.champion()
    champion_keys = registry.load_metadata(champion.version)["feature_keys"] if champion else None
    with staged_training_set(storage, cfg, feature_keys) as ts:
        new_keys = new_feature_keys(ts.keys, champion_keys)
        train, holdout, on_new_data = split_rows(ts, cfg, new_keys)
        result = train_streamed(ts.paths, ts.index, train, holdout, cfg)
        data = snapshot(ts, cfg)
    version = registry.new_version()
    challenger = Challenger(
        version=version,
        metrics=result.metrics.as_dict(),
        best_iteration=result.best_iteration,
        n_train=result.n_train,
        n_holdout=result.n_holdout,
        holdout_start=result.holdout_start,
        evaluated_on="new data" if on_new_data else "time",
        new_keys=new_keys if on_new_data else (),
        sampled_from=result.sampled_from,
        memory=memory_use(cfg, "train").as_dict(),
    )
    _save(  # no drift baseline: the challenger never serves, its refit does (and has one)
        registry,
        cfg,
        version,
        result.model,
        None,
        {**challenger.as_dict(), "feature_keys": list(feature_keys), "snapshot": data},
        holdout_scores=result.holdout_scores,
    )
    log.info("challenger %s (%s holdout): %s", version, challenger.evaluated_on, challenger.metrics)
    return challenger


def _save(
    registry: ModelRegistry,
    cfg: Config,
    version: str,
    model: Model,
    profile: dict[str, Any] | None,
    metadata: dict[str, Any],
    *,
    holdout_scores: np.ndarray | None = None,
) -> None:
    """A model version with its drift baseline (:func:`_reference`), if it can serve."""
    registry.save_version(
        version,
        model_text=model.to_text(),
        metadata={
            **metadata,
            "dataset": cfg.dataset.name,
            "feature_names": list(model.feature_names),
            "training": asdict(cfg.training),
            "created_at": datetime.now(UTC).isoformat(),
        },
        reference_profile=profile,
        holdout_scores=holdout_scores,
    )


def _reference(ts: StagedSet, mask: np.ndarray, model: Model, cfg: Config) -> dict[str, Any]:
    """The drift baseline of a model: the rows it learned from (a seeded sample of at most
    ``DRIFT_SAMPLE_ROWS``) and its scores there."""
    reference = ts.sample_frame(mask, cfg)
    return reference_profile(
        reference, cfg.dataset, cfg.drift, scores=model.predict_proba(reference)
    )


# -- decision and deploy -----------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRecord:
    version: str
    deploy: bool
    rule: str
    reason: str
    conditions: dict[str, Any]
    policy: dict[str, Any]  # the [gate] and [drift] settings the decision applied
    comparison: dict[str, Any] | None  # challenger - champion with its interval
    challenger_metrics: dict[str, Any]
    champion_version: str | None
    champion_metrics: dict[str, Any] | None
    drift: dict[str, Any] | None
    decided_at: str
    evaluated_on: str = "time"
    training_rows: int = 0
    replaced_rows: int = 0  # rows an upsert replaced by newer rows with the same id
    serving_version: str | None = None  # the refit on every row that deploy promotes
    serving_n_train: int = 0  # rows the refit learned from (set by refit_for_serving)
    serving_sampled_from: int = 0  # ... a seeded sample of this many (0: all of them)
    n_train: int = 0  # rows the challenger learned from
    sampled_from: int = 0  # ... a seeded sample of this many, within the memory budget (0: all)
    memory: dict[str, Any] = dataclasses.field(default_factory=dict)  # of the deciding task

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_and_decide(
    storage: S3Storage, cfg: Config, feature_keys: list[str], version: str
) -> DecisionRecord:
    """Score the champion and the challenger on the same newest rows (the challenger's holdout),
    compare them with a paired bootstrap, check drift against the champion's reference, and let
    the deploy policy decide. The record and its reports are written either way."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    meta = registry.load_metadata(version)
    challenger_model = Model.from_text(registry.load_model_text(version))
    champion = registry.champion()
    champion_model = (
        Model.from_text(registry.load_model_text(champion.version)) if champion else None
    )
    champion_metrics: Metrics | None = None
    drift: DriftReport | None = None
    comparison: Comparison | None = None
    at_training: float | None = None
    ds, gate = cfg.dataset, cfg.gate
    with staged_training_set(storage, cfg, feature_keys) as ts:
        new_keys = tuple(meta.get("new_keys") or ())
        _, holdout, on_new_data = split_rows(ts, cfg, new_keys)
        y = ts.index.labels(holdout)
        # scored once, by train_challenger, on these same rows (the split is deterministic)
        challenger_scores = registry.load_holdout_scores(version)
        if challenger_scores is None or len(challenger_scores) != len(y):
            challenger_scores = predict_streamed(challenger_model, ts.paths, ts.index, holdout, ds)
        challenger_metrics = metrics_of(y, challenger_scores)
        if champion is not None and champion_model is not None:
            champion_scores = predict_streamed(champion_model, ts.paths, ts.index, holdout, ds)
            champion_metrics = metrics_of(y, champion_scores)
            comparison = compare_models(
                y,
                challenger_scores,
                champion_scores,
                metric=gate.metric,
                rounds=gate.bootstrap_rounds,
                confidence=gate.confidence,
                seed=gate.seed,
            )
            # drift: every row the champion never saw (the holdout alone without its news)
            changed = ts.sample_frame(ts.rows_of(new_keys) if on_new_data else holdout, cfg)
            drift = compare(
                registry.load_reference(champion.version),
                changed,
                ds,
                cfg.drift,
                scores=champion_model.predict_proba(changed),
                importance=champion_model.importance(),
            )
            del changed
            trained = (registry.load_metadata(champion.version).get("metrics") or {}).get(
                gate.metric
            )
            at_training = None if trained is None else float(trained)
        n_rows, replaced = ts.n_rows, ts.replaced_rows
    decision = decide(
        Evidence(
            challenger=getattr(challenger_metrics, cfg.gate.metric),
            comparison=comparison,
            champion_at_training=at_training,
            data_drifted=bool(drift and drift.data_drifted),
            prediction_drifted=bool(drift and drift.prediction_drifted),
            drift_summary=drift.summary() if drift else "",
        ),
        cfg.gate,
    )
    record = DecisionRecord(
        version=version,
        deploy=decision.deploy,
        rule=decision.rule,
        reason=decision.reason,
        conditions=decision.conditions,
        policy={"gate": asdict(cfg.gate), "drift": asdict(cfg.drift)},
        comparison=comparison.as_dict() if comparison else None,
        challenger_metrics=challenger_metrics.as_dict(),
        champion_version=champion.version if champion else None,
        champion_metrics=champion_metrics.as_dict() if champion_metrics else None,
        drift=drift.as_dict() if drift else None,
        decided_at=datetime.now(UTC).isoformat(),
        evaluated_on=meta.get("evaluated_on", "time"),
        training_rows=n_rows,
        replaced_rows=replaced,
        n_train=int(meta.get("n_train", 0)),
        sampled_from=int(meta.get("sampled_from", 0)),
        memory=memory_use(cfg, "evaluate and decide").as_dict(),
    )
    registry.record_decision(version, record.as_dict())
    rp = cfg.storage.reports_prefix
    _publish_decision(storage, cfg, registry, record.as_dict())
    if record.drift is not None:
        reports.publish_drift(storage, rp, version, record.drift, policy=record.policy["drift"])
    log.info(
        "decision for %s: %s (%s)", version, "DEPLOY" if record.deploy else "HOLD", record.rule
    )
    return record


def _publish_decision(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, record: dict[str, Any]
) -> None:
    """The decision page, under the evaluated version and (a deploy) under its serving refit
    too, so ``decisions/<either id>.html`` opens it: one rendering, the same bytes twice."""
    versions = [record["version"]]
    if record.get("serving_version") and record["serving_version"] != record["version"]:
        versions.append(record["serving_version"])
    reports.publish_decision(
        storage,
        cfg.storage.reports_prefix,
        record["version"],
        record,
        record["challenger_metrics"],
        record["champion_metrics"],
        record["drift"],
        champion_history=champion_history(registry, cfg.gate.metric),
        also_as=tuple(versions[1:]),
    )


def refit_sample(ts: StagedSet, cfg: Config) -> tuple[int, int]:
    """(rows the refit learns from, rows it was sampled from or 0): what ``refit_streamed``
    takes under the memory budget (the same budget and seeded sample), counted."""
    rows = int(np.count_nonzero(ts.rows))
    budget = budget_of(cfg, None, ts.index)
    if rows <= budget.max_rows:
        return rows, 0
    sample = sample_rows(ts.index, ts.rows, budget.max_rows, cfg.training.seed)
    return int(np.count_nonzero(sample)), rows


def refit_for_serving(storage: S3Storage, cfg: Config, record: dict[str, Any]) -> dict[str, Any]:
    """For a deploy decision: the serving model, refit on every pinned row (or, above the memory
    budget, on its seeded sample) for the challenger's number of rounds, saved as its own
    version (``refit_of`` the evaluated one) and named in the record as ``serving_version``,
    with what it learned from (``serving_n_train``, ``serving_sampled_from``). A hold returns
    the record unchanged."""
    if not record["deploy"]:
        return record
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    evaluated = registry.load_metadata(record["version"])
    with staged_training_set(storage, cfg, evaluated["feature_keys"]) as ts:
        n_train, sampled_from = refit_sample(ts, cfg)
        model = refit_streamed(ts.paths, ts.index, ts.rows, cfg, int(evaluated["best_iteration"]))
        profile = _reference(ts, ts.rows, model, cfg)
        data = snapshot(ts, cfg)
    serving = registry.new_version()
    _save(
        registry,
        cfg,
        serving,
        model,
        profile,
        {
            **{
                k: v
                for k, v in evaluated.items()
                if k not in ("created_at", "new_keys", "memory", "sampled_from")
            },
            "refit_of": record["version"],
            "snapshot": data,
            "n_train": n_train,
            "sampled_from": sampled_from,
            "n_holdout": 0,
            "memory": memory_use(cfg, "refit").as_dict(),
        },
    )
    out = record | {
        "serving_version": serving,
        "serving_n_train": n_train,
        "serving_sampled_from": sampled_from,
    }
    registry.record_decision(serving, out)  # the refit's copy: what it serves for
    registry.record_decision(record["version"], out)  # one decision, its refit an attribute
    _publish_decision(storage, cfg, registry, out)
    log.info(
        "serving model %s: %s refit on %d rows%s",
        serving,
        record["version"],
        n_train,
        f" (a seeded sample of {sampled_from})" if sampled_from else "",
    )
    return out


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
    notice with the decision report: a deploy because something changed (drift, a degraded
    champion); a hold that is not the policy doing its job ("not better with confidence") but
    a challenger below the floor, with an undefined metric or inferior after a change, or a
    champion moved under the decision; and any decision :func:`retrain.decision.flags` flags,
    its flags first. Then the index is published again, so its alerts and streak match."""
    rule = record.get("rule", "")
    marks = flags(record)
    if result.deployed:
        incidents.reset_streak()
        notable, name = rule == "non_inferior_after_change", "retrain:deployed"
        title = f"retrain deployed {result.version} after a change"
        if FLAG_WORSE in marks:
            title = f"retrain deployed {result.version} although worse with confidence"
    else:
        streak = incidents.bump_streak(run, result.reason)
        notable = rule in ("undefined", "below_floor", "inferior_after_change") or record["deploy"]
        name = "retrain:held"
        title = f"retrain held the champion ({streak.runs} run(s) in a row without a deploy)"
    alert = None
    if notable or marks:
        page = reports.report_keys(cfg.storage.reports_prefix, record["version"]).decision
        reason = first_line(result.reason)
        if marks:
            reason = f"FLAGGED: {'; '.join(marks)}. {reason}"
        alert = incidents.notice(name, title, reason, links=(storage.uri(page),))
    publish_index(storage, cfg)
    return alert


def deploy(
    storage: S3Storage, cfg: Config, record: dict[str, Any], *, by: str = ""
) -> DeployResult:
    """Move the champion pointer to the serving model (the challenger refit on every row), if
    the policy said so and nobody else has moved it since the decision (compare-and-swap on
    models/champion.json). ``by``: the person who approved it ([gate] approval)."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    version = record.get("serving_version") or record["version"]  # (a hold has none)
    current = registry.champion()
    previous = current.version if current else None
    if not record["deploy"]:
        result = DeployResult(version, False, record["reason"], previous)
    elif not record.get("serving_version"):  # a challenger has no drift baseline to serve with
        raise ValueError(
            f"deploy of {record['version']} without its refit for serving (refit_for_serving)"
        )
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
                by=by,
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
