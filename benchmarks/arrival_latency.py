"""Arrival latency on the real stack: one file dropped -> the first task after the wait running.

Starts the local stack as `make demo` does (S3-compatible server, Airflow scheduler, triggerer,
dag-processor, api-server on 127.0.0.1, SQLite, LocalExecutor, the shipped ``[orchestration]``
settings) from a temporary copy of the tree whose DAG folder also holds one benchmark-only file:
two DAGs built like the ingest DAG's wait (``@continuous``, one run at a time, a wait, then one
task) around the amazon provider's stock deferrable ``S3KeySensor`` (wildcard key under its own
prefix), one with ``poke_interval=1`` and one with the provider's default (60 s); their
downstream task deletes what it found, as ingest empties ``landing/``.

Then single-file arrivals (a generated CSV, ``--rows`` rows), spaced apart: each one waits
until the DAG's run is deferred in the triggerer, then a random pause of 4 s plus up to one
poll period (so the upload lands at a random point of the poll cycle), then one PUT. Ours and
the stock sensor with a 1 s poke take turns; the default-poke one comes last (a minute per
arrival). Measured from the end of the PUT, with Airflow's own timestamps (REST API):

- ours: -> the ingest DAG's ``validate`` task running (its start_date), and -> the file under
  ``raw/`` (the bucket polled every 0.2 s); the stock sensors: -> their downstream task running;
- where the time goes: the trigger's event recorded (the sensor's ``scheduled_when``), the
  resumed sensor done in a worker (its ``end_date``), the next task queued (``queued_when``);
- worker slots held while waiting: just before each PUT, the DAG's task instances in state
  running or queued (the waiting sensor is deferred: it holds none) and the default pool's
  running slots.

Last, ``--backlog`` times a file that lands while the previous batch is being validated, so
the next run's trigger finds it waiting as it starts (the case of the trigger's startup grace):
the run must succeed with its sensor's first try, and the time from the run's start to
``validate`` running is recorded.

The features, retrain, score and watchdog DAGs are paused for the run, so a retrain set off by
one arrival does not slow the next one down. It first waits (up to 25 min) until no pytest or
`make test` runs on the machine. Prints a table and saves benchmarks/results/arrival_latency.json
(``--no-save``: a trial; ``--set KEY=VALUE``: another ``[orchestration]`` value for this run).

    .venv/bin/python benchmarks/arrival_latency.py [--arrivals 20] [--default-arrivals 20]
        [--backlog 10] [--rows 10000] [--set idle_poll_interval=2] [--no-wait] [--no-save]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe, save_result  # noqa: E402

BOUND = 600.0  # seconds any one wait may take before the benchmark gives up
OURS = {"dag_id": "ingest", "sensor": "wait_for_files", "next": "validate"}
STOCK = {  # name -> (dag id, prefix, poke_interval: None = the provider's default)
    "stock_s3keysensor": ("bench_stock_s3_poke1", "stock-poke1/", 1.0),
    "stock_s3keysensor_default": ("bench_stock_s3_default", "stock-default/", None),
}
STOCK_DEFAULT_POKE_S = 60.0  # BaseSensorOperator's poke_interval, which the trigger inherits
PAUSED = ("features", "retrain", "score", "watchdog")
# Not copied into the tree the stack runs from.
_SKIP = {".git", ".venv", ".stack", ".ci", ".pytest_cache", ".ruff_cache", "__pycache__"}
_SKIP |= {"tests", "benchmarks", "terraform"}

STOCK_DAG_FILE = '''"""Benchmark only (benchmarks/arrival_latency.py writes it into a temporary
copy of the tree): the amazon provider's stock deferrable S3KeySensor, then one task that deletes
what it found."""

from datetime import datetime

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import dag, task

BUCKET = {bucket!r}


def _build(dag_id, prefix, poke):
    @dag(
        dag_id=dag_id,
        schedule="@continuous",
        max_active_runs=1,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        default_args={{"retries": 0}},
        tags=["benchmark"],
    )
    def bench():
        wait = S3KeySensor(
            task_id="wait",
            bucket_name=BUCKET,
            bucket_key=prefix + "*",
            wildcard_match=True,
            aws_conn_id="retrain_s3",
            deferrable=True,
            **({{"poke_interval": poke}} if poke is not None else {{}}),
        )

        @task
        def downstream():
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            hook = S3Hook(aws_conn_id="retrain_s3")
            keys = hook.list_keys(BUCKET, prefix=prefix)
            if keys:
                hook.delete_objects(BUCKET, keys)

        wait >> downstream()

    return bench()


for _dag_id, _prefix, _poke in {dags!r}:
    globals()[_dag_id] = _build(_dag_id, _prefix, _poke)
'''


def wait_until_quiet(bound_s: float = 1500.0) -> None:
    """Wait until no test run or `make test` is running, so the figures are not distorted."""
    deadline = time.monotonic() + bound_s
    while True:
        busy = subprocess.run(
            ["pgrep", "-f", "pytest|make test"], capture_output=True, text=True, check=False
        ).stdout.split()
        if not busy:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"other test runs still busy after {bound_s:.0f} s: pids {busy}")
        print(f"waiting for other test runs to end (pids {' '.join(busy)})")
        time.sleep(15)


def copy_tree(dest: Path, bucket: str) -> Path:
    """The project tree the stack runs from, with the stock sensor DAGs in its DAG folder."""
    shutil.copytree(
        ROOT,
        dest,
        ignore=lambda _, names: [n for n in names if n in _SKIP or n.endswith(".egg-info")],
    )
    dags = [(dag_id, prefix, poke) for dag_id, prefix, poke in STOCK.values()]
    (dest / "dags" / "bench_stock_s3.py").write_text(
        STOCK_DAG_FILE.format(bucket=bucket, dags=dags)
    )
    return dest


def patch(api, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"{api.base_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="PATCH",
    )
    for attempt in range(5):
        try:
            with urllib.request.urlopen(request, timeout=10):
                return
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")[:500]
            if exc.code < 500 or attempt == 4:
                raise RuntimeError(f"PATCH {path}: HTTP {exc.code}: {text}") from exc
            time.sleep(1 + attempt)  # a busy SQLite: try again


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def task_instances(api, dag_id: str, run_id: str) -> list[dict]:
    quoted = urllib.parse.quote(run_id, safe="")
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances"
    return api.get_json(path, limit=100)["task_instances"]


def waiting_run(api, dag_id: str, sensor: str) -> str | None:
    """The run of ``dag_id`` whose sensor is deferred in the triggerer, if there is one."""
    from retrain.airflow_api import AirflowApiError

    try:
        for run in api.dag_runs(dag_id, limit=5):
            if run.state != "running":
                continue
            states = {t["task_id"]: t["state"] for t in task_instances(api, dag_id, run.run_id)}
            if states.get(sensor) == "deferred":
                return run.run_id
    except AirflowApiError:
        return None  # a busy SQLite answered 5xx three times: ask again
    return None


def slots_held(api, dag_id: str, run_id: str) -> dict:
    """Worker slots in use while the sensor waits: the run's task instances running or
    queued, and the default pool's running and queued slots (all DAGs)."""
    tis = task_instances(api, dag_id, run_id)
    pool = api.get_json("/api/v2/pools/default_pool")
    return {
        "dag_running_tis": sum(t["state"] in ("running", "queued") for t in tis),
        "pool_running_slots": pool.get("running_slots", 0) + pool.get("queued_slots", 0),
        "pool_deferred_slots": pool.get("deferred_slots", 0),
    }


