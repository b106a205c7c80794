"""Files per second through ingest: the old sequential path against the new parallel one, side by
side in one command, against the same local moto S3 server (started here, on 127.0.0.1).

- sequential (old): ``retrain.pipeline.ingest_batch`` at commit b5a1bd8, checked out with
  ``git worktree add --detach`` into a temp folder and run in a subprocess on that code, with a
  temp copy of its GX *File* Data Context. One process validates the files one after another
  (a checkpoint with UpdateDataDocsAction per file), routes them, then uploads the Data Docs.
- parallel (new): what the ingest DAG does with ``[ingest] validate_tasks = 2``:
  ``validate_files`` on each of ``plan_chunks(files, 2)`` in 2 worker processes at once (spawned,
  like two mapped Airflow tasks), then ``route_batch`` on all verdicts in this process.
- new-1-process: the current ``ingest_batch`` in one worker process (its two steps,
  ``validate_files`` then ``route_batch``, called in turn so that each is timed), which separates
  the gain from the in-memory GX context from the gain from parallelism.

The new code is this checkout's src/, validation/ and retrain.toml as they are when the run
starts, copied to a temp folder and put first on ``sys.path``, so that edits made during a long
run do not leak into its later measurements. Every process is warmed before its clock starts:
imports done, GX context built (for the old path: the File Data Context opened and checked
against the config). Interpreter start, imports and that warm-up are excluded; everything inside
the ingest call is included (for the old path also the Data Docs build and upload; for the
parallel path the hand-over of the verdicts and the routing). Data comes from
``retrain.datagen.generate`` (a distinct seed per file, so ids are unique), is uploaded to
landing/ of a fresh bucket before the clock starts, and each measurement gets its own bucket.
Every file must end in raw/, or the run fails.

Prints a table and saves benchmarks/results/ingest_throughput.json, with the peak RSS (VmHWM)
of the largest validate worker per case. ``--repeat N`` measures each path N times (interleaved,
so load from other processes hits all alike) and keeps the medians; the 1-minute load average
before and after goes into the "machine" block, since a busy 2-core box slows the parallel path
most. The full run takes about 10 minutes per repeat on 2 cores, half of it the old path.

    .venv/bin/python benchmarks/ingest_throughput.py            # 200 x 200 rows, 20 x 100k rows
    .venv/bin/python benchmarks/ingest_throughput.py --quick    # 40 x 200, 4 x 20k; saves nothing
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrain.config import Config
    from retrain.storage import S3Storage

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "b5a1bd8"
START = datetime(2026, 1, 1)
FULL_CASES = ((200, 200), (20, 100_000))
QUICK_CASES = ((40, 200), (4, 20_000))
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

# Runs in a fresh interpreter on the old checkout; parameters as JSON on stdin, JSON on stdout.
OLD_RUNNER = """
import json, sys, time
from dataclasses import replace

p = json.loads(sys.stdin.read())
import great_expectations  # noqa
from retrain import pipeline
from retrain.config import load_config
from retrain.storage import S3Storage
from validation import gates

assert pipeline.__file__.startswith(p["worktree"]), pipeline.__file__
cfg = load_config(p["config"], env={})
cfg = replace(cfg, storage=replace(cfg.storage, bucket=p["bucket"], endpoint_url=p["endpoint"]))
storage = S3Storage.from_config(cfg.storage, **p["credentials"])
t = time.perf_counter()
gates._context(cfg, gates.context_root(None))  # open the File Data Context once per process
warm = time.perf_counter() - t
t = time.perf_counter()
result = pipeline.ingest_batch(storage, cfg, p["files"], batch_id=p["batch_id"])
elapsed = time.perf_counter() - t
valid = len(result.raw_keys)
reasons = [o.reason for o in result.quarantined][:3]
print(json.dumps({"seconds": elapsed, "warm_s": warm, "valid": valid, "reasons": reasons}))
"""


@dataclass(frozen=True)
class Timing:
    seconds: float
    warm_s: float  # the slowest process's warm-up (not in ``seconds``)
    peak_rss_mb: float = 0.0  # the largest VmHWM among the worker processes
    validate_s: float | None = None  # until the last verdict is in (parallel: the slowest chunk)
    route_s: float | None = None

    def parts(self) -> str:
        if self.validate_s is None or self.route_s is None:
            return ""
        return f"validate {self.validate_s:.2f} s + route {self.route_s:.2f} s, "


# -- S3 ----------------------------------------------------------------------------------------


def fresh_storage(endpoint: str, cfg: Config) -> tuple[S3Storage, Config]:
    """A new bucket on the server, and ``cfg`` pointing at it."""
    from retrain.storage import S3Storage

    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    storage_cfg = replace(cfg.storage, bucket=bucket, endpoint_url=endpoint)
    storage = S3Storage.from_config(storage_cfg, **CREDENTIALS)
    storage.ensure_bucket()
    return storage, replace(cfg, storage=storage_cfg)


def land(storage: S3Storage, cfg: Config, blobs: list[bytes]) -> list[dict[str, Any]]:
    """Upload every file to landing/ and return them as the landing trigger lists them."""
    from retrain.steps.ingest import landed_files

    for i, data in enumerate(blobs):
        storage.put_bytes(f"{cfg.storage.landing_prefix}f{i:04d}.csv", data)
    files = landed_files(storage, cfg)
    assert len(files) == len(blobs), f"{len(files)} of {len(blobs)} files listed"
    return files


def drop_bucket(storage: S3Storage) -> None:
    """Empty and delete a bucket (after its measurement), so the server's memory stays flat."""
    keys = [o.key for o in storage.iter_objects("")]
    for i in range(0, len(keys), 1000):
        objects = [{"Key": k} for k in keys[i : i + 1000]]
        storage.client.delete_objects(Bucket=storage.bucket, Delete={"Objects": objects})
    storage.client.delete_bucket(Bucket=storage.bucket)


