"""Every problem of a parsed config at once: errors (it cannot work) apart from warnings (it works,
but probably not as meant).

``parse_config`` raises one ``ConfigError`` listing every error; ``retrain config check`` shows
the warnings too. Each finding names the setting and its value, says what follows from it in the
code that reads it (triggers/landing.py, validation/suites.py, retrain.features, retrain.drift,
retrain.decision, retrain.training), and what to change. Type errors and unknown keys are not
here: ``parse_config`` stops at those before a ``Config`` exists.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from retrain.config import (
    APPROVAL_MODES,
    APPROVAL_TIMEOUT_OUTCOMES,
    ARRIVAL_MODES,
    DRIFT_RULES,
    DUPLICATE_ID_POLICIES,
    EXTRA_COLUMN_POLICIES,
    METRICS,
    NOTIFIERS,
    Column,
    Config,
    StorageConfig,
)

Severity = Literal["error", "warning"]
# An idle back-off ceiling above this makes the first file after a quiet period wait that long.
SLOW_IDLE_POLL_S = 60.0
_NUMERIC = ("int", "float")
_BUCKET_CHARS = re.compile(r"[a-z0-9.-]+")
_WATCHDOG_LIMITS = (
    "interval_minutes",
    "max_data_age_hours",
    "max_champion_age_hours",
    "max_landing_wait_minutes",
    "max_run_minutes",
)


@dataclass(frozen=True)
class Finding:
    """One problem: where it is (``"[section] key"`` or ``"column 'name'"``) and a sentence that
    says what is wrong and what to do, naming the values."""

    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def check_config(cfg: Config) -> tuple[Finding, ...]:
    """Every finding, errors first, each group in the fixed order of the checks below."""
    found = [
        *_dataset(cfg),
        *_columns(cfg),
        *_choices(cfg),
        *_storage(cfg),
        *_validation(cfg),
        *_ingest(cfg),
        *_training(cfg),
        *_gate(cfg),
        *_drift(cfg),
        *_orchestration(cfg),
        *_watchdog(cfg),
        *_resources(cfg),
    ]
    return tuple(sorted(found, key=lambda f: f.severity != "error"))  # stable: order kept


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def warnings(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "warning"]


def _error(where: str, message: str) -> Finding:
    return Finding("error", where, message)


def _warning(where: str, message: str) -> Finding:
    return Finding("warning", where, message)


def _must(section: str, name: str, value: float, ok: bool, rule: str) -> list[Finding]:
    """The error "<name> must be <rule>, got <value>" unless ``ok``."""
    return [] if ok else [_error(f"[{section}] {name}", f"{name} must be {rule}, got {value:g}")]


def _at_least(section: str, name: str, value: float, low: float) -> list[Finding]:
    return _must(section, name, value, value >= low, f"at least {low:g}")


def _above(section: str, name: str, value: float) -> list[Finding]:
    return _must(section, name, value, value > 0, "above 0")


def _fraction(section: str, name: str, value: float) -> list[Finding]:
    return _must(section, name, value, 0 <= value <= 1, "in [0, 1] (a share)")


# -- the dataset ----------------------------------------------------------------------------------


def _dataset(cfg: Config) -> list[Finding]:
    ds = cfg.dataset
    names = set(ds.column_names)
    out = []
    for role in ("id_column", "time_column", "target"):
        if (name := getattr(ds, role)) not in names:
            out.append(
                _error(
                    f"[dataset] {role}",
                    f"{role} {name!r} not in columns; name one of [dataset.columns] or add it",
                )
            )
    if ds.time_column in names and (dtype := ds.column(ds.time_column).dtype) != "datetime":
        out.append(
            _error(
                f"column {ds.time_column!r}",
                f"time column {ds.time_column!r} must have dtype datetime, got {dtype!r}",
            )
        )
    if ds.target in names and (dtype := ds.column(ds.target).dtype) != "int":
        out.append(
            _error(
                f"column {ds.target!r}",
                f"target {ds.target!r} must be an int column of 0/1, got dtype {dtype!r}",
            )
        )
    if not ds.feature_columns:
        out.append(
            _error(
                "[dataset] columns",
                "no feature columns besides id, time and target; add the columns the model "
                "should learn from",
            )
        )
    out.extend(
        _error("[dataset] file_formats", f"file format {fmt!r} not supported (csv, parquet)")
        for fmt in ds.file_formats
        if fmt not in ("csv", "parquet")
    )
    # the columns the model learns from (retrain.features.column_feature_names), without pandas
    learned = [
        c
        for c in ds.feature_columns
        if c.dtype in _NUMERIC or (c.dtype in ("category", "string") and c.categories)
    ]
    if learned and not any(c.drift is True for c in learned):
        out.append(
            _warning(
                "[dataset] columns",
                "every column the model learns from has drift = false, so only the count of "
                "missing values per row can make the data count as drifted; set drift = true on "
                "the columns whose change should matter",
            )
        )
    return out


def _columns(cfg: Config) -> list[Finding]:
    ds = cfg.dataset
    out = []
    for col in ds.columns:
        out.extend(_column(col, is_target=col.name == ds.target))
        if col.name in ds.categorical_features:
            out.extend(_feature_categories(col))
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _column(col: Column, *, is_target: bool) -> list[Finding]:
    where = f"column {col.name!r}"
    out = [
        _error(where, f"{key} must be true or false, got {getattr(col, key)!r}")
        for key in ("nullable", "drift")
        if not isinstance(getattr(col, key), bool)
    ]
    bounds = {k: v for k in ("min", "max") if (v := getattr(col, k)) is not None}
    if bounds:
        out += _bounds(col, bounds, is_target=is_target)
    fraction = col.max_missing_fraction
    if fraction is not None and not _is_number(fraction):
        out.append(_error(where, f"max_missing_fraction must be a number, got {fraction!r}"))
    elif fraction is not None and not 0 <= fraction <= 1:
        out.append(
            _error(where, f"max_missing_fraction must be in [0, 1] (a share), got {fraction:g}")
        )
    elif fraction is not None and col.nullable is False:
        out.append(
            _warning(
                where,
                f"max_missing_fraction {fraction:g} is ignored: nullable = false rejects any "
                "missing value; remove one of the two",
            )
        )
    if col.categories is not None and col.dtype in (*_NUMERIC, "datetime"):
        out.append(
            _error(
                where,
                f"categories are ignored on a column of dtype {col.dtype!r} (only category and "
                'string columns use them); change dtype to "category" or remove categories',
            )
        )
    elif col.categories is not None and not col.categories:
        out.append(
            _error(
                where,
                "categories is empty, so no value can be one of them; list the allowed values "
                "or remove categories",
            )
        )
    return out


def _bounds(col: Column, bounds: dict[str, Any], *, is_target: bool) -> list[Finding]:
    """``min`` and ``max``: the raw and training gates' range check of an int or float column."""
    where = f"column {col.name!r}"
    if col.dtype not in _NUMERIC:
        both = len(bounds) == 2
        return [
            _warning(
                where,
                f"{' and '.join(bounds)} {'are' if both else 'is'} ignored on a column of dtype "
                f"{col.dtype!r} (only int and float columns are range-checked); remove "
                f"{'them' if both else 'it'} or change the dtype",
            )
        ]
    if bad := {k: v for k, v in bounds.items() if not _is_number(v)}:
        return [_error(where, f"{k} must be a number, got {v!r}") for k, v in bad.items()]
    values = {k: float(v) for k, v in bounds.items()}
    out = []
    if len(values) == 2 and values["min"] > values["max"]:
        out.append(
            _error(
                where,
                f"min {values['min']:g} is above max {values['max']:g}, so no value can be in "
                "range; swap them or correct the wrong one",
            )
        )
    if is_target and (outside := {k: v for k, v in values.items() if not 0 <= v <= 1}):
        given = " and ".join(f"{k} {v:g}" for k, v in outside.items())
        out.append(
            _error(
                where,
                f"the target is a 0/1 label (the gates check it against {{0, 1}}, not these "
                f"bounds), but {given} lies outside [0, 1]; set min = 0 and max = 1, or remove "
                "them",
            )
        )
    return out