def is_task(task_id: str, name: str) -> bool:
    """``task_id`` is ``name`` or one of its numbered shares (``validate_0``, ``validate_1``)."""
    head, _, number = task_id.rpartition("_")
    return task_id == name or (head == name and number.isdigit())


def one_arrival(ctx: dict, variant: str, i: int, rng: random.Random) -> dict:
    """Drop one file for ``variant`` and time what follows; return the figures."""
    from retrain.local import devstack

    api, storage, cfg = ctx["api"], ctx["storage"], ctx["cfg"]
    if variant == "ours":
        dag_id, sensor, nxt = OURS["dag_id"], OURS["sensor"], OURS["next"]
        key = f"{cfg.storage.landing_prefix}arrival-{i:03d}.csv"
        period = cfg.orchestration.idle_poll_interval
    else:
        dag_id, prefix, poke = STOCK[variant]
        sensor, nxt = "wait", "downstream"
        key = f"{prefix}arrival-{i:03d}.csv"
        period = poke or STOCK_DEFAULT_POKE_S
    run_id = devstack.wait_for(
        lambda: waiting_run(api, dag_id, sensor), BOUND, 0.5, f"{dag_id} to wait for files"
    )
    time.sleep(4.0 + rng.uniform(0.0, period))  # a random point of the poll cycle
    held = slots_held(api, dag_id, run_id)
    storage.put_bytes(key, ctx["body"](i))
    put_at = datetime.now(UTC)
    out: dict = {"i": i, "slots": held}
    if variant == "ours":
        name = key.rsplit("/", 1)[1]

        def routed() -> bool:
            return any(
                o.key.endswith(f"/{name}") for o in storage.iter_objects(cfg.storage.raw_prefix)
            )

        devstack.wait_for(routed, BOUND, 0.2, f"{key} under raw/")
        out["routed_s"] = (datetime.now(UTC) - put_at).total_seconds()

    def finished() -> list[dict] | None:
        runs = {r.run_id: r for r in api.dag_runs(dag_id, limit=5)}
        run = runs.get(run_id)
        return task_instances(api, dag_id, run_id) if run and run.finished else None

    tis = devstack.wait_for(finished, BOUND, 0.5, f"{dag_id} run {run_id} to finish")
    wait = next(t for t in tis if t["task_id"] == sensor)
    after = min(
        (t for t in tis if is_task(t["task_id"], nxt) and t.get("start_date")),
        key=lambda t: t["start_date"],
        default=None,
    )
    if after is None:
        raise RuntimeError(f"{dag_id} run {run_id}: {nxt} never ran: {json.dumps(tis)[:2000]}")

    def since(value: str | None) -> float | None:
        when = _when(value)
        return round((when - put_at).total_seconds(), 2) if when else None

    out |= {
        "task_running_s": since(after["start_date"]),
        "event_recorded_s": since(wait.get("scheduled_when")),
        "sensor_resumed_queued_s": since(wait.get("queued_when")),
        "sensor_done_s": since(wait.get("end_date")),
        "next_queued_s": since(after.get("queued_when")),
        "sensor_tries": wait.get("try_number"),
    }
    routed_txt = f", routed {out['routed_s']:.1f}" if "routed_s" in out else ""
    print(
        f"  {variant:26} #{i:02d} -> {nxt} running {out['task_running_s']:5.1f} s"
        f"{routed_txt} (event {out['event_recorded_s']}, sensor done {out['sensor_done_s']}, "
        f"{nxt} queued {out['next_queued_s']}); slots held while waiting {held}"
    )
    return out


