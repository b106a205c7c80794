"""Time and peak memory of ingest's validate step on hostile files, beside a normal file of the
same row count (issue 21: "hostile content costs what a normal file costs").

Each case is validated through ``retrain.steps.validate.validate_files`` against a local moto S3
server (started here, on 127.0.0.1), in a fresh process of its own (spawned, like a task), so
its peak RSS (VmHWM) is its own. The process imports everything and warms GX up on a small file
first; the clock covers ``validate_files`` only (read, scan, parse, gate, results written).
The cases are built by :mod:`hostile_corpus` (the same builders as the tests). Prints a table
and saves benchmarks/results/hostile_files.json.

    .venv/bin/python benchmarks/hostile_files.py [--rows 100]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from machine import describe, save_result  # benchmarks/ is on sys.path: the scripts run there

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "validation"))
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _worker(conn: Connection, endpoint: str, case: str, rows: int) -> None:
    """One case in this process: warm up, land the file, validate it, send the figures."""
    import hostile_corpus

    from retrain.config import load_config
    from retrain.steps.ingest import landed_files
    from retrain.steps.validate import validate_files
    from retrain.storage import S3Storage
    from validation.gates import validate_raw_file

    cfg = load_config(ROOT / "retrain.toml", env={})
    bucket = f"hostile-{uuid.uuid4().hex[:12]}"
    cfg = replace(cfg, storage=replace(cfg.storage, bucket=bucket, endpoint_url=endpoint))
    storage = S3Storage.from_config(cfg.storage, **CREDENTIALS)
    storage.ensure_bucket()
    validate_raw_file(hostile_corpus.frame(50), cfg, run_name="warm-up")
    name, data = hostile_corpus.CASES[case](rows)
    storage.put_bytes(cfg.storage.landing_prefix + name, data)
    files = landed_files(storage, cfg)
    base = _vm_hwm_mb()
    start = time.perf_counter()
    (verdict,) = validate_files(storage, cfg, files, batch_id="bench")
    seconds = time.perf_counter() - start
    result_bytes = 0
    if verdict.result_key:
        result_bytes = len(storage.get_bytes(verdict.result_key))
    conn.send(
        {
            "case": case,
            "file": name,
            "file_mb": round(len(data) / 1e6, 2),
            "seconds": round(seconds, 2),
            "peak_mb": round(_vm_hwm_mb()),
            "base_peak_mb": round(base),
            "fate": verdict.fate,
            "reason_chars": len(verdict.reason),
            "verdict_chars": len(str(verdict.as_dict())),
            "result_kb": round(result_bytes / 1024, 1),
            "reason": verdict.reason[:160],
        }
    )
    conn.close()


def run_case(endpoint: str, case: str, rows: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_worker, args=(child, endpoint, case, rows))
    proc.start()
    child.close()
    try:
        return parent.recv()
    finally:
        proc.join(timeout=60)


def main() -> None:
    import hostile_corpus

    from retrain.local.s3server import start_s3_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--cases", nargs="+", default=list(hostile_corpus.CASES))
    args = parser.parse_args()
    runs = []
    header = (
        f"{'case':<18} {'file MB':>8} {'s':>7} {'peak MB':>8} {'fate':>10} "
        f"{'reason ch':>9} {'XCom ch':>8} {'result KB':>9}"
    )
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="hostile-bench-"))
        server = stack.enter_context(start_s3_server(log_path=Path(tmp) / "moto.log"))
        print(f"moto on {server.endpoint_url}; {args.rows} rows per file")
        print(header, flush=True)
        for case in args.cases:
            r = run_case(server.endpoint_url, case, args.rows)
            runs.append(r)
            print(
                f"{case:<18} {r['file_mb']:8.2f} {r['seconds']:7.2f} {r['peak_mb']:8d} "
                f"{r['fate']:>10} {r['reason_chars']:9d} {r['verdict_chars']:8d} "
                f"{r['result_kb']:9.1f}",
                flush=True,
            )
    for r in runs:
        print(f"{r['case']}: {r['reason']}")
    machine = describe("pandas", "pyarrow", "great_expectations", rows=args.rows)
    print(f"saved {save_result('hostile_files', {'runs': runs, 'machine': machine})}")


if __name__ == "__main__":
    main()