def _feature_categories(col: Column) -> list[Finding]:
    """A categorical feature (dtype category or string) as the feature build sees it."""
    where = f"column {col.name!r}"
    if col.categories is None:
        if col.dtype != "category":
            return []  # free text: deliberately not a feature
        return [
            _warning(
                where,
                'a "category" column without categories is left out of the model\'s features '
                "and the raw gate accepts any value in it; list its categories (or set dtype = "
                '"string" if it is free text)',
            )
        ]
    repeated = sorted(c for c, n in Counter(col.categories).items() if n > 1)
    if not repeated:
        return []
    return [
        _error(
            where,
            f"categories repeat {repeated}; list each once (the feature build refuses repeated "
            "categories)",
        )
    ]


# -- sections -------------------------------------------------------------------------------------


def _choices(cfg: Config) -> list[Finding]:
    """Settings with a fixed set of values."""
    out = []
    for where, value, allowed in (
        ("[validation] extra_columns", cfg.validation.extra_columns, EXTRA_COLUMN_POLICIES),
        ("[ingest] duplicate_ids", cfg.ingest.duplicate_ids, DUPLICATE_ID_POLICIES),
        ("[alerts] notifier", cfg.alerts.notifier, NOTIFIERS),
        ("[orchestration] arrival", cfg.orchestration.arrival, ARRIVAL_MODES),
        ("[drift] rule", cfg.drift.rule, DRIFT_RULES),
        ("[gate] approval", cfg.gate.approval, APPROVAL_MODES),
        ("[gate] approval_on_timeout", cfg.gate.approval_on_timeout, APPROVAL_TIMEOUT_OUTCOMES),
    ):
        if value not in allowed:
            name = where.split()[-1]
            out.append(_error(where, f"{name} must be one of {allowed}, got {value!r}"))
    if cfg.alerts.notifier == "sns" and not cfg.alerts.sns_topic_arn:
        out.append(
            _error(
                "[alerts] sns_topic_arn",
                'notifier = "sns" needs sns_topic_arn; set it, or use notifier = "log"',
            )
        )
    return out


