"""Many small files through the raw gate: one GX run per file (the baseline) against
``validation.grouped.validate_raw_group`` (small files together, each still judged on its own),
side by side in one process on the same parsed files, with the verdicts compared file by file.

Each batch has one file with a bad value in the middle (``--bad``), as a real burst might: the
grouped path then also pays for naming it and checking the others again without it. Prints a table
and saves benchmarks/results/raw_gate_grouped.json.

    .venv/bin/python benchmarks/raw_gate_grouped.py [--files 20 100 200] [--rows 200] [--bad 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, nargs="+", default=[20, 100, 200])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--bad", type=int, default=1, help="files with one bad value per batch")
    args = parser.parse_args()
    from retrain.config import load_config
    from retrain.datagen import generate, write_batch
    from retrain.tables import read_table
    from validation.gates import validate_raw_file
    from validation.grouped import validate_raw_group

    cfg = load_config(ROOT / "retrain.toml", env={})
    start = datetime(2026, 1, 1)
    warm = [
        read_table(write_batch(generate(50, seed=s, start=start), "csv"), "w.csv", cfg.dataset)
        for s in (1, 2)
    ]
    validate_raw_group(warm, cfg, run_name="warm-up")  # builds the context and its checkpoints
    validate_raw_file(warm[0], cfg, run_name="warm-up")
    runs = []
    print(f"{'files':>6} {'rows':>6} {'per file s':>11} {'grouped s':>10} {'speedup':>8}  rejected")
    for n in args.files:
        frames = []
        for i in range(n):
            df = generate(args.rows, seed=1000 + i, start=start)
            if i in {n // 2 + k for k in range(args.bad)}:
                df["contract"] = df["contract"].astype(object)
                df.loc[3, "contract"] = "platinum"
            frames.append(read_table(write_batch(df, "csv"), f"f{i}.csv", cfg.dataset))
        t0 = time.perf_counter()
        alone = [validate_raw_file(f, cfg, run_name=f"alone-{i}") for i, f in enumerate(frames)]
        per_file_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        grouped = validate_raw_group(frames, cfg, run_name="grouped")
        grouped_s = time.perf_counter() - t0
        for a, g in zip(alone, grouped, strict=True):  # the same verdict, file by file
            assert a.success == g.result.success, (a.summary(), g.result.summary())
            assert a.success or a.summary() == g.result.summary()
        rejected = sum(not a.success for a in alone)
        runs.append(
            {
                "files": n,
                "rows_per_file": args.rows,
                "rejected": rejected,
                "per_file_s": round(per_file_s, 3),
                "grouped_s": round(grouped_s, 3),
                "speedup": round(per_file_s / grouped_s, 1),
            }
        )
        print(
            f"{n:6d} {args.rows:6d} {per_file_s:11.2f} {grouped_s:10.2f} "
            f"{per_file_s / grouped_s:7.1f}x  {rejected}"
        )
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).date().isoformat(),
    }
    out = ROOT / "benchmarks" / "results" / "raw_gate_grouped.json"
    out.write_text(json.dumps({"runs": runs, "machine": machine}, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