# -- new path ----------------------------------------------------------------------------------


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(conn: Connection, op: str, cfg: Config) -> None:
    """One warmed worker: build the GX context, say ready, run one chunk, send back the result."""
    start = time.perf_counter()
    from retrain.steps import ingest
    from retrain.steps.ingest import route_batch
    from retrain.steps.validate import validate_files
    from retrain.storage import S3Storage
    from validation.context import get_grouped_raw_gate

    get_grouped_raw_gate(cfg)  # the same cfg as validate_raw_file gets: its cache key
    storage = S3Storage.from_config(cfg.storage, **CREDENTIALS)
    conn.send((time.perf_counter() - start, ingest.__file__))
    files, batch_id = conn.recv()
    start = time.perf_counter()
    verdicts = validate_files(storage, cfg, files, batch_id=batch_id)
    validated = time.perf_counter()
    out: Any = verdicts
    if op == "ingest":  # ingest_batch's body, timed in its two parts
        out = route_batch(storage, cfg, verdicts, batch_id=batch_id)
    routed = time.perf_counter()
    conn.send((out, validated - start, routed - validated, _vm_hwm_mb()))
    # Exit only when told: an interpreter tearing down GX takes CPU that, on a small machine,
    # would be taken from the routing that follows (in the DAG, routing starts after the
    # mapped tasks have ended).
    with contextlib.suppress(EOFError):
        conn.recv()
    conn.close()


@contextlib.contextmanager
def workers(op: str, cfg: Config, count: int) -> Iterator[tuple[list[Connection], float]]:
    """``count`` spawned worker processes, each warmed; yields their pipes and the warm-up."""
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for _ in range(count):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, op, cfg), daemon=True)
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    try:
        ready = [p.recv() for p in pipes]
        for _, module in ready:
            assert module.startswith(sys.path[0]), f"worker runs {module}, not the snapshot"
        warm = max(seconds for seconds, _ in ready)
        yield pipes, warm
    finally:
        for pipe in pipes:
            pipe.close()  # the worker's recv() ends: it exits
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()


def run_parallel(endpoint: str, cfg: Config, blobs: list[bytes], tasks: int) -> Timing:
    from retrain.batching import plan_chunks
    from retrain.steps.ingest import route_batch

    storage, cfg = fresh_storage(endpoint, cfg)
    files = land(storage, cfg, blobs)
    chunks = plan_chunks(files, tasks)
    with workers("validate", cfg, len(chunks)) as (pipes, warm):
        start = time.perf_counter()
        for pipe, chunk in zip(pipes, chunks, strict=True):
            pipe.send((chunk, "bench-parallel"))
        results = [pipe.recv() for pipe in pipes]
        verdicts = [v for out, *_ in results for v in out]
        validated = time.perf_counter()
        routed = route_batch(storage, cfg, verdicts, batch_id="bench-parallel")
        end = time.perf_counter()
    check(len(routed.raw_keys), len(blobs), [o.reason for o in routed.quarantined])
    drop_bucket(storage)
    rss = max(r[3] for r in results)
    return Timing(end - start, warm, rss, validated - start, end - validated)


def run_one_process(endpoint: str, cfg: Config, blobs: list[bytes]) -> Timing:
    storage, cfg = fresh_storage(endpoint, cfg)
    files = land(storage, cfg, blobs)
    with workers("ingest", cfg, 1) as ((pipe,), warm):
        start = time.perf_counter()
        pipe.send((files, "bench-1proc"))
        routed, validate_s, route_s, rss = pipe.recv()
        seconds = time.perf_counter() - start
    check(len(routed.raw_keys), len(blobs), [o.reason for o in routed.quarantined])
    drop_bucket(storage)
    return Timing(seconds, warm, rss, validate_s, route_s)


