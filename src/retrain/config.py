"""Typed project configuration: one TOML file describes the dataset, the bucket and the thresholds.

Everything downstream (GX suites, features, training, drift, the DAGs' prefixes) reads this, so a
new tabular dataset needs a config edit, not a code change. Any scalar can be overridden by an
environment variable ``RETRAIN__<SECTION>__<KEY>`` (Airflow's own ``AIRFLOW__S__K`` convention),
which is how the local stack, the tests and a production deployment point the same code elsewhere.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

DType = Literal["int", "float", "string", "category", "datetime"]
ENV_PREFIX = "RETRAIN__"
CONFIG_ENV = "RETRAIN_CONFIG"
DEFAULT_CONFIG_NAME = "retrain.toml"


class ConfigError(ValueError):
    """The configuration is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Column:
    """One column of the dataset as users drop it into ``landing/``."""

    name: str
    dtype: DType
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    max_missing_fraction: float | None = None
    # False: the drift check still measures and shows the column but never counts it as drift
    # (calendar parts, id-like or ever-growing columns move every month by design).
    drift: bool = True


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    id_column: str
    time_column: str
    target: str
    columns: tuple[Column, ...]
    file_formats: tuple[str, ...] = ("csv", "parquet")

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def feature_columns(self) -> tuple[Column, ...]:
        """Input columns the model may learn from (not the id, time or target)."""
        skip = {self.id_column, self.time_column, self.target}
        return tuple(c for c in self.columns if c.name not in skip)

    @property
    def numeric_features(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.feature_columns if c.dtype in ("int", "float"))

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.feature_columns if c.dtype in ("category", "string"))


@dataclass(frozen=True)
class StorageConfig:
    bucket: str = "retrain-demo"
    endpoint_url: str = ""  # empty: the AWS default endpoint
    region: str = "us-east-1"
    landing_prefix: str = "landing/"
    raw_prefix: str = "raw/"
    quarantine_prefix: str = "quarantine/"
    features_prefix: str = "features/"
    models_prefix: str = "models/"
    predictions_prefix: str = "predictions/"  # the batch-scoring DAG's output
    reports_prefix: str = "reports/"
    ledger_prefix: str = "ledger/"  # what was landed, claimed, accepted, retracted (exactly-once)


@dataclass(frozen=True)
class ValidationConfig:
    min_rows: int = 20  # a raw file with fewer rows is rejected
    max_missing_fraction: float = 0.2  # default for columns that do not set their own
    training_min_rows: int = 500
    training_min_positive_fraction: float = 0.01
    training_max_positive_fraction: float = 0.6
    # A column the config does not name: "reject" quarantines the file, "ignore" drops the column.
    extra_columns: str = "reject"
    # A landed file with a longer cell (bytes between delimiters, as stored) is quarantined
    # before it is parsed: one unbalanced quote makes a cell of the rest of the file.
    max_cell_bytes: int = 64 * 1024


EXTRA_COLUMN_POLICIES = ("reject", "ignore")
DUPLICATE_ID_POLICIES = ("reject", "upsert")


@dataclass(frozen=True)
class IngestConfig:
    """What happens to landed objects before validation (see README, "Landed objects")."""

    # An id that an earlier accepted file already brought: "reject" quarantines the new file
    # (naming the earlier one); "upsert" accepts it and the newest row per id wins in training.
    duplicate_ids: str = "reject"
    # Upload names that are not data yet (shell patterns matched against every path segment
    # below the landing prefix, case-sensitive): left in landing/ untouched until renamed.
    ignore_patterns: tuple[str, ...] = (".*", "_*", "*.part", "*.tmp", "*.crdownload", "*.partial")
    validate_tasks: int = 2  # files of a batch are validated by this many parallel tasks
    # A file whose validation killed its task process this many times (the OOM killer, a
    # crashing parser: no Python error, no callback) is quarantined without being read again.
    max_file_attempts: int = 2


@dataclass(frozen=True)
class TrainingConfig:
    holdout_fraction: float = 0.2  # the newest rows by time column
    # with a champion: the newest share of the rows it never trained on that both models are
    # judged on; the challenger learns from the rest of them (README, "The deploy decision")
    new_data_holdout_fraction: float = 0.5
    # The training window, newest first (0: no limit): the feature files of the files that
    # arrived on the newest arrival day and the window_days - 1 days before it, and/or the
    # newest files until window_rows rows. A retrain's cost follows the window, not history.
    window_days: int = 0
    window_rows: int = 0
    memory_budget_mb: int = 1024  # what a training task may use; reads are batched to fit it
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 20
    seed: int = 42


