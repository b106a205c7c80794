"""Follow what the stack does by itself after files land: the demo's progress and the e2e test's
assertions both come from here, so what the demo shows is what the test checks.

Truth comes from two places: the bucket (where each file went, the champion pointer, the
decision records) and the api-server (which DAG runs ran and how they ended).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from retrain.airflow_api import AirflowApi, DagRun
from retrain.config import Config
from retrain.devstack import wait_for
from retrain.storage import S3Storage


@dataclass(frozen=True)
class Routed:
    landing_key: str
    dest_key: str
    valid: bool


def run_ids(api: AirflowApi, dag_id: str, *, finished_only: bool = False) -> set[str]:
    """Runs to ignore when waiting for the next one. The continuous ingest DAG always has a run
    waiting in the triggerer: that one takes the next batch, so only finished runs are old."""
    return {r.run_id for r in api.dag_runs(dag_id) if r.finished or not finished_only}


def wait_routed(
    storage: S3Storage, cfg: Config, landing_keys: list[str], timeout: float
) -> list[Routed]:
    """Wait until each uploaded file has left landing/ for raw/ or quarantine/."""
    s = cfg.storage
    names = {k: k[len(s.landing_prefix) :] for k in landing_keys}

    def routed() -> list[Routed] | None:
        if any(storage.exists(k) for k in landing_keys):
            return None
        found: dict[str, Routed] = {}
        for prefix, valid in ((s.raw_prefix, True), (s.quarantine_prefix, False)):
            for obj in storage.list_objects(prefix):
                for key, rel in names.items():
                    if obj.key.endswith("/" + rel):
                        found[key] = Routed(key, obj.key, valid)
        return [found[k] for k in landing_keys] if len(found) == len(landing_keys) else None

    return wait_for(routed, timeout, interval=1.0, what="the files to leave landing/")


def wait_new_run(
    api: AirflowApi,
    dag_id: str,
    seen: set[str],
    timeout: float,
    on_task: Callable[[str], None] | None = None,
) -> DagRun:
    """Wait for a run of ``dag_id`` not in ``seen`` to finish; report task state changes."""
    states: dict[str, str | None] = {}

    def finished() -> DagRun | None:
        new = [r for r in api.dag_runs(dag_id) if r.run_id not in seen]
        done = [r for r in new if r.finished]
        if on_task is not None:
            for run in new[-1:] if not done else done[-1:]:
                for ti in api.task_instances(dag_id, run.run_id):
                    if states.get(ti.task_id) != ti.state:
                        states[ti.task_id] = ti.state
                        on_task(f"{dag_id}.{ti.task_id}: {ti.state}")
        return done[-1] if done else None

    return wait_for(finished, timeout, interval=1.0, what=f"a new {dag_id} run to finish")


class Clock:
    """Seconds since the start, for progress lines."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self) -> str:
        return f"[{time.monotonic() - self.start:6.1f}s]"
