"""How long a burst of uploads takes to drain through the real stack: from the last upload until
every file is routed (landing/ empty, each file claimed into raw/ or quarantine/).

Starts the local stack (S3-compatible server, Airflow scheduler, triggerer, dag-processor,
api-server, as `make demo` does, with the shipped poll and settle times) once per setting, drops
the same burst, and compares ``[ingest] validate_tasks = 1`` (the baseline: one validation task)
with the shipped ``validate_tasks = 2`` side by side. Prints a table and saves
benchmarks/results/ingest_drain.json.

    .venv/bin/python benchmarks/ingest_drain.py [--files 200] [--rows 200] [--tasks 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def task_durations(api) -> dict[str, float]:
    """Seconds each task of the finished ingest run took (mapped tasks: the slowest), and the
    sensor's time from the trigger firing to its end is not included (it waited in the triggerer).
    """
    from retrain.local import devstack

    def finished_run():
        runs = [r for r in api.dag_runs("ingest") if r.finished]
        return runs[0] if runs else None

    run = devstack.wait_for(finished_run, 300, what="the ingest run to finish")
    quoted = run.run_id.replace("+", "%2B").replace(":", "%3A")
    tis = api.get_json(f"/api/v2/dags/ingest/dagRuns/{quoted}/taskInstances", limit=100)
    out: dict[str, float] = {}
    for ti in tis["task_instances"]:
        if ti.get("start_date") and ti.get("end_date") and ti["task_id"] != "wait_for_files":
            took = (
                datetime.fromisoformat(ti["end_date"]) - datetime.fromisoformat(ti["start_date"])
            ).total_seconds()
            out[ti["task_id"]] = round(max(out.get(ti["task_id"], 0.0), took), 1)
    return out


def drain(files: int, rows: int, tasks: int) -> dict:
    from retrain.config import load_config
    from retrain.datagen import generate, write_batch
    from retrain.local import devstack, follow
    from retrain.storage import S3Storage

    overrides = {"RETRAIN__INGEST__VALIDATE_TASKS": str(tasks)}
    with tempfile.TemporaryDirectory(prefix="ingest-drain-") as tmp:
        stack = devstack.start(Path(tmp), bucket="drain", overrides=overrides, log=lambda *_: None)
        try:
            env = stack.env()
            cfg = load_config(ROOT / "retrain.toml", env={**env, **overrides})
            storage = S3Storage.from_config(
                cfg.storage,
                aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            )
            start = datetime(2026, 11, 1)
            bodies = {
                f"{cfg.storage.landing_prefix}burst/f{i:04d}.csv": write_batch(
                    generate(rows, seed=1000 + i, start=start), "csv"
                )
                for i in range(files)
            }
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda kv: storage.put_bytes(*kv), bodies.items()))
            uploaded = time.monotonic()
            routed = follow.wait_routed(storage, cfg, list(bodies), timeout=1800)
            drained_s = time.monotonic() - uploaded
            tasks_s = task_durations(stack.api)
        finally:
            devstack.stop(Path(tmp), log=lambda *_: None)
    valid = sum(r.valid for r in routed)
    return {
        "files": files,
        "rows_per_file": rows,
        "validate_tasks": tasks,
        "drain_s": round(drained_s, 1),
        "files_per_s": round(files / drained_s, 2),
        "accepted": valid,
        "task_s": tasks_s,
        "settle_s": cfg.orchestration.settle_seconds,
        "poll_s": cfg.orchestration.poll_interval,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    runs = []
    print(f"{'files':>6} {'rows':>6} {'tasks':>6} {'drain s':>8} {'files/s':>8} {'accepted':>9}")
    for tasks in args.tasks:
        run = drain(args.files, args.rows, tasks)
        runs.append(run)
        print(
            f"{run['files']:6d} {run['rows_per_file']:6d} {tasks:6d} {run['drain_s']:8.1f} "
            f"{run['files_per_s']:8.2f} {run['accepted']:9d}  tasks: {run['task_s']}"
        )
    base = runs[0]["drain_s"]
    for run in runs:
        run["speedup_vs_first"] = round(base / run["drain_s"], 2)
    out = ROOT / "benchmarks" / "results" / "ingest_drain.json"
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).date().isoformat(),
    }
    out.write_text(json.dumps({"runs": runs, "machine": machine}, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