def _storage(cfg: Config) -> list[Finding]:
    out = []
    bucket = cfg.storage.bucket
    if not bucket:
        out.append(_error("[storage] bucket", "bucket is empty; name the S3 bucket to use"))
    elif problem := _bucket_problem(bucket):
        rule = (
            f"bucket {bucket!r} is not a valid S3 bucket name ({problem}); use 3-63 lowercase "
            "letters, digits, dots and hyphens, starting and ending with a letter or digit"
        )
        if cfg.storage.endpoint_url:  # an S3-compatible server may allow more than AWS does
            out.append(_warning("[storage] bucket", f"{rule} (AWS S3 would reject it)"))
        else:
            out.append(_error("[storage] bucket", rule))
    for fld in dataclasses.fields(StorageConfig):
        if fld.name.endswith("_prefix"):
            value = getattr(cfg.storage, fld.name)
            if not value.endswith("/") or value.startswith("/"):
                out.append(
                    _error(
                        f"[storage] {fld.name}",
                        f"{fld.name} {value!r} must end with '/' and not start with it",
                    )
                )
    return out


def _bucket_problem(name: str) -> str:
    """Why AWS S3 would refuse ``name`` as a general purpose bucket's name ("" if it would not)."""
    if not 3 <= len(name) <= 63:
        return f"{len(name)} character{'' if len(name) == 1 else 's'}, not 3-63"
    if not _BUCKET_CHARS.fullmatch(name):
        bad = sorted(set(re.sub(r"[a-z0-9.-]", "", name)))
        return f"characters {bad} are not allowed"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "it must start and end with a letter or digit"
    if ".." in name:
        return "two adjacent dots"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return ""
    return "it is formatted as an IP address"


def _validation(cfg: Config) -> list[Finding]:
    v = cfg.validation
    out = [
        *_at_least("validation", "min_rows", v.min_rows, 1),
        *_at_least("validation", "training_min_rows", v.training_min_rows, 1),
        *_fraction("validation", "max_missing_fraction", v.max_missing_fraction),
        *_fraction(
            "validation", "training_min_positive_fraction", v.training_min_positive_fraction
        ),
        *_fraction(
            "validation", "training_max_positive_fraction", v.training_max_positive_fraction
        ),
        *_at_least("validation", "max_cell_bytes", v.max_cell_bytes, 1024),
    ]
    low, high = v.training_min_positive_fraction, v.training_max_positive_fraction
    if low >= high:
        out.append(
            _error(
                "[validation] training_min_positive_fraction",
                f"training_min_positive_fraction {low:g} is not below "
                f"training_max_positive_fraction {high:g}, so the training-set gate rejects "
                "every training set; set the minimum below the maximum",
            )
        )
    return out


def _ingest(cfg: Config) -> list[Finding]:
    return [
        *_at_least("ingest", "validate_tasks", cfg.ingest.validate_tasks, 1),
        *_at_least("ingest", "max_file_attempts", cfg.ingest.max_file_attempts, 1),
    ]


