"""What the GX raw-file gate costs per landed file, against parsing the file (which any ingest
does anyway), side by side in one process on the same generated batches.

The GX context is built in memory (as in a task), so nothing is written into the repo. Prints a
table and saves benchmarks/results/raw_gate.json.

    .venv/bin/python benchmarks/raw_gate.py [--rows 10000 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int) -> tuple[float, object]:
    samples, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from retrain.config import load_config
    from retrain.datagen import generate, write_batch
    from retrain.tables import read_table
    from validation.gates import validate_raw_file

    cfg = load_config(ROOT / "retrain.toml", env={})
    start = time.perf_counter()
    import great_expectations  # noqa: F401

    import_s = time.perf_counter() - start
    warm = generate(100, seed=0, start=datetime(2026, 1, 1))
    validate_raw_file(warm, cfg, run_name="warm-up")  # first run builds the context
    rows = []
    print(f"import great_expectations: {import_s:.2f} s")
    print(f"{'rows':>8} {'parse csv s':>12} {'GX gate s':>10} {'gate / parse':>13}")
    for n in args.rows:
        data = write_batch(generate(n, seed=1, start=datetime(2026, 1, 1)), "csv")
        parse_s, df = timed(lambda d=data: read_table(d, "bench.csv", cfg.dataset), args.repeat)
        gate_s, result = timed(
            lambda df=df: validate_raw_file(df, cfg, run_name="bench"), args.repeat
        )
        assert result.success, result.summary()
        rows.append({"rows": n, "parse_s": parse_s, "gate_s": gate_s, "ratio": gate_s / parse_s})
        print(f"{n:8d} {parse_s:12.3f} {gate_s:10.3f} {gate_s / parse_s:13.1f}")
    out = ROOT / "benchmarks" / "results" / "raw_gate.json"
    out.write_text(
        json.dumps({"import_gx_s": import_s, "repeat": args.repeat, "results": rows}, indent=2)
    )
    print(f"saved {out}")


if __name__ == "__main__":
    main()