@dataclass(frozen=True)
class GateConfig:
    """The deploy policy (README, "The deploy decision"), evaluated by ``decision.decide``."""

    metric: str = "auc"
    min_metric: float = 0.6  # absolute floor: never deploy a model worse than this
    # After drift or a degraded champion, the challenger may trail the champion by at most this
    # much (the lower confidence bound of challenger - champion must be above -margin).
    non_inferiority_margin: float = 0.02
    # The champion counts as degraded when its metric on the newest data is this far below the
    # metric it had on its own holdout when it was trained.
    degradation_margin: float = 0.02
    confidence: float = 0.95  # of the paired bootstrap interval of challenger - champion
    bootstrap_rounds: int = 1000
    seed: int = 7  # of the bootstrap: the same data give the same interval
    # A person signs off before a deploy (README, "The deploy decision"): "never"; "on_change"
    # (a deploy after drift, score drift or a degraded champion, or one although worse within
    # the margin); "always". The approval waits in Airflow's Required Actions, in a DAG of its
    # own, so later retrains go on; a newer challenger supersedes one still waiting.
    approval: str = "never"
    approval_timeout_hours: float = 24.0
    approval_on_timeout: str = "hold"  # or "deploy"
    approvers: tuple[str, ...] = ()  # Airflow user ids who may answer (empty: any user with access)


APPROVAL_MODES = ("never", "on_change", "always")
APPROVAL_TIMEOUT_OUTCOMES = ("hold", "deploy")
DRIFT_RULES = ("share", "importance")
METRICS = ("auc", "average_precision")  # [gate] metric: higher is better


@dataclass(frozen=True)
class DriftConfig:
    """When a feature, the data and the model's scores count as drifted (README, "Drift")."""

    bins: int = 10  # training-time quantile bins of each numeric feature (PSI)
    psi_threshold: float = 0.2  # PSI above this, on a feature or on the scores
    # Normalized Wasserstein (numeric, in reference standard deviations) or Jensen-Shannon
    # distance (categorical) above this.
    distance_threshold: float = 0.1
    # "share": the data drifted when this share of the monitored features drifted;
    # "importance": when the drifted features carry this share of the model's gain.
    rule: str = "share"
    share_threshold: float = 0.3
    prediction_psi_threshold: float = 0.2  # the champion's scores: newest data vs training time


@dataclass(frozen=True)
class OrchestrationConfig:
    aws_conn_id: str = "retrain_s3"
    # How the landing trigger waits (triggers/landing.py), in seconds. While landing/ is empty
    # the pause between listings doubles from poll_interval up to idle_poll_interval (one LIST
    # request each: 86,400 a day at 1 s, about $0.43 a day on S3 Standard; raise it where a few
    # seconds of latency matter less); any change brings it back to poll_interval.
    poll_interval: float = 0.5  # the fast pause, while files are arriving
    idle_poll_interval: float = 1.0  # the backoff ceiling while idle (= poll_interval: none)
    settle_seconds: float = 0.5  # the quiet period: landing/ unchanged this long -> take the batch
    # A listing that never stays quiet (a steady trickle) is taken this long after its first file
    # was seen.
    max_settle_seconds: float = 30.0
    # At most this many files per batch (taken at once when reached), the oldest first; the rest
    # wait for the next run. 0: no limit.
    max_batch_files: int = 500
    wait_timeout_hours: float = 168.0
    # How arrivals are noticed (README, "Event notifications"): "poll" lists landing/ from the
    # triggerer (the timing above); "events" reads the bucket's S3 event notifications from the
    # SQS queue at queue_url (an AssetWatcher in the triggerer, settled by settle_seconds,
    # max_settle_seconds and max_batch_files as above), and a reconciler lists landing/ every
    # reconcile_minutes for objects older than reconcile_grace_seconds whose notification was
    # lost. Only one mode is active per deployment.
    arrival: str = "poll"
    queue_url: str = ""  # events: the SQS queue the bucket notifies about landing/ objects
    reconcile_minutes: float = 10.0  # events: the reconciler's cadence
    reconcile_grace_seconds: float = 60.0  # events: an object this old without a run is swept
    task_retries: int = 2
    task_timeout_minutes: float = 30.0


