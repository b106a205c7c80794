"""Peak memory and time of the raw gate on a large landed CSV: whole file vs chunks.

Each variant runs in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own: the file is
generated and written to a temporary file first (by another subprocess: Linux starts a child's
``ru_maxrss`` at its parent's RSS, so this script itself never holds a batch), the subprocess
imports everything, warms GX up on a small file (a worker validates many files; the one-off
context build is not what grows), then reads the file's bytes and validates them as ingest does:

- whole: ``read_table`` + ``validate_raw_file`` (the frame and its ids stay for the ledger);
- chunked: ``iter_table`` + ``validate_raw_chunks`` (ids come back in the result), once per
  chunk size: 100k rows (ingest's before) and 250k (``validation.gates.RAW_CHUNK_ROWS``).

Time is the validation only (bytes read to verdict). Prints a table and saves
benchmarks/results/raw_gate_memory.json.

    .venv/bin/python benchmarks/raw_gate_memory.py [--rows 100000 1000000] \
        [--chunk-rows 100000 250000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
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
    import pandas as pd

    from retrain.config import load_config
    from retrain.datagen import generate, write_batch
    from retrain.tables import iter_table, read_table
    from validation.chunked import validate_raw_chunks
    from validation.gates import validate_raw_file

    cfg = load_config(ROOT / "retrain.toml", env={})
    small = write_batch(generate(300, seed=0, start=datetime(2026, 1, 1)), "csv")
    if variant == "whole":
        validate_raw_file(read_table(small, FILE_NAME, cfg.dataset), cfg, run_name="warm-up")
    else:  # two chunks: builds the partial checkpoints too
        chunks = iter_table(small, FILE_NAME, cfg.dataset, 200)
        validate_raw_chunks(chunks, cfg, run_name="warm", workdir=Path(tempfile.mkdtemp()))
    base = peak_mb()
    start = time.perf_counter()
    data = path.read_bytes()
    if variant == "whole":
        df = read_table(data, FILE_NAME, cfg.dataset)
        result = validate_raw_file(df, cfg, run_name="bench")
        rows, ids = len(df), df[cfg.dataset.id_column]  # what ingest keeps for the ledger
    else:
        chunks = iter_table(data, FILE_NAME, cfg.dataset, chunk_rows)
        workdir = Path(tempfile.mkdtemp())
        validated = validate_raw_chunks(chunks, cfg, run_name="bench", workdir=workdir)
        result, rows, ids = validated.result, validated.rows, validated.ids
        if isinstance(ids, Path):  # a local ids file, as ingest stages it
            ids = pd.read_parquet(ids)["id"]
            shutil.rmtree(workdir)
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
    # the chunk size before (100k) and the one ingest uses (validation.gates.RAW_CHUNK_ROWS)
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[100_000, 250_000])
    parser.add_argument("--measure", choices=["whole", "chunked"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.file, args.chunk_rows[0])))
        return
    if args.generate:
        generate_file(args.generate, args.file)
        return

    runs = []
    print("peak = ru_maxrss of a fresh process per variant")
    print(f"{'rows':>9} {'file MB':>8} {'variant':>14} {'s':>7} {'peak MB':>8} {'base MB':>8}")
    with tempfile.TemporaryDirectory(prefix="raw-gate-memory-") as tmp:
        for n in args.rows:
            path = Path(tmp) / f"{n}.csv"
            run_script("--generate", str(n), "--file", str(path))
            file_mb = round(path.stat().st_size / 1e6, 1)
            variants = [("whole", args.chunk_rows[0])]
            variants += [("chunked", rows) for rows in args.chunk_rows]
            run: dict[str, Any] = {"rows": n, "file_mb": file_mb, "chunked": []}
            for variant, chunk_rows in variants:
                got = run_variant(variant, path, chunk_rows)
                assert got["success"] and got["rows"] == n
                figures = {
                    "s": round(got["seconds"], 2),
                    "peak_mb": round(got["peak_mb"]),
                    "base_peak_mb": round(got["base_peak_mb"]),
                }
                name = "whole" if variant == "whole" else f"chunks of {chunk_rows:,}"
                if variant == "whole":
                    run["whole"] = figures
                else:
                    run["chunked"].append({"chunk_rows": chunk_rows, **figures})
                print(
                    f"{n:9d} {file_mb:8.1f} {name:>14} {figures['s']:7.2f} "
                    f"{figures['peak_mb']:8d} {figures['base_peak_mb']:8d}"
                )
            runs.append(run)
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
