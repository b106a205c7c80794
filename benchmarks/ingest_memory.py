"""Peak RSS and wall time of ingest's two steps, each in a process of its own, by file size.

Issue 21, item 1 ("validate and route in bounded memory at any file size"): one landed file of
20 columns (``retrain.datagen.generate`` plus 9 numeric columns, as benchmarks/training.py) at
each size of ``--sizes`` (1M, 5M, 20M rows) in each format of ``--formats`` (CSV, Parquet). For
each, against a local moto S3 server (started here, on 127.0.0.1) and a fresh bucket:

- the file is uploaded to landing/ (streamed from disk; it was generated once, in chunks of 1M
  rows, by a subprocess, into a cache under /tmp that later runs reuse: ``--cache``);
- validate: a fresh process lists landing/ (``retrain.steps.ingest.landed_files``) and calls
  ``retrain.steps.validate.validate_files`` on it, as the DAG's validate task does; the verdicts
  go to a temporary JSON file (the task's XCom);
- route: a fresh process reads those verdicts and calls ``retrain.steps.ingest.route_batch``.

Each process imports what its task imports (validate: also GX, ``validation.gates`` and
``validation.grouped``, which ``validate_files`` imports on its first file) before the clock
starts; ``s`` is the step call alone, ``peak`` the process's VmHWM (read by the process itself
at its end: unlike ``ru_maxrss`` it does not start at the parent's RSS), ``imported`` its RSS
before the step. No preloading (a KubernetesExecutor pod starts cold) and glibc's malloc as
deployed (no ``MALLOC_ARENA_MAX``). Airflow's own task runner, which shares a
real task's pod, is not in these figures.

The targets of issue 21 are printed as pass/fail columns:

- every ingest task's peak within its pod: route and ``validate_N`` are light tasks
  (``[resources] task_memory_mb``, 512 MiB); a file of ``large_file_mb`` (256 MiB) or more is
  validated by ``validate_large``, a heavy task (``task_memory_mb + [training] memory_budget_mb``,
  1536 MiB). The limits are read from the checkout's retrain.toml;
- growth of each task's peak from the smallest to the largest size (1M to 20M) under 1.5x;
- wall time within 1.5x of today's: with ``--against REV``, every file also runs through the
  code of git revision REV (exported with ``git archive`` into a temporary folder; its src/ and
  validation/ come first on the child's ``PYTHONPATH``), right after the checkout's, and the
  checkout's time is divided by REV's. Run the new implementation's checkout with
  ``--against`` today's commit to compare them side by side.

Saves benchmarks/results/<--out>.json (``ingest_memory``) after every file. On a shared machine,
``--wait-for-idle SECONDS`` waits before each file while a pytest run is going on; each task
records whether one was running (``busy``).

    .venv/bin/python benchmarks/ingest_memory.py [--sizes 1000000,5000000,20000000]
        [--formats csv,parquet] [--against REV] [--out ingest_memory] [--cache DIR]

About 25 minutes on 2 cores at the default sizes (once the files are cached; generating them
takes another 5), 6 GB of disk for the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe, export, save_result  # noqa: E402
from training import week_frame, with_extra_columns  # noqa: E402

GENERATOR = "v1"  # bump when the generated files change: the cache keeps files per version
CHUNK_ROWS = 1_000_000  # rows generated and written at a time
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "ingest-memory-cache"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
BUSY = "pytest|make test"
BATCH_ID = "bench"
GROWTH_MAX = 1.5
WALL_MAX = 1.5


# -- the dataset: retrain.toml's columns plus EXTRA (as benchmarks/training.py) ----------------


def bench_config(code_root: Path, endpoint: str = "", bucket: str = ""):
    """``code_root``'s retrain.toml with the extra numeric columns, pointed at ``bucket``."""
    from retrain.config import load_config

    cfg = with_extra_columns(load_config(code_root / "retrain.toml", env={}))
    if bucket:
        cfg = replace(cfg, storage=replace(cfg.storage, bucket=bucket, endpoint_url=endpoint))
    return cfg