ARRIVAL_MODES = ("poll", "events")


@dataclass(frozen=True)
class ResourcesConfig:
    """Where and with what each task runs beyond one machine (README, "Beyond one machine").

    Heavy tasks (the training-set gate, training, evaluation, the refit, feature builds, and the
    validation of large files) go to their own Celery queue and Airflow pool, so a big retrain
    never starves ingestion; light tasks to the default queue. LocalExecutor ignores queues, the
    pool bounds heavy tasks there too. Memory: a heavy task's is ``[training] memory_budget_mb``
    plus ``task_memory_mb`` for the interpreter and libraries; a light task's ``task_memory_mb``.
    """

    default_queue: str = "default"
    heavy_queue: str = "heavy"
    heavy_pool: str = "heavy"
    heavy_pool_slots: int = 1  # heavy tasks running at once, across all workers
    large_file_mb: int = 256  # a landed file at least this big is validated by a heavy task
    task_memory_mb: int = 512  # a light task's memory; a heavy task's beyond the budget
    task_cpu: float = 1.0  # CPUs per task (a request on Kubernetes)
    # Imported once by the processes that fork task processes (retrain.warm), so a task does not
    # pay for them at its start; empty: off.
    preload: tuple[str, ...] = (
        "great_expectations",
        "validation.grouped",
        "retrain.steps.ingest",
        "retrain.steps.features",
        "retrain.steps.retrain",
        "retrain.steps.scoring",
    )


NOTIFIERS = ("sns", "log")


@dataclass(frozen=True)
class AlertsConfig:
    """Where alerts go (see README, "Alerts"). Every alert is also kept in the bucket."""

    # "sns": the amazon provider's SnsNotifier to sns_topic_arn, through the AWS connection;
    # "log": only the task log and the bucket (Slack, e-mail: see the README).
    notifier: str = "log"
    sns_topic_arn: str = ""
    # The Airflow UI as people reach it, for the links in alerts (empty: Airflow's own
    # [api] base_url).
    airflow_url: str = ""


@dataclass(frozen=True)
class WatchdogConfig:
    """Limits the watchdog DAG checks on its timer, whether or not the pipeline runs."""

    interval_minutes: float = 5.0
    max_data_age_hours: float = 48.0  # no file accepted for longer: data stopped arriving
    max_champion_age_hours: float = 168.0  # the deployed model is older than this
    max_landing_wait_minutes: float = 15.0  # a file waits in landing/ longer: trigger down?
    max_failed_retrains: int = 3  # this many retrain runs in a row failed or held
    # A features or retrain run not finished this long after it was queued (Airflow's deadline
    # alerts: they exist once a run exists, so they complement the timer above).
    max_run_minutes: float = 60.0


@dataclass(frozen=True)
class MetricsConfig:
    """StatsD metrics of the pipeline and of Airflow itself (off while statsd_host is empty)."""

    statsd_host: str = ""
    statsd_port: int = 8125
    prefix: str = "retrain"


@dataclass(frozen=True)
class Config:
    dataset: DatasetConfig
    storage: StorageConfig = field(default_factory=StorageConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    orchestration: OrchestrationConfig = field(default_factory=OrchestrationConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    source: str = ""  # where it was loaded from, for error messages


_SECTIONS: dict[str, type] = {
    "storage": StorageConfig,
    "validation": ValidationConfig,
    "ingest": IngestConfig,
    "training": TrainingConfig,
    "gate": GateConfig,
    "drift": DriftConfig,
    "orchestration": OrchestrationConfig,
    "alerts": AlertsConfig,
    "watchdog": WatchdogConfig,
    "metrics": MetricsConfig,
    "resources": ResourcesConfig,
}


def default_config_path() -> Path:
    """``$RETRAIN_CONFIG``, else ``retrain.toml`` in the working directory or the project root."""
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    cwd = Path.cwd() / DEFAULT_CONFIG_NAME
    if cwd.exists():
        return cwd
    return Path(__file__).resolve().parents[2] / DEFAULT_CONFIG_NAME


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None, *, check: bool = True
) -> Config:
    path = Path(path) if path is not None else default_config_path()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path} (set {CONFIG_ENV})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return parse_config(raw, env=os.environ if env is None else env, source=str(path), check=check)