def one_backlog(ctx: dict, i: int) -> dict:
    """A file that lands while the previous batch is being validated, so the next run's trigger
    finds it waiting as it starts: the case the startup grace was for. Returns how long the new
    run took from its start to ``validate`` running, its sensor's tries (more than 1: the race
    the grace guards against struck) and its state."""
    from retrain.local import devstack
    from retrain.steps.ingest import batch_id_for

    api, storage, cfg = ctx["api"], ctx["storage"], ctx["cfg"]
    dag_id, sensor = OURS["dag_id"], OURS["sensor"]
    first = devstack.wait_for(
        lambda: waiting_run(api, dag_id, sensor), BOUND, 0.5, "ingest to wait for files"
    )
    storage.put_bytes(f"{cfg.storage.landing_prefix}backlog-{i:03d}-a.csv", ctx["body"](500 + i))

    def validating() -> bool:
        return any(
            is_task(t["task_id"], "validate") and t["state"] in ("running", "success")
            for t in task_instances(api, dag_id, first)
        )

    devstack.wait_for(validating, BOUND, 0.2, f"run {first} to validate")
    name = f"backlog-{i:03d}-b.csv"
    storage.put_bytes(cfg.storage.landing_prefix + name, ctx["body"](700 + i))  # waits its turn

    def routed() -> str | None:
        keys = [o.key for o in storage.iter_objects(cfg.storage.raw_prefix)]
        return next((k for k in keys if k.endswith(f"/{name}")), None)

    dest = devstack.wait_for(routed, BOUND, 0.2, f"{name} under raw/")
    batch = next(part[len("batch=") :] for part in dest.split("/") if part.startswith("batch="))

    def its_run():
        for run in api.dag_runs(dag_id, limit=10):
            if batch_id_for(run.run_id) == batch and run.finished:
                return run
        return None

    run = devstack.wait_for(its_run, BOUND, 0.5, f"the run of batch {batch} to finish")
    tis = task_instances(api, dag_id, run.run_id)
    wait = next(t for t in tis if t["task_id"] == sensor)
    validate = min(
        (t["start_date"] for t in tis if is_task(t["task_id"], "validate") and t.get("start_date")),
        default=None,
    )
    out = {
        "i": i,
        "run_state": run.state,
        "sensor_tries": wait.get("try_number"),
        "run_start_to_validate_s": round(
            (_when(validate) - _when(run.start_date)).total_seconds(), 2
        )
        if validate and run.start_date
        else None,
    }
    print(
        f"  backlog #{i:02d}: run {run.state}, sensor tries {out['sensor_tries']}, "
        f"run start -> validate running {out['run_start_to_validate_s']} s"
    )
    return out


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation, as numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo), 2)