def generate_file(rows: int, fmt: str, path: Path) -> None:
    """In a subprocess: the file as a user would upload it (``datagen.write_batch``'s format),
    written chunk by chunk (a Parquet row group per chunk), never whole in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as text:
            for number, first in enumerate(range(0, rows, CHUNK_ROWS)):
                df = week_frame(number, min(CHUNK_ROWS, rows - first))
                df.to_csv(text, header=number == 0, index=False, date_format="%Y-%m-%dT%H:%M:%S")
        return
    writer, schema = None, None
    for number, first in enumerate(range(0, rows, CHUNK_ROWS)):
        df = week_frame(number, min(CHUNK_ROWS, rows - first))
        table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
        if writer is None:
            schema = table.schema
            writer = pq.ParquetWriter(path, schema)
        writer.write_table(table)
        del df, table
    assert writer is not None
    writer.close()


def cached_file(cache: Path, rows: int, fmt: str) -> Path:
    path = cache / GENERATOR / f"rows-{rows}.{fmt}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        started = time.perf_counter()
        command = [sys.executable, __file__, "--generate", str(rows), fmt, str(partial)]
        subprocess.run(command, check=True, cwd=ROOT)
        partial.rename(path)
        print(f"  generated {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


# -- the tasks, each in its own process -------------------------------------------------------


def _status_mb() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(status[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


def run_task(task: str, code_root: Path, endpoint: str, bucket: str, verdicts: Path) -> dict:
    """In the subprocess: one step, as its task runs it; the figures as one JSON line."""
    import retrain
    from retrain.storage import S3Storage

    if task == "validate":
        import great_expectations  # noqa: F401  (what validate_files imports, GX the slowest)

        from retrain.steps.ingest import landed_files
        from retrain.steps.validate import validate_files
        from validation import gates, grouped  # noqa: F401

        if (code_root / "validation" / "chunked.py").exists():  # not in older revisions
            import validation.chunked  # noqa: F401
    else:
        from retrain.steps.ingest import route_batch

    cfg = bench_config(code_root, endpoint, bucket)
    storage = S3Storage.from_config(cfg.storage, **CREDENTIALS)
    imported = _status_mb()["VmRSS"]
    out: dict[str, Any] = {}
    if task == "validate":
        files = landed_files(storage, cfg)  # what the trigger hands the task (a list of dicts)
        start = time.perf_counter()
        found = validate_files(storage, cfg, files, batch_id=BATCH_ID)
        seconds = time.perf_counter() - start
        verdicts.write_text(json.dumps([v.as_dict() for v in found], default=str))
        out["fates"] = [v.fate for v in found]
        out["rows"] = [v.rows for v in found]
        out["reasons"] = [v.reason[:200] for v in found]
    else:
        given = json.loads(verdicts.read_text())
        start = time.perf_counter()
        result = route_batch(storage, cfg, given, batch_id=BATCH_ID)
        seconds = time.perf_counter() - start
        out["raw_keys"] = list(result.raw_keys)
        out["quarantined"] = [o.reason[:200] for o in result.quarantined]
    status = _status_mb()
    return {
        "seconds": round(seconds, 2),
        "peak_mb": round(status["VmHWM"]),
        "imported_mb": round(imported),
        "end_mb": round(status["VmRSS"]),
        "code": str(Path(retrain.__file__).resolve().parents[2]),
        **out,
    }


def busy() -> bool:
    return subprocess.run(["pgrep", "-f", BUSY], capture_output=True).returncode == 0


def child(task: str, code_root: Path, endpoint: str, bucket: str, verdicts: Path) -> dict:
    """Run one task in a fresh process running ``code_root``'s code; its figures."""
    command = [sys.executable, __file__, "--task", task, "--code-root", str(code_root)]
    command += ["--endpoint", endpoint, "--bucket", bucket, "--verdicts", str(verdicts)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(code_root / "src"), str(code_root), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    was_busy = busy()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as stdout:
        proc = subprocess.Popen(command, stdout=stdout, stderr=err, cwd=code_root, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        err.seek(0)
        text, errors = stdout.read().decode(), err.read().decode()
    if code != 0:
        raise RuntimeError(f"{task} ({code_root}) exited with {code}:\n{errors[-4000:]}")
    got = json.loads(text.strip().splitlines()[-1])
    if Path(got.pop("code")) != code_root.resolve():
        raise RuntimeError(f"{task} imported retrain from outside {code_root}")
    return got | {
        "process_s": round(time.perf_counter() - started, 1),
        "ru_maxrss_mb": round(usage.ru_maxrss / 1024),  # starts at this driver's RSS (exec)
        "busy": was_busy or busy(),
    }


# -- one file through both steps ----------------------------------------------------------------


def one_file(endpoint: str, code_root: Path, path: Path, rows: int, fmt: str, tmp: Path) -> dict:
    """Upload ``path`` to a fresh bucket's landing/, validate, route; the bucket is dropped."""
    from retrain.storage import S3Storage

    limits = pod_limits()
    cfg = bench_config(ROOT, endpoint, f"ingest-mem-{uuid.uuid4().hex[:12]}")
    storage = S3Storage.from_config(cfg.storage, **CREDENTIALS)
    storage.ensure_bucket()
    try:
        started = time.perf_counter()
        storage.upload(f"{cfg.storage.landing_prefix}bench-{rows}.{fmt}", path)
        upload_s = time.perf_counter() - started
        verdicts = tmp / f"verdicts-{uuid.uuid4().hex[:8]}.json"
        validate = child("validate", code_root, endpoint, cfg.storage.bucket, verdicts)
        if validate["fates"] != ["accept"]:
            raise RuntimeError(f"{rows} rows of {fmt}: not accepted: {validate['reasons']}")
        route = child("route", code_root, endpoint, cfg.storage.bucket, verdicts)
        if len(route["raw_keys"]) != 1:
            raise RuntimeError(f"{rows} rows of {fmt}: not routed to raw/: {route['quarantined']}")
        verdicts.unlink()
    finally:
        drop_bucket(storage)
    size = path.stat().st_size
    large = size >= limits["large_file_bytes"]
    validate["task"] = "validate_large" if large else "validate_N"
    validate["limit_mb"] = limits["heavy_mb"] if large else limits["light_mb"]
    route["task"] = "route"
    route["limit_mb"] = limits["light_mb"]
    for got in (validate, route):
        got["fits"] = got["peak_mb"] <= got["limit_mb"]
    return {
        "format": fmt,
        "rows": rows,
        "columns": len(cfg.dataset.columns),
        "file_mb": round(size / 2**20, 1),
        "upload_s": round(upload_s, 1),
        "validate": validate,
        "route": route,
    }


def drop_bucket(storage) -> None:
    """Empty and delete the bucket (the moto server keeps every object until then)."""
    try:
        for o in list(storage.iter_objects("")):
            storage.delete(o.key)
        storage.client.delete_bucket(Bucket=storage.bucket)
    except Exception as exc:  # a leftover bucket only costs the server's disk
        print(f"  (could not drop {storage.bucket}: {exc})", flush=True)


def pod_limits() -> dict[str, int]:
    cfg = bench_config(ROOT)
    light = cfg.resources.task_memory_mb
    return {
        "light_mb": light,
        "heavy_mb": light + cfg.training.memory_budget_mb,
        "large_file_bytes": cfg.resources.large_file_mb * 2**20,
    }


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    ).stdout.strip()


def wait_for_idle(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and busy():
        time.sleep(10)


# -- the tables ------------------------------------------------------------------------------

HEADER = (
    f"{'code':>10} {'format':>7} {'rows':>11} {'file MiB':>9} {'task':>15} {'s':>8} "
    f"{'peak MiB':>9} {'imported':>9} {'pod MiB':>8} {'fits':>5} {'busy':>5}"
)


def task_line(code: str, run: dict, step: str) -> str:
    t = run[step]
    return (
        f"{code:>10} {run['format']:>7} {run['rows']:11,d} {run['file_mb']:9.1f} "
        f"{t['task']:>15} {t['seconds']:8.2f} {t['peak_mb']:9d} {t['imported_mb']:9d} "
        f"{t['limit_mb']:8d} {'yes' if t['fits'] else 'NO':>5} {'yes' if t['busy'] else '':>5}"
    )


def checks(runs: list[dict], against: str | None) -> dict[str, list[dict]]:
    """The targets: growth of each task's peak (smallest -> largest size) and, with
    ``--against``, the checkout's wall time over REV's."""
    growth, wall = [], []
    for code in dict.fromkeys(r["code"] for r in runs):
        for fmt in dict.fromkeys(r["format"] for r in runs):
            mine = sorted(
                (r for r in runs if r["code"] == code and r["format"] == fmt),
                key=lambda r: r["rows"],
            )
            if len(mine) < 2:
                continue
            low, high = mine[0], mine[-1]
            for step in ("validate", "route"):
                x = high[step]["peak_mb"] / low[step]["peak_mb"]
                growth.append(
                    {
                        "code": code,
                        "format": fmt,
                        "task": step,
                        "from_rows": low["rows"],
                        "to_rows": high["rows"],
                        "from_mb": low[step]["peak_mb"],
                        "to_mb": high[step]["peak_mb"],
                        "x": round(x, 2),
                        "ok": x < GROWTH_MAX,
                    }
                )
    if against:
        theirs = {(r["format"], r["rows"]): r for r in runs if r["code"] == against}
        for r in runs:
            other = theirs.get((r["format"], r["rows"]))
            if r["code"] != "checkout" or other is None:
                continue
            for step in ("validate", "route"):
                x = r[step]["seconds"] / max(other[step]["seconds"], 0.01)
                wall.append(
                    {
                        "format": r["format"],
                        "rows": r["rows"],
                        "task": step,
                        "checkout_s": r[step]["seconds"],
                        "against_s": other[step]["seconds"],
                        "x": round(x, 2),
                        "ok": x <= WALL_MAX,
                    }
                )
    return {"growth": growth, "wall": wall}


def print_checks(found: dict[str, list[dict]], runs: list[dict], against: str | None) -> None:
    print(
        f"\ntargets (issue 21): every task's peak within its pod; growth under {GROWTH_MAX}x; "
        f"wall time within {WALL_MAX}x of today's"
    )
    over = [(r, r[s]) for r in runs for s in ("validate", "route") if not r[s]["fits"]]
    print(f"  peak within the pod: {len(runs) * 2 - len(over)} of {len(runs) * 2} tasks fit")
    for r, t in over:
        print(
            f"    OVER: {r['code']} {r['format']} {r['rows']:,} rows {t['task']}: "
            f"{t['peak_mb']} MiB > {t['limit_mb']}"
        )
    print(f"  {'code':>10} {'format':>7} {'task':>9} {'peak growth':>28} {'x':>6} {'ok':>5}")
    for g in found["growth"]:
        span = f"{g['from_rows']:,} -> {g['to_rows']:,}: {g['from_mb']} -> {g['to_mb']}"
        print(
            f"  {g['code']:>10} {g['format']:>7} {g['task']:>9} {span:>28} {g['x']:6.2f} "
            f"{'yes' if g['ok'] else 'NO':>5}"
        )
    if not found["growth"]:
        print("  (growth: one size only)")
    if not against:
        print("  wall time vs today's: run with --against REV (today's commit) to compare")
        return
    print(
        f"  {'format':>7} {'rows':>11} {'task':>9} {'checkout s':>11} {against[:10]:>10} "
        f"{'x':>6} {'ok':>5}"
    )
    for w in found["wall"]:
        print(
            f"  {w['format']:>7} {w['rows']:11,d} {w['task']:>9} {w['checkout_s']:11.2f} "
            f"{w['against_s']:10.2f} {w['x']:6.2f} {'yes' if w['ok'] else 'NO':>5}"
        )


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,5000000,20000000", help="rows, comma-separated")
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--against", metavar="REV", help="also run git revision REV's code")
    parser.add_argument("--out", default="ingest_memory", help="benchmarks/results/<out>.json")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="generated files")
    parser.add_argument("--wait-for-idle", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--generate", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=["validate", "route"], help=argparse.SUPPRESS)
    parser.add_argument("--code-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--verdicts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        rows, fmt, target = args.generate
        generate_file(int(rows), fmt, Path(target))
        return
    if args.task:
        got = run_task(args.task, args.code_root, args.endpoint, args.bucket, args.verdicts)
        print(json.dumps(got))
        return

    from retrain.local.s3server import start_s3_server

    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(",") if s)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    limits = pod_limits()
    head = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    machine = describe(
        "pandas",
        "pyarrow",
        "great_expectations",
        "boto3",
        "moto",
        commit=head + ("+uncommitted changes" if dirty else ""),
    )
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ingest-memory-") as tmp_name:
        tmp = Path(tmp_name)
        codes = [("checkout", ROOT)]
        if args.against:
            rev = git("rev-parse", "--short", args.against) or args.against
            codes.append((args.against, export(args.against, tmp / "against")))
            machine["against"] = rev
        with start_s3_server(log_path=tmp / "moto.log") as server:
            print(
                f"moto on {server.endpoint_url}; files cached in {args.cache / GENERATOR}; "
                f"pods: light {limits['light_mb']} MiB, heavy {limits['heavy_mb']} MiB "
                f"(validate_large from {limits['large_file_bytes'] >> 20} MiB)",
                flush=True,
            )
            print(HEADER, flush=True)
            for rows in sizes:
                for fmt in formats:
                    path = cached_file(args.cache, rows, fmt)
                    for code, code_root in codes:
                        wait_for_idle(args.wait_for_idle)
                        run = {
                            "code": code,
                            **one_file(server.endpoint_url, code_root, path, rows, fmt, tmp),
                        }
                        runs.append(run)
                        for step in ("validate", "route"):
                            print(task_line(code, run, step), flush=True)
                        save(args, sizes, formats, limits, runs, machine, complete=False)
    print_checks(checks(runs, args.against), runs, args.against)
    print(f"saved {save(args, sizes, formats, limits, runs, machine).relative_to(ROOT)}")


def save(args, sizes, formats, limits, runs, machine, *, complete: bool = True) -> Path:
    """The JSON, also after every file (``complete`` false until the last one)."""
    result = {
        "sizes": sizes,
        "formats": formats,
        "complete": complete,
        "targets": {
            "light_pod_mb": limits["light_mb"],
            "heavy_pod_mb": limits["heavy_mb"],
            "large_file_mb": limits["large_file_bytes"] >> 20,
            "growth_max_x": GROWTH_MAX,
            "wall_max_x": WALL_MAX,
        },
        "runs": runs,
        "checks": checks(runs, args.against),
        "machine": machine,
    }
    return save_result(args.out, result)


if __name__ == "__main__":
    main()