def parse_config(
    raw: Mapping[str, Any], env: Mapping[str, str], source: str = "", *, check: bool = True
) -> Config:
    """The typed config; a malformed one raises at its first problem, an inconsistent one (with
    ``check``) raises one ``ConfigError`` naming every error of ``retrain.config_check``, one a
    line. ``check=False`` returns it unchecked, for a caller that shows every finding itself."""
    unknown = set(raw) - set(_SECTIONS) - {"dataset"}
    if unknown:
        raise ConfigError(f"{source}: unknown section(s): {sorted(unknown)}")
    if "dataset" not in raw:
        raise ConfigError(f"{source}: missing [dataset] section")
    sections = {
        name: _build_section(cls, name, raw.get(name, {}), env, source)
        for name, cls in _SECTIONS.items()
    }
    cfg = Config(dataset=_build_dataset(raw["dataset"], source), source=source, **sections)
    if not check:
        return cfg
    from retrain.config_check import check_config, errors  # it imports this module

    if found := errors(check_config(cfg)):
        raise ConfigError("\n".join(f"{source}: {finding}" for finding in found))
    return cfg


# Keys of earlier versions, with where their meaning went (a config is named, never ignored).
MOVED = {
    ("gate", "psi_threshold"): "[drift] psi_threshold",
    ("gate", "psi_bins"): "[drift] bins",
    ("gate", "min_improvement"): (
        "the deploy policy: [gate] non_inferiority_margin and the confidence interval "
        '(README, "The deploy decision")'
    ),
}


def _build_section(cls: type, name: str, values: Mapping[str, Any], env, source: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        moved = [f"{k} -> {MOVED[name, k]}" for k in sorted(unknown) if (name, k) in MOVED]
        hint = f" (moved: {'; '.join(moved)})" if moved else ""
        raise ConfigError(f"{source}: [{name}] unknown key(s): {sorted(unknown)}{hint}")
    kwargs = dict(values)
    for key, fld in known.items():
        env_key = f"{ENV_PREFIX}{name.upper()}__{key.upper()}"
        if env_key in env:
            kwargs[key] = _coerce(env[env_key], fld.type, env_key)
    for key, value in kwargs.items():
        kwargs[key] = _check_type(value, known[key].type, f"[{name}] {key}", source)
    return cls(**kwargs)


def _coerce(text: str, type_name: str, where: str) -> Any:
    """An environment variable's text as the field's type (str, int, float, or a list given
    comma-separated)."""
    if type_name == _LIST_TYPE:
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
    except ValueError as exc:
        raise ConfigError(f"{where}={text!r} is not a valid {type_name}") from exc
    return text


_SCALAR_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float)}
_LIST_TYPE = "tuple[str, ...]"


def _check_type(value: Any, type_name: str, where: str, source: str) -> Any:
    if type_name == _LIST_TYPE:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: {where} must be a list of strings, got {value!r}")
        return tuple(value)
    # bool is an int subclass in Python, but `true` is never a valid count or threshold
    if isinstance(value, bool) or not isinstance(value, _SCALAR_TYPES[type_name]):
        raise ConfigError(f"{source}: {where} must be {type_name}, got {value!r}")
    return float(value) if type_name == "float" else value


def _build_dataset(raw: Mapping[str, Any], source: str) -> DatasetConfig:
    required = ("name", "id_column", "time_column", "target", "columns")
    missing = [k for k in required if k not in raw]
    if missing:
        raise ConfigError(f"{source}: [dataset] missing key(s): {missing}")
    columns = []
    for name, spec in raw["columns"].items():
        spec = {"dtype": spec} if isinstance(spec, str) else dict(spec)
        if spec.get("dtype") not in get_args(DType):
            raise ConfigError(
                f"{source}: column {name!r}: dtype must be one of {get_args(DType)}, "
                f"got {spec.get('dtype')!r}"
            )
        if "categories" in spec:
            spec["categories"] = tuple(str(c) for c in spec["categories"])
        known = {f.name for f in dataclasses.fields(Column)} - {"name"}
        if bad := set(spec) - known:
            raise ConfigError(f"{source}: column {name!r}: unknown key(s) {sorted(bad)}")
        columns.append(Column(name=name, **spec))
    formats = tuple(raw.get("file_formats", ("csv", "parquet")))
    return DatasetConfig(
        name=raw["name"],
        id_column=raw["id_column"],
        time_column=raw["time_column"],
        target=raw["target"],
        columns=tuple(columns),
        file_formats=formats,
    )