def warm_parent(endpoint: str, cfg: Config) -> float:
    """One tiny ingest here first: route_batch's lazy imports (Parquet for the id ledger) are
    then loaded in this process before the parallel path's routing is timed."""
    from retrain.steps.ingest import ingest_batch

    start = time.perf_counter()
    storage, cfg = fresh_storage(endpoint, cfg)
    files = land(storage, cfg, make_blobs(1, 100, seed0=1))
    check(len(ingest_batch(storage, cfg, files, batch_id="warm-up").raw_keys), 1, [])
    drop_bucket(storage)
    return time.perf_counter() - start


# -- old path ----------------------------------------------------------------------------------


@contextlib.contextmanager
def old_checkout() -> Iterator[Path]:
    """The code at OLD_COMMIT in a detached worktree under /tmp, removed afterwards."""
    tree = Path(tempfile.mkdtemp(prefix="ingest-bench-old-"))
    git = ["git", "-C", str(ROOT), "worktree"]
    add = [*git, "add", "--detach", str(tree), OLD_COMMIT]
    subprocess.run(add, check=True, capture_output=True)
    try:
        yield tree
    finally:
        subprocess.run([*git, "remove", "--force", str(tree)], check=False, capture_output=True)
        shutil.rmtree(tree, ignore_errors=True)


def run_sequential(endpoint: str, cfg: Config, blobs: list[bytes], tree: Path) -> Timing:
    storage, cfg = fresh_storage(endpoint, cfg)
    files = land(storage, cfg, blobs)
    with tempfile.TemporaryDirectory(prefix="ingest-bench-gx-") as gx_root:
        shutil.copytree(
            tree / "validation" / "gx",
            Path(gx_root) / "gx",
            ignore=shutil.ignore_patterns("uncommitted"),
        )
        params = {
            "worktree": str(tree),
            "config": str(tree / "retrain.toml"),
            "bucket": storage.bucket,
            "endpoint": endpoint,
            "credentials": CREDENTIALS,
            "files": [{"key": f["key"]} for f in files],
            "batch_id": "bench-sequential",
        }
        env = {
            **os.environ,
            "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}",
            "RETRAIN_GX_ROOT": gx_root,
        }
        proc = subprocess.run(
            [sys.executable, "-c", OLD_RUNNER],
            input=json.dumps(params),
            capture_output=True,
            text=True,
            cwd=tree,
            env=env,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"old ingest failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    check(out["valid"], len(blobs), out["reasons"])
    drop_bucket(storage)
    return Timing(out["seconds"], out["warm_s"])


@contextlib.contextmanager
def new_code_snapshot() -> Iterator[Path]:
    """This checkout's code and config as they are now, copied, and first on ``sys.path`` (the
    spawned workers inherit it): edits made in the checkout during a long run do not leak into
    later measurements, and a reinstall of the package does not break a worker's imports."""
    with tempfile.TemporaryDirectory(prefix="ingest-bench-new-") as tmp:
        snap = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "uncommitted")
        shutil.copytree(ROOT / "src", snap / "src", ignore=ignore)
        shutil.copytree(ROOT / "validation", snap / "validation", ignore=ignore)
        shutil.copy2(ROOT / "retrain.toml", snap / "retrain.toml")
        sys.path[:0] = [str(snap / "src"), str(snap)]
        try:
            yield snap
        finally:
            del sys.path[:2]


# -- main --------------------------------------------------------------------------------------


def check(valid: int, expected: int, reasons: list[str]) -> None:
    if valid != expected:
        raise RuntimeError(f"{valid} of {expected} files reached raw/; e.g. {reasons[:3]}")


def make_blobs(files: int, rows: int, seed0: int) -> list[bytes]:
    from retrain.datagen import generate, write_batch

    return [write_batch(generate(rows, seed=seed0 + i, start=START), "csv") for i in range(files)]


