"""A steady stream of files through the whole pipeline, on both profiles side by side.

500 files arrive over 5 minutes (one every 0.6 s; every 50th a large one, validated by the heavy
``validate_large`` task), on a fresh stack of each profile:

- ``embedded``: SQLite, LocalExecutor (parallelism 4), as ``make demo`` runs;
- ``celery``: PostgreSQL, CeleryExecutor on Redis, two Celery workers (2 processes each), as
  ``retrain start --profile celery`` runs (needs PostgreSQL and Redis: skipped, with the reason,
  when they do not answer).

Same DAGs, same config and shipped timing (poll 0.5 s, settle 0.5 s, a steady trickle is cut
into a batch every ``max_settle_seconds``, 30 s), except ``[resources] large_file_mb = 1`` so
that the large files take the heavy path. Per profile it records:

- ``processed_once``: files that ended in exactly one of raw/ and quarantine/ (all in raw/);
- ``p95_s`` (and p50, max): from the end of a file's PUT to its leaving landing/ (it is in
  raw/ then: routing copies, then deletes), sampled by listing landing/ every 0.5 s;
- ``batches``: ingest runs that routed files; ``retrains``: retrain runs they set off;
- ``scheduler_cpu_s``, ``worker_cpu_s``: CPU seconds (user + system, children included) over
  the stream and until the pipeline was idle again. Workers are the processes that run tasks:
  LocalExecutor's worker processes (children of the scheduler) and their task processes; the
  two Celery workers with their pool and task processes. The scheduler is the rest of the
  scheduler's process group.

    .venv/bin/python benchmarks/throughput.py [--files 500] [--seconds 300]
        [--profiles embedded celery]

Prints a table and saves benchmarks/results/throughput.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from machine import describe, save_result  # benchmarks/ is on sys.path: the scripts run from there

ROOT = Path(__file__).resolve().parents[1]
SMALL_ROWS, LARGE_ROWS, LARGE_EVERY = 200, 15_000, 50  # 15k rows: ~1.2 MB of CSV
OVERRIDES = {"RETRAIN__RESOURCES__LARGE_FILE_MB": "1"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def processes() -> list[dict]:
    """Every process: pid, process group, own and reaped children's CPU seconds, command line."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        # after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        # utime stime cutime cstime ...
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        out.append(
            {
                "pid": int(stat.parent.name),
                "pgrp": int(fields[2]),
                "own": (utime + stime) / CLK_TCK,
                "total": (utime + stime + cutime + cstime) / CLK_TCK,
                "cmd": cmdline.strip(),
            }
        )
    return out


def cpu(stack) -> dict[str, float]:
    """CPU seconds so far of the scheduler and of the workers (see the module's docstring)."""
    procs = processes()
    sched = stack.pids["scheduler"]
    in_sched = [p for p in procs if p["pgrp"] == sched]
    if stack.profile == "celery":
        workers = [
            p for p in procs if p["pgrp"] in {stack.pids[w] for w in ("worker-1", "worker-2")}
        ]
        scheduler = sum(p["total"] for p in in_sched)
    else:  # LocalExecutor's workers are the scheduler's children titled "airflow worker -- ..."
        workers = [p for p in in_sched if p["cmd"].startswith("airflow worker")]
        scheduler = sum(p["total"] for p in in_sched if p not in workers)
    return {"scheduler": scheduler, "worker": sum(p["total"] for p in workers)}


def prepare(cfg, files: int) -> list[tuple[str, bytes]]:
    from retrain.datagen import generate, write_batch

    start = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=7)
    out = []
    for i in range(files):
        rows = LARGE_ROWS if i % LARGE_EVERY == LARGE_EVERY - 1 else SMALL_ROWS
        df = generate(rows, seed=50_000 + i, scenario="normal", start=start, days=7.0)
        out.append((f"{cfg.storage.landing_prefix}stream/f{i:04d}.csv", write_batch(df, "csv")))
    return out


