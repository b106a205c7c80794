"""Warm workers: import the pipeline's heavy libraries once, in the process that forks tasks.

An Airflow task process starts cold: on this machine ``import great_expectations`` alone takes
4-5 s, before a validate task reads its first byte. LocalExecutor forks every task process from
workers that the scheduler forked at start-up, and a Celery worker forks its pool, which forks
each task; modules imported before those forks are already in every task process (copy-on-write
memory). ``airflow_local_settings.py`` (Airflow's start-up hook) calls :func:`preload` in those
processes only: not in the api-server, dag-processor or triggerer, which never run a task.

Pure library code: no Airflow import; the caller says which process this is.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Preloaded:
    """What :func:`preload` imported, what failed (module: error) and how long it took."""

    modules: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    seconds: float

    def summary(self) -> str:
        text = f"preloaded {len(self.modules)} module(s) in {self.seconds:.1f} s for task processes"
        if self.failed:
            text += "; not preloaded: " + ", ".join(f"{m} ({e})" for m, e in self.failed)
        return text


def forks_tasks(argv: Sequence[str], executor: str) -> bool:
    """Whether this Airflow process forks task processes: a scheduler that runs LocalExecutor
    (``[core] executor`` may list several), or a Celery worker."""
    command = [a for a in argv[1:] if not a.startswith("-")]
    if command[:1] == ["scheduler"]:
        return any(name.strip().endswith("LocalExecutor") for name in executor.split(","))
    return command[:2] == ["celery", "worker"]


def preload(modules: Sequence[str]) -> Preloaded:
    """Import ``modules``; one that fails is reported, not raised: the task that needs it fails
    with its own error, where a user looks, instead of the scheduler failing to start."""
    start = time.monotonic()
    done: list[str] = []
    failed: list[tuple[str, str]] = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any import error is reported, none is fatal
            failed.append((name, f"{type(exc).__name__}: {exc}"))
        else:
            done.append(name)
    return Preloaded(tuple(done), tuple(failed), time.monotonic() - start)