def describe_checkout() -> str:
    """HEAD of this checkout, and which code files differ from it (the new path runs them)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(
        [*git, "status", "--porcelain", "--", "src", "validation"], capture_output=True, text=True
    )
    changed = [line[3:] for line in status.stdout.splitlines()]
    return f"{head.stdout.strip()}" + (f" + uncommitted {', '.join(changed)}" if changed else "")


def machine(load_before: float, repeat: int) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        # 1-minute load average before and after: a busy machine (other stacks, test runs)
        # slows every path, and the parallel one most (it needs the idle cores).
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "repeat": repeat,  # measurements per path and case; the runs hold their medians
    }


def measure(
    endpoint: str, cfg: Config, tree: Path, blobs: list[bytes], rows: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One case: the three paths in turn, ``--repeat`` times (so noise hits all alike)."""
    seq, par, one = [], [], []
    for _ in range(args.repeat):
        seq.append(run_sequential(endpoint, cfg, blobs, tree))
        print(f"  sequential (old):   {seq[-1].seconds:8.2f} s  (warm-up {seq[-1].warm_s:.1f} s)")
        par.append(run_parallel(endpoint, cfg, blobs, args.tasks))
        t = par[-1]
        print(
            f"  parallel ({args.tasks} procs): {t.seconds:8.2f} s  ({t.parts()}warm-up "
            f"{t.warm_s:.1f} s, peak RSS {t.peak_rss_mb:.0f} MB per worker)"
        )
        one.append(run_one_process(endpoint, cfg, blobs))
        t = one[-1]
        print(
            f"  new, 1 process:     {t.seconds:8.2f} s  ({t.parts()}warm-up "
            f"{t.warm_s:.1f} s, peak RSS {t.peak_rss_mb:.0f} MB)",
            flush=True,
        )
    seq_s, par_s, one_s = (statistics.median(t.seconds for t in ts) for ts in (seq, par, one))
    files = len(blobs)
    return {
        "files": files,
        "rows_per_file": rows,
        "sequential_s": round(seq_s, 3),
        "parallel_s": round(par_s, 3),
        "parallel_1proc_s": round(one_s, 3),
        "speedup": round(seq_s / par_s, 2),
        "sequential_files_per_s": round(files / seq_s, 3),
        "parallel_files_per_s": round(files / par_s, 3),
        "parallel_peak_rss_mb": round(max(t.peak_rss_mb for t in par), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 x 200 rows and 4 x 20k rows")
    parser.add_argument("--tasks", type=int, default=2, help="parallel validate workers")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measurements per path and case (median kept)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON result path (default: benchmarks/results/ingest_throughput.json; "
        "--quick saves only with --out)",
    )
    args = parser.parse_args()
    out = args.out or (None if args.quick else ROOT / "benchmarks/results/ingest_throughput.json")
    cases = QUICK_CASES if args.quick else FULL_CASES

    began, load_before = time.perf_counter(), os.getloadavg()[0]
    checkout = describe_checkout()
    runs = []
    with contextlib.ExitStack() as stack:
        snap = stack.enter_context(new_code_snapshot())
        from retrain.config import load_config
        from retrain.local.s3server import start_s3_server
        from retrain.steps import ingest  # imported before any clock starts

        assert ingest.__file__.startswith(str(snap)), ingest.__file__
        cfg = load_config(snap / "retrain.toml", env={})
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ingest-bench-"))
        server = stack.enter_context(start_s3_server(log_path=Path(tmp) / "moto.log"))
        tree = stack.enter_context(old_checkout())
        print(f"moto on {server.endpoint_url}; old code ({OLD_COMMIT}) in {tree}")
        print(f"new code: {checkout}, run from a copy in {snap}", flush=True)
        warm = warm_parent(server.endpoint_url, cfg)
        print(f"warm-up of this process (it routes the parallel path): {warm:.1f} s", flush=True)
        for n, (files, rows) in enumerate(cases):
            blobs = make_blobs(files, rows, seed0=(n + 1) * 10_000)
            mb = sum(map(len, blobs)) / 1e6
            print(f"\n{files} files x {rows} rows ({mb:.1f} MB of CSV)", flush=True)
            runs.append(measure(server.endpoint_url, cfg, tree, blobs, rows, args))
    print(f"\ntotal {time.perf_counter() - began:.0f} s\n")
    header = (
        f"{'files':>5} {'rows/file':>9} {'sequential s':>12} {'parallel s':>10} "
        f"{'new-1-proc s':>12} {'speedup':>7} {'files/s seq -> par':>18}"
    )
    print(header)
    for r in runs:
        rate = f"{r['sequential_files_per_s']:.2f} -> {r['parallel_files_per_s']:.2f}"
        print(
            f"{r['files']:5d} {r['rows_per_file']:9d} {r['sequential_s']:12.2f} "
            f"{r['parallel_s']:10.2f} {r['parallel_1proc_s']:12.2f} {r['speedup']:6.1f}x "
            f"{rate:>18}"
        )
    if out is not None:
        out.write_text(
            json.dumps({"runs": runs, "machine": machine(load_before, args.repeat)}, indent=2)
            + "\n"
        )
        print(f"saved {out}")


if __name__ == "__main__":
    main()
