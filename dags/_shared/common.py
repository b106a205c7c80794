"""What the DAG files share: the config, the assets, default task arguments, storage, alerts.

Kept light on purpose: it runs on every DAG parse. Heavy work (boto3, pandas, GX, LightGBM) is
imported inside the functions that the tasks call.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import Asset

from retrain.config import load_config
from triggers.alerting import Alerting, bucket

if TYPE_CHECKING:
    from retrain.storage import S3Storage

# Task logs keep the pipeline's own lines (what was read, decided, where the report is) at INFO;
# the libraries' internal chatter stays below WARNING (GX is quieted again when it is imported:
# validation.context.quiet_gx_logs).
for _name in ("botocore", "boto3", "s3transfer", "urllib3", "great_expectations", "lightgbm"):
    logging.getLogger(_name).setLevel(logging.WARNING)

CONFIG = load_config()
_S = CONFIG.storage
OWNER = "ml-platform"
TAGS = ["retrain", CONFIG.dataset.name]
START_DATE = datetime(2026, 1, 1)

RAW = Asset(name="raw", uri=f"s3://{_S.bucket}/{_S.raw_prefix}")
FEATURES = Asset(name="features", uri=f"s3://{_S.bucket}/{_S.features_prefix}")
MODEL = Asset(name="model", uri=f"s3://{_S.bucket}/{_S.models_prefix}")
# A deploy waiting for a person ([gate] approval): the approve DAG is scheduled on it.
PENDING_APPROVAL = Asset(
    name="pending_approval", uri=f"s3://{_S.bucket}/{_S.ledger_prefix}approvals/"
)


def storage() -> S3Storage:
    """The bucket, through the Airflow connection: the hook owns the client."""
    return bucket(CONFIG)


# Every failing task alerts (once per run, after its last retry); a DAG run that succeeds closes
# its DAG's incident (see triggers/alerting.py).
ALERTING = Alerting(CONFIG, storage)
# Where each task runs, from [resources]: light tasks on the default queue; heavy ones (the
# training-set gate, training, evaluation, the refit, feature builds, large validations) on the
# heavy queue and in the heavy pool, whose slots bound them on every executor, so a big retrain
# never takes every worker slot from ingestion. ``resources`` records what each task needs (CPUs,
# RAM in MB) in the DAG, for executors and operators that size workers or pods by it. Under
# KubernetesExecutor every task also carries the pod it needs as executor_config (heavy ones
# task_memory_mb + [training] memory_budget_mb), since there each task is a pod of its own.
_R = CONFIG.resources
LIGHT_MEMORY_MB = _R.task_memory_mb
HEAVY_MEMORY_MB = _R.task_memory_mb + CONFIG.training.memory_budget_mb


def pod_resources(memory_mb: int, cpu: float) -> dict[str, dict[str, str]]:
    """A task pod's Kubernetes requests and limits: memory as request and limit (a task that
    outgrows it is OOM-killed alone, never its neighbours on the node), CPU as a request only
    (the same shape as the chart's pod template in terraform/helm/values-kubernetes.yaml)."""
    memory = f"{memory_mb}Mi"
    return {
        "requests": {"cpu": f"{round(cpu * 1000)}m", "memory": memory},
        "limits": {"memory": memory},
    }


def uses_kubernetes_executor(executors: str) -> bool:
    """Whether ``[core] executor`` names KubernetesExecutor: one name, a comma-separated list,
    ``alias:module.path`` or ``team=...;...`` entries, as Airflow's executor loader reads it."""
    names = (
        part.strip().rsplit(":", 1)[-1].rsplit(".", 1)[-1] for part in re.split(r"[,;=]", executors)
    )
    return "KubernetesExecutor" in names


def kubernetes_executor_config(memory_mb: int, cpu: float) -> dict[str, Any]:
    """``executor_config`` for KubernetesExecutor: a ``pod_override`` sizing the task pod's
    ``base`` container by [resources]. The chart's pod template gives every pod a light task's
    figure; this is what lets a heavy task have more. The kubernetes client is imported only
    here, so DAG parsing under other executors never pays for it."""
    from kubernetes.client import models as k8s

    figures = pod_resources(memory_mb, cpu)
    resources = k8s.V1ResourceRequirements(requests=figures["requests"], limits=figures["limits"])
    container = k8s.V1Container(name="base", resources=resources)
    return {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[container]))}


LIGHT: dict[str, Any] = {
    "queue": _R.default_queue,
    "resources": {"cpus": _R.task_cpu, "ram": LIGHT_MEMORY_MB},
}
HEAVY: dict[str, Any] = {
    "queue": _R.heavy_queue,
    "pool": _R.heavy_pool,
    "resources": {"cpus": _R.task_cpu, "ram": HEAVY_MEMORY_MB},
}
if uses_kubernetes_executor(conf.get("core", "executor", fallback="")):
    LIGHT["executor_config"] = kubernetes_executor_config(LIGHT_MEMORY_MB, _R.task_cpu)
    HEAVY["executor_config"] = kubernetes_executor_config(HEAVY_MEMORY_MB, _R.task_cpu)
LARGE_FILE_BYTES = _R.large_file_mb * 1024 * 1024  # validated by the heavy validate_large task
DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": CONFIG.orchestration.task_retries,
    "retry_delay": timedelta(seconds=20),
    "execution_timeout": timedelta(minutes=CONFIG.orchestration.task_timeout_minutes),
    "on_failure_callback": ALERTING.failure_notifier(),
    **LIGHT,
}
# What every DAG of the pipeline shares: one run at a time (runs of one DAG work on the same
# prefixes), no backfill, the default task arguments above, the recovery callback.
DAG_KWARGS = {
    "max_active_runs": 1,
    "start_date": START_DATE,
    "catchup": False,
    "default_args": DEFAULT_ARGS,
    "on_success_callback": ALERTING.dag_succeeded,
}
# Features and retrain runs carry a deadline (ingest waits for files by design, the watchdog
# is short): a run still unfinished after [watchdog] max_run_minutes sends a notice from the
# triggerer.
RUN_DEADLINE = ALERTING.deadline(CONFIG.watchdog.max_run_minutes)


def event_version(context: Any, asset: Asset) -> str | None:
    """The ``version`` the newest triggering event of ``asset`` names in its extra, or None
    (a manual trigger, an event created in the UI)."""
    try:
        events = context["triggering_asset_events"][asset]
    except (KeyError, TypeError):
        return None
    named = [e for e in events if (e.extra or {}).get("version")]
    if not named:
        return None
    return str(max(named, key=lambda e: e.timestamp).extra["version"])