def summarize(arrivals: list[dict], **extra) -> dict:
    running = [a["task_running_s"] for a in arrivals]
    summary = {
        "p50_s": pct(running, 0.5),
        "p95_s": pct(running, 0.95),
        "max_s": round(max(running), 2),
        "idle_worker_slots": max(a["slots"]["dag_running_tis"] for a in arrivals),
        "pool_slots_in_use_while_waiting_max": max(
            a["slots"]["pool_running_slots"] for a in arrivals
        ),
        "n": len(arrivals),
        **extra,
    }
    if all("routed_s" in a for a in arrivals):
        routed = [a["routed_s"] for a in arrivals]
        summary |= {"routed_p50_s": pct(routed, 0.5), "routed_p95_s": pct(routed, 0.95)}
    breakdown = {}
    for name in ("event_recorded_s", "sensor_done_s", "next_queued_s"):
        values = [a[name] for a in arrivals if a.get(name) is not None]
        if values:
            breakdown[name] = round(statistics.median(values), 2)
    summary["median_breakdown_s"] = breakdown
    summary["sensor_retries"] = sum(max((a.get("sensor_tries") or 1) - 1, 0) for a in arrivals)
    summary["arrivals"] = arrivals
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrivals", type=int, default=20, help="ours and the 1 s poke each")
    parser.add_argument("--default-arrivals", type=int, default=20, help="the 60 s default poke")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--no-wait", action="store_true", help="do not wait for test runs")
    parser.add_argument("--no-save", action="store_true", help="print only (a trial run)")
    parser.add_argument(
        "--backlog", type=int, default=10, help="files left waiting for the next run's trigger"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an [orchestration] key for this run (e.g. idle_poll_interval=1)",
    )
    args = parser.parse_args()
    if not args.no_wait:
        wait_until_quiet()

    from retrain.datagen import generate, write_batch
    from retrain.local import devstack

    rng = random.Random(args.seed)
    start = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=3)
    bucket = "arrival"
    results: dict[str, list[dict]] = {"ours": [], **{name: [] for name in STOCK}}
    with tempfile.TemporaryDirectory(prefix="arrival-latency-") as tmp:
        tree = copy_tree(Path(tmp) / "tree", bucket)
        root = Path(tmp) / "stack"
        overrides = {
            f"RETRAIN__ORCHESTRATION__{k.strip().upper()}": v.strip()
            for k, v in (item.split("=", 1) for item in args.set)
        }
        stack = devstack.start(
            root, bucket=bucket, code_root=tree, overrides=overrides, log=lambda *_: None
        )
        try:
            cfg, storage = stack.config(), stack.storage()
            for dag_id in PAUSED:
                patch(stack.api, f"/api/v2/dags/{dag_id}", {"is_paused": True})
            devstack.wait_for(
                lambda: {d for d, *_ in STOCK.values()} <= set(stack.api.dag_ids()),
                BOUND,
                1.0,
                "the benchmark DAGs to load",
            )
            ctx = {
                "api": stack.api,
                "storage": storage,
                "cfg": cfg,
                "body": lambda i: write_batch(
                    generate(args.rows, seed=10_000 + i, start=start), "csv"
                ),
            }
            o = cfg.orchestration
            print(
                f"ours: poll {o.poll_interval} s, idle {o.idle_poll_interval} s, settle "
                f"{o.settle_seconds} s (max {o.max_settle_seconds} s), "
                f"{args.rows:,}-row CSV per arrival"
            )
            for i in range(args.arrivals):
                results["ours"].append(one_arrival(ctx, "ours", i, rng))
                results["stock_s3keysensor"].append(one_arrival(ctx, "stock_s3keysensor", i, rng))
            for i in range(args.default_arrivals):
                results["stock_s3keysensor_default"].append(
                    one_arrival(ctx, "stock_s3keysensor_default", i, rng)
                )
            backlog = [one_backlog(ctx, i) for i in range(args.backlog)]
        finally:
            devstack.stop(root, log=lambda *_: None)

    o = cfg.orchestration
    ours = summarize(
        results["ours"],
        settings={
            "poll_interval": o.poll_interval,
            "idle_poll_interval": o.idle_poll_interval,
            "settle_seconds": o.settle_seconds,
            "max_settle_seconds": o.max_settle_seconds,
            "max_batch_files": o.max_batch_files,
        },
        next_task="validate",
    )
    if backlog:
        waits = [w for b in backlog if (w := b["run_start_to_validate_s"]) is not None]
        ours["backlog"] = {
            "n": len(backlog),
            "runs_failed": sum(b["run_state"] != "success" for b in backlog),
            "sensor_retries": sum(max((b["sensor_tries"] or 1) - 1, 0) for b in backlog),
            "run_start_to_validate_p50_s": pct(waits, 0.5) if waits else None,
            "startup_grace_s": 0.0,
            "runs": backlog,
        }
    stock = summarize(results["stock_s3keysensor"], poke_interval_s=1.0, next_task="downstream")
    default = (
        summarize(
            results["stock_s3keysensor_default"],
            poke_interval_s=STOCK_DEFAULT_POKE_S,
            next_task="downstream",
        )
        if results["stock_s3keysensor_default"]
        else None
    )
    print(
        f"\n{'PUT -> (seconds)':34} {'n':>3} {'p50':>6} {'p95':>6} {'max':>6} "
        f"{'routed p50':>11} {'slots held':>11}"
    )
    rows = [
        ("ours -> validate running", ours),
        ("stock, poke 1 s -> downstream", stock),
        ("stock, poke 60 s -> downstream", default),
    ]
    for label, s in [(label, s) for label, s in rows if s]:
        routed = f"{s['routed_p50_s']:11.1f}" if "routed_p50_s" in s else f"{'-':>11}"
        print(
            f"{label:34} {s['n']:3d} {s['p50_s']:6.1f} {s['p95_s']:6.1f} {s['max_s']:6.1f} "
            f"{routed} {s['idle_worker_slots']:11d}"
        )
    for label, s in [(r[0].split(" ->")[0], r[1]) for r in rows if r[1]]:
        print(f"  median breakdown, {label}: {s['median_breakdown_s']}")
    if backlog:
        b = ours["backlog"]
        print(
            f"  backlog (a file waiting as the next run's trigger starts), n={b['n']}: "
            f"{b['runs_failed']} failed runs, {b['sensor_retries']} sensor retries, run "
            f"start -> validate running p50 {b['run_start_to_validate_p50_s']} s"
        )
    if args.no_save:
        return
    out = save_result(
        "arrival_latency",
        {
            "ours": ours,
            "stock_s3keysensor": stock,
            "stock_s3keysensor_default_poke": default,
            "rows_per_file": args.rows,
            "targets": {"p50_s": 3.0, "p95_s": 6.0, "routed_p50_s": 6.0, "idle_worker_slots": 0},
            "machine": describe(
                "apache-airflow", "apache-airflow-providers-amazon", "aiobotocore", "moto"
            ),
        },
    )
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