class LandingWatch(threading.Thread):
    """Lists landing/ every ``interval`` seconds; records when each uploaded key left it."""

    def __init__(self, storage, prefix: str, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.storage, self.prefix, self.interval = storage, prefix, interval
        self.put_at: dict[str, float] = {}
        self.left_at: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            listed_at = time.monotonic()
            try:
                present = {o.key for o in self.storage.list_objects(self.prefix)}
            except Exception:  # a slow listing: try again
                continue
            for key in list(self.put_at):
                if key not in present and key not in self.left_at:
                    self.left_at[key] = listed_at
            self.done.wait(max(0.0, self.interval - (time.monotonic() - listed_at)))


def idle(api) -> bool:
    """No run at work (the ingest run waiting for files is idle), no asset event queued."""
    for dag_id in ("ingest", "features", "retrain", "score"):
        for run in api.dag_runs(dag_id, limit=5):
            if run.finished:
                continue
            if dag_id == "ingest":
                states = {t.task_id: t.state for t in api.task_instances(dag_id, run.run_id)}
                if states.get("wait_for_files") in (None, "scheduled", "queued", "deferred"):
                    continue
            return False
    return not any(
        api.get_json(f"/api/v2/dags/{d}/assets/queuedEvents")["queued_events"]
        for d in ("features", "retrain", "score")
    )


def wait_idle(api, timeout: float) -> None:
    from retrain.local import devstack

    streak = [0]

    def settled() -> bool:
        streak[0] = streak[0] + 1 if idle(api) else 0
        return streak[0] >= 3

    devstack.wait_for(settled, timeout, interval=2.0, what="the pipeline to be idle")


def placed_once(storage, cfg, keys: list[str]) -> tuple[int, int]:
    """(files in exactly one of raw/ and quarantine/, of those in raw/)."""
    from retrain.layout import REPORT_SUFFIX, Layout

    s = cfg.storage
    by_name = {k[len(s.landing_prefix) :]: k for k in keys}
    placed: dict[str, list[str]] = {k: [] for k in keys}
    for prefix in (s.raw_prefix, s.quarantine_prefix):
        for obj in storage.iter_objects(prefix):
            if obj.key.endswith(REPORT_SUFFIX):
                continue
            if (landed := by_name.get(Layout.name_in_partition(obj.key))) is not None:
                placed[landed].append(obj.key)
    once = [v[0] for v in placed.values() if len(v) == 1]
    return len(once), sum(k.startswith(s.raw_prefix) for k in once)


def runs_since(api, dag_id: str, since: datetime) -> list:
    out = []
    for run in api.dag_runs(dag_id, limit=500):
        started = run.start_date or run.queued_at
        if started and datetime.fromisoformat(started) >= since:
            out.append(run)
    return out


def stream(profile: str, files: int, seconds: float) -> dict:
    from retrain.local import devstack

    with tempfile.TemporaryDirectory(prefix=f"throughput-{profile}-") as tmp:
        root = Path(tmp)
        stack = devstack.start(
            root, bucket="throughput", overrides=OVERRIDES, profile=profile, log=print
        )
        try:
            cfg, storage = stack.config(), stack.storage()
            bodies = prepare(cfg, files)
            wait_idle(stack.api, 300)
            since = datetime.now(UTC)
            load_before = os.getloadavg()[0]
            cpu_before = cpu(stack)
            watch = LandingWatch(storage, cfg.storage.landing_prefix)
            watch.start()
            began = time.monotonic()
            gap = seconds / files
            for i, (key, body) in enumerate(bodies):
                time.sleep(max(0.0, began + i * gap - time.monotonic()))
                storage.put_bytes(key, body)
                watch.put_at[key] = time.monotonic()
            uploaded = time.monotonic() - began
            print(f"[{profile}] {files} files uploaded in {uploaded:.0f} s")
            devstack.wait_for(
                lambda: len(watch.left_at) == files, 1800, interval=1.0, what="landing/ to drain"
            )
            drained = time.monotonic() - began
            watch.done.set()
            wait_idle(stack.api, 1800)
            cpu_after = cpu(stack)
            load_after = os.getloadavg()[0]
            latency = sorted(watch.left_at[k] - watch.put_at[k] for k in watch.put_at)
            once, in_raw = placed_once(storage, cfg, [k for k, _ in bodies])
            batches = [
                r
                for r in runs_since(stack.api, "ingest", since)
                if any(
                    t.task_id == "route" and t.state == "success"
                    for t in stack.api.task_instances("ingest", r.run_id)
                )
            ]
            retrains = runs_since(stack.api, "retrain", since)
        finally:
            devstack.stop(root, log=print)
    return {
        "profile": profile,
        "files": files,
        "processed_once": once,
        "in_raw": in_raw,
        "p95_s": round(statistics.quantiles(latency, n=20)[18], 1),
        "p50_s": round(statistics.median(latency), 1),
        "max_s": round(latency[-1], 1),
        "batches": len(batches),
        "retrains": len(retrains),
        "retrains_succeeded": sum(r.state == "success" for r in retrains),
        "scheduler_cpu_s": round(cpu_after["scheduler"] - cpu_before["scheduler"], 1),
        "worker_cpu_s": round(cpu_after["worker"] - cpu_before["worker"], 1),
        "upload_s": round(uploaded, 1),
        "drained_s": round(drained, 1),
        "large_files": sum(1 for i in range(files) if i % LARGE_EVERY == LARGE_EVERY - 1),
        # the machine's 1-minute load when the stream began and once idle again (2 cores): other
        # work on the machine shows here
        "load_1m": [round(load_before, 1), round(load_after, 1)],
    }


COLUMNS = (
    ("profile", "{:<9}"),
    ("files", "{:>5}"),
    ("processed_once", "{:>14}"),
    ("p95_s", "{:>6}"),
    ("p50_s", "{:>6}"),
    ("batches", "{:>7}"),
    ("retrains", "{:>8}"),
    ("scheduler_cpu_s", "{:>15}"),
    ("worker_cpu_s", "{:>12}"),
)


def main() -> None:
    from retrain.local import devstack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--profiles", nargs="+", default=list(devstack.PROFILES))
    args = parser.parse_args()
    runs, skipped = [], {}
    for profile in args.profiles:
        if profile == "celery" and (problem := devstack.services_problem(*devstack.service_urls())):
            print(f"[celery] skipped: {problem}")
            skipped[profile] = problem
            continue
        runs.append(stream(profile, args.files, args.seconds))
    print(" ".join(fmt.format(name) for name, fmt in COLUMNS))
    for run in runs:
        print(" ".join(fmt.format(run[name]) for name, fmt in COLUMNS))
    payload = {
        "runs": runs,
        "machine": describe(
            "apache-airflow",
            "apache-airflow-providers-celery",
            "celery",
            command=" ".join(["benchmarks/throughput.py", *sys.argv[1:]]),
            arrival=f"{args.files} files over {args.seconds:.0f} s, every {LARGE_EVERY}th "
            f"{LARGE_ROWS} rows (large_file_mb = 1), the rest {SMALL_ROWS} rows",
            celery_workers=f"{len(devstack.CELERY_WORKERS)} x {devstack.CELERY_CONCURRENCY}",
            **({"skipped": skipped} if skipped else {}),
        ),
    }
    print(f"saved {save_result('throughput', payload)}")


if __name__ == "__main__":
    main()