def _training(cfg: Config) -> list[Finding]:
    tc = cfg.training
    out: list[Finding] = []
    for name in ("holdout_fraction", "new_data_holdout_fraction"):
        value = getattr(tc, name)
        out += _must("training", name, value, 0 < value < 1, "in (0, 1)")
    for name in ("window_days", "window_rows"):
        value = getattr(tc, name)
        out += _must("training", name, value, value >= 0, "0 (no limit) or more")
    need = cfg.validation.training_min_rows
    if 0 < tc.window_rows < need:
        out.append(
            _error(
                "[training] window_rows",
                f"window_rows {tc.window_rows} is below [validation] training_min_rows {need}: "
                f"the window keeps the newest files until they hold {tc.window_rows} rows, "
                "usually fewer than the training-set gate requires, so most retrains would be "
                f"rejected; set window_rows to at least {need}, or 0 (no limit)",
            )
        )
    out += [
        *_at_least("training", "memory_budget_mb", tc.memory_budget_mb, 256),
        *_at_least("training", "num_boost_round", tc.num_boost_round, 1),
        *_above("training", "learning_rate", tc.learning_rate),
        *_at_least("training", "num_leaves", tc.num_leaves, 2),
        *_at_least("training", "min_data_in_leaf", tc.min_data_in_leaf, 1),
    ]
    rounds = tc.early_stopping_rounds
    out += _must("training", "early_stopping_rounds", rounds, rounds >= 0, "0 (off) or more")
    if 0 < tc.num_boost_round <= rounds:
        out.append(
            _warning(
                "[training] early_stopping_rounds",
                f"early_stopping_rounds {tc.early_stopping_rounds} is not below num_boost_round "
                f"{tc.num_boost_round}, so training never stops early (every round runs; the "
                "best one is still kept); lower it, or set 0 to turn early stopping off",
            )
        )
    if 0.5 < tc.holdout_fraction < 1:
        kept = 1 - tc.holdout_fraction
        out.append(
            _warning(
                "[training] holdout_fraction",
                f"holdout_fraction {tc.holdout_fraction:g} holds out the newest "
                f"{tc.holdout_fraction:.0%} of the rows, so a challenger judged on the time "
                f"holdout (the first model, or too little new data) learns from only {kept:.0%} "
                "of them and the decision judges a much weaker model than the one refit for "
                "serving; 0.1 to 0.3 is usual",
            )
        )
    fraction = tc.new_data_holdout_fraction
    if 0.8 < fraction < 1:
        out.append(
            _warning(
                "[training] new_data_holdout_fraction",
                f"new_data_holdout_fraction {fraction:g} leaves the challenger only the oldest "
                f"{1 - fraction:.0%} of the rows the champion never saw to learn what changed "
                "from; keep it between 0.2 and 0.8",
            )
        )
    elif 0 < fraction < 0.2:
        out.append(
            _warning(
                "[training] new_data_holdout_fraction",
                f"new_data_holdout_fraction {fraction:g} judges both models on only the newest "
                f"{fraction:.0%} of the rows the champion never saw, so the confidence interval "
                "is wide and more retrains fall back to the time holdout; keep it between 0.2 "
                "and 0.8",
            )
        )
    return out


def _gate(cfg: Config) -> list[Finding]:

    g = cfg.gate
    out = []
    if g.metric not in METRICS:
        out.append(
            _error("[gate] metric", f"metric {g.metric!r} not supported; use one of {METRICS}")
        )
    if not 0 <= g.min_metric <= 1:
        effect = "no model can reach it" if g.min_metric > 1 else "the floor checks nothing"
        out.append(
            _error(
                "[gate] min_metric",
                f"min_metric {g.min_metric:g} is outside [0, 1], the range of {g.metric}, so "
                f"{effect}; set a floor between 0 and 1",
            )
        )
    for name in ("non_inferiority_margin", "degradation_margin"):
        value = getattr(g, name)
        out += _must("gate", name, value, 0 <= value < 1, f"in [0, 1) (a difference of {g.metric})")
    out += _must("gate", "confidence", g.confidence, 0.5 <= g.confidence < 1, "in [0.5, 1)")
    out += _at_least("gate", "bootstrap_rounds", g.bootstrap_rounds, 100)
    hours = g.approval_timeout_hours
    out += _must("gate", "approval_timeout_hours", hours, hours > 0, "above 0")
    if g.approvers and g.approval == "never":
        out.append(
            _warning(
                "[gate] approvers",
                'approvers are named but approval = "never", so nobody is ever asked; set '
                'approval = "on_change" or "always"',
            )
        )
    return out


