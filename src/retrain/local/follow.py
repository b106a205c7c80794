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
from retrain.local.devstack import wait_for
from retrain.storage import S3Storage


@dataclass(frozen=True)
class Routed:
    landing_key: str
    dest_key: str
    valid: bool
    reason: str = ""


def run_ids(api: AirflowApi, dag_id: str, *, finished_only: bool = False) -> set[str]:
    """Runs to ignore when waiting for the next one. The continuous ingest DAG always has a run
    waiting in the triggerer: that one takes the next batch, so only finished runs are old."""
    return {r.run_id for r in api.dag_runs(dag_id) if r.finished or not finished_only}


def wait_routed(
    storage: S3Storage, cfg: Config, landing_keys: list[str], timeout: float
) -> list[Routed]:
    """Wait until each uploaded file has left landing/; say where its claim sent it.

    The ledger's claims are the truth (a name can land twice, an unsafe key is renamed), so the
    newest claim per landing key that was made after this call started is the answer.
    """
    from datetime import UTC, datetime, timedelta

    from retrain.layout import Layout

    since = datetime.now(UTC) - timedelta(seconds=5)  # S3 times have a one-second resolution
    claims_prefix = Layout.of(cfg).claims_prefix
    wanted = set(landing_keys)

    def routed() -> list[Routed] | None:
        if any(storage.exists(k) for k in landing_keys):
            return None
        found: dict[str, tuple[str, Routed]] = {}
        for obj in storage.iter_objects(claims_prefix):
            if obj.last_modified < since:
                continue
            claim = storage.get_json(obj.key)
            if claim["key"] in wanted and claim["decided_at"] >= found.get(claim["key"], ("",))[0]:
                routed = Routed(
                    claim["key"], claim["dest_key"], claim["verdict"] == "raw", claim["reason"]
                )
                found[claim["key"]] = (claim["decided_at"], routed)
        if len(found) < len(wanted):
            return None
        return [found[k][1] for k in landing_keys]

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
