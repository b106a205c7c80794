"""Peak memory and time of the raw gate on a large landed CSV: whole file vs chunks.

Each variant runs in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own: the file is
generated and written to a temporary file first (by another subprocess: Linux starts a child's
``ru_maxrss`` at its parent's RSS, so this script itself never holds a batch), the subprocess
imports everything, warms GX up on a small file (a worker validates many files; the one-off
context build is not what grows), then reads the file's bytes and validates them as ingest does:

- whole: ``read_table`` + ``validate_raw_file`` (the frame and its ids stay for the ledger);
- chunked: ``iter_table`` + ``validate_raw_chunks`` (ids come back in the result).

Time is the validation only (bytes read to verdict). Prints a table and saves
benchmarks/results/raw_gate_memory.json.

    .venv/bin/python benchmarks/raw_gate_memory.py [--rows 100000 1000000] [--chunk-rows 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from machine import describe  # benchmarks/ is on sys.path: the scripts run from there

ROOT = Path(__file__).resolve().parents[1]
FILE_NAME = "bench.csv"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(variant: str, path: Path, chunk_rows: int) -> dict[str, Any]:
    """In the subprocess: warm up, then validate the file once; one JSON line on stdout."""
    from retrain.config import load_config
    from retrain.datagen import generate, write_batch
    from retrain.tables import iter_table, read_table
    from validation.gates import validate_raw_chunks, validate_raw_file

    cfg = load_config(ROOT / "retrain.toml", env={})
    small = write_batch(generate(300, seed=0, start=datetime(2026, 1, 1)), "csv")
    if variant == "whole":
        validate_raw_file(read_table(small, FILE_NAME, cfg.dataset), cfg, run_name="warm-up")
    else:  # two chunks: builds the partial checkpoints too
        validate_raw_chunks(iter_table(small, FILE_NAME, cfg.dataset, 200), cfg, run_name="warm")
    base = peak_mb()
    start = time.perf_counter()
    data = path.read_bytes()
    if variant == "whole":
        df = read_table(data, FILE_NAME, cfg.dataset)
        result = validate_raw_file(df, cfg, run_name="bench")
        rows, ids = len(df), df[cfg.dataset.id_column]  # what ingest keeps for the ledger
    else:
        chunks = iter_table(data, FILE_NAME, cfg.dataset, chunk_rows)
        validated = validate_raw_chunks(chunks, cfg, run_name="bench")
        result, rows, ids = validated.result, validated.rows, validated.ids
    seconds = time.perf_counter() - start
    assert len(ids) == rows
    return {
        "seconds": seconds,
        "peak_mb": peak_mb(),
        "base_peak_mb": base,
        "success": result.success,
        "rows": rows,
    }


def generate_file(rows: int, path: Path) -> None:
    """In a subprocess: the batch the benchmark validates, as a user would upload it."""
    from retrain.datagen import generate, write_batch

    path.write_bytes(write_batch(generate(rows, seed=1, start=datetime(2026, 1, 1)), "csv"))


def run_script(*args: str) -> str:
    command = [sys.executable, __file__, *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def run_variant(variant: str, path: Path, chunk_rows: int) -> dict[str, Any]:
    out = run_script("--measure", variant, "--file", str(path), "--chunk-rows", str(chunk_rows))
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--measure", choices=["whole", "chunked"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.file, args.chunk_rows)))
        return
    if args.generate:
        generate_file(args.generate, args.file)
        return

    runs = []
    header = (
        f"{'rows':>9} {'file MB':>8} {'whole s':>8} {'chunked s':>10} "
        f"{'whole peak MB':>14} {'chunked peak MB':>16} {'base MB':>8}"
    )
    print(f"chunk_rows = {args.chunk_rows}; peak = ru_maxrss of a fresh process per variant")
    print(header)
    with tempfile.TemporaryDirectory(prefix="raw-gate-memory-") as tmp:
        for n in args.rows:
            path = Path(tmp) / f"{n}.csv"
            run_script("--generate", str(n), "--file", str(path))
            whole = run_variant("whole", path, args.chunk_rows)
            chunked = run_variant("chunked", path, args.chunk_rows)
            assert whole["success"] and chunked["success"]
            assert whole["rows"] == chunked["rows"] == n
            run = {
                "rows": n,
                "whole_s": round(whole["seconds"], 2),
                "chunked_s": round(chunked["seconds"], 2),
                "whole_peak_mb": round(whole["peak_mb"]),
                "chunked_peak_mb": round(chunked["peak_mb"]),
                "file_mb": round(path.stat().st_size / 1e6, 1),
                "whole_base_peak_mb": round(whole["base_peak_mb"]),
                "chunked_base_peak_mb": round(chunked["base_peak_mb"]),
            }
            runs.append(run)
            print(
                f"{n:9d} {run['file_mb']:8.1f} {run['whole_s']:8.2f} {run['chunked_s']:10.2f} "
                f"{run['whole_peak_mb']:14d} {run['chunked_peak_mb']:16d} "
                f"{run['chunked_base_peak_mb']:8d}"
            )
    out = ROOT / "benchmarks" / "results" / "raw_gate_memory.json"
    out.write_text(
        json.dumps(
            {
                "chunk_rows": args.chunk_rows,
                "runs": runs,
                "machine": describe("pandas", "pyarrow", "great_expectations"),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved {out}")


if __name__ == "__main__":
    main()