def _drift(cfg: Config) -> list[Finding]:
    dc = cfg.drift
    out = [
        *_at_least("drift", "bins", dc.bins, 2),
        *_above("drift", "psi_threshold", dc.psi_threshold),
        *_above("drift", "distance_threshold", dc.distance_threshold),
        *_above("drift", "prediction_psi_threshold", dc.prediction_psi_threshold),
    ]
    if not 0 < dc.share_threshold <= 1:
        effect = (
            "the data could never count as drifted"
            if dc.share_threshold > 1
            else "one drifted feature would always be enough"
        )
        out.append(
            _error(
                "[drift] share_threshold",
                f"share_threshold {dc.share_threshold:g} is outside (0, 1] (a share of the "
                f"monitored features): {effect}; set a share such as 0.3",
            )
        )
    return out


def _orchestration(cfg: Config) -> list[Finding]:
    o = cfg.orchestration
    files, grace = o.max_batch_files, o.reconcile_grace_seconds
    out = [
        *_above("orchestration", "poll_interval", o.poll_interval),
        *_above("orchestration", "idle_poll_interval", o.idle_poll_interval),
        *_must("orchestration", "max_batch_files", files, files >= 0, "0 (no limit) or more"),
        *_above("orchestration", "reconcile_minutes", o.reconcile_minutes),
        *_must("orchestration", "reconcile_grace_seconds", grace, grace >= 0, "0 or more"),
        *_at_least("orchestration", "task_retries", o.task_retries, 0),
        *_above("orchestration", "task_timeout_minutes", o.task_timeout_minutes),
        *_above("orchestration", "wait_timeout_hours", o.wait_timeout_hours),
    ]
    if 0 < o.idle_poll_interval < o.poll_interval:
        out.append(
            _error(
                "[orchestration] idle_poll_interval",
                f"idle_poll_interval {o.idle_poll_interval:g} is below poll_interval "
                f"{o.poll_interval:g}: the trigger ignores it and never backs off while "
                "landing/ is empty; set idle_poll_interval to at least poll_interval (equal: no "
                "back-off)",
            )
        )
    if o.settle_seconds < 0 or o.max_settle_seconds < o.settle_seconds:
        out.append(
            _error(
                "[orchestration] settle_seconds",
                f"needs 0 <= settle_seconds <= max_settle_seconds, got {o.settle_seconds:g} and "
                f"{o.max_settle_seconds:g}",
            )
        )
    if o.arrival == "events" and not o.queue_url:
        out.append(
            _error(
                "[orchestration] queue_url",
                'arrival = "events" needs queue_url (the SQS queue the bucket sends its '
                "landing/ notifications to)",
            )
        )
    if o.arrival == "poll" and o.idle_poll_interval > SLOW_IDLE_POLL_S:
        out.append(
            _warning(
                "[orchestration] idle_poll_interval",
                f"idle_poll_interval {o.idle_poll_interval:g}: while landing/ is empty the "
                "trigger backs off to one listing that often, so the first file after a quiet "
                f"period may wait {o.idle_poll_interval:g} s to be seen; lower it, or use "
                'arrival = "events" to be told of files without listing',
            )
        )
    return out


def _watchdog(cfg: Config) -> list[Finding]:
    w = cfg.watchdog
    out = [f for name in _WATCHDOG_LIMITS for f in _above("watchdog", name, getattr(w, name))]
    return [*out, *_at_least("watchdog", "max_failed_retrains", w.max_failed_retrains, 1)]


def _resources(cfg: Config) -> list[Finding]:
    res = cfg.resources
    out = [
        _error(f"[resources] {name}", f"{name} must not be empty")
        for name in ("default_queue", "heavy_queue", "heavy_pool")
        if not getattr(res, name).strip()
    ]
    out += [
        *_at_least("resources", "heavy_pool_slots", res.heavy_pool_slots, 1),
        *_at_least("resources", "large_file_mb", res.large_file_mb, 1),
        *_at_least("resources", "task_memory_mb", res.task_memory_mb, 128),
        *_above("resources", "task_cpu", res.task_cpu),
    ]
    if bad := [m for m in res.preload if not all(p.isidentifier() for p in m.split("."))]:
        out.append(
            _error("[resources] preload", f"not module names: {bad}; list importable modules")
        )
    return out
