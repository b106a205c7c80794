"""Featurize + gate + train at growing training-set sizes: the streamed path beside the naive one.

The raw data is generated first (not timed) as Parquet files of up to 1M rows each (one file
per arrival, each a week later than the one before: ``retrain.datagen.generate`` plus 9 numeric
columns, 20 model features in all), into ``--workdir``; a size of N rows uses the first N rows'
files. Then, for each size and path, three stages run as the pipeline runs them, each in a
fresh subprocess of its own (an Airflow task is a process):

- featurize: every raw file into one feature file. streamed: ``iter_table`` chunks of 100k rows
  into ``retrain.featurize.write_features`` (row group by row group); naive: ``read_table`` +
  ``coerce_types`` + ``build_features`` + ``to_parquet`` (``steps.features`` before)
- gate: streamed: ``trainset.build_row_index`` (time and id hash spilled to files beside the
  feature files, as ``steps.training_set`` does) + ``validation.training_stream`` (exact checks,
  GX on a seeded sample of 100k rows); naive: ``pd.concat`` of the feature files + GX's
  training checkpoint on the whole frame (the pandas ``check_training_set``, before);
- train: streamed: ``build_row_index``, the time holdout (``trainset.split_by_time``) and
  ``trainset.train_streamed`` under ``[training] memory_budget_mb`` (1024); naive:
  ``pd.concat`` + ``training.train_model`` (the pandas ``train_challenger``, before).

A path's wall time is the sum of its stages' (the work, from the first byte read to the
result, without interpreter start and imports: the same for both paths), its peak RSS the
largest of its stages' (each child's ``ru_maxrss`` from ``os.wait4``: this driver holds no
data). Every naive stage runs under ``RLIMIT_AS`` = ``--naive-limit-gb`` (16): a stage that
fails with ``MemoryError`` or is killed is recorded as killed (and the path with it); the train
stage still runs after a killed gate, to see whether it alone would fit. AUC is the holdout AUC
of the trained model (the newest 20% by time). Prints a table and
saves benchmarks/results/training.json (``--out``).

    .venv/bin/python benchmarks/training.py [--rows 1000000 5000000 20000000]
        [--paths streamed naive] [--workdir DIR] [--keep] [--wait-for-idle SECONDS]

About 25 minutes on 2 cores at the default sizes (the naive 20M-row run takes half of it), 5 GB
of disk at 20M rows and up to 16 GB of memory for the naive path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from machine import describe, save_result  # benchmarks/ is on sys.path: the scripts run there

ROOT = Path(__file__).resolve().parents[1]
FILE_ROWS = 1_000_000  # rows per raw file
CHUNK_ROWS = 100_000  # rows per featurize chunk
EXTRA = [f"x{i:02d}" for i in range(1, 10)]  # numeric columns beyond the demo's: 20 features
STAGES = ("featurize", "gate", "train")
BUSY = "pytest|make test"  # what --wait-for-idle waits out before each stage


def bench_config():
    """retrain.toml with the extra numeric columns."""
    from retrain.config import load_config

    return with_extra_columns(load_config(ROOT / "retrain.toml", env={}))


def with_extra_columns(cfg):
    """``cfg`` with EXTRA as float columns after data_usage_gb (bounded: range-checked by both
    gates); benchmarks/ingest_memory.py uses it too."""
    from retrain.config import Column

    ds = cfg.dataset
    names = [c.name for c in ds.columns]
    at = names.index("data_usage_gb") + 1
    extra = tuple(Column(n, "float", min=-10.0, max=10.0) for n in EXTRA)
    columns = ds.columns[:at] + extra + ds.columns[at:]
    return replace(cfg, dataset=replace(ds, columns=columns))


# -- data ---------------------------------------------------------------------------------------


def week_frame(number: int, rows: int):
    """Week ``number`` of arrivals with the EXTRA columns (1% missing), ids unique in it;
    benchmarks/ingest_memory.py builds its files from these too."""
    from datetime import datetime, timedelta

    import numpy as np

    from retrain.datagen import generate

    df = generate(rows, seed=number, start=datetime(2025, 1, 6) + timedelta(days=7 * number))
    rng = np.random.default_rng([number, 99])
    for i, name in enumerate(EXTRA):
        values = np.clip(rng.normal(0.0, 1.0 + i / 4, rows), -10.0, 10.0).round(3)
        values[rng.random(rows) < 0.01] = np.nan
        df.insert(len(df.columns) - 1, name, values)
    return df


def generate_file(number: int, rows: int, path: Path) -> None:
    """In a subprocess: raw file ``number`` (a week of arrivals) as a user would drop it."""
    week_frame(number, rows).to_parquet(path, index=False)


def raw_files(workdir: Path, rows: int) -> list[Path]:
    """The raw files of the first ``rows`` rows, generated if missing."""
    raw = workdir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(-(-rows // FILE_ROWS)):
        n = min(FILE_ROWS, rows - number * FILE_ROWS)
        path = raw / f"batch-{number:03d}-{n}.parquet"
        if not path.exists():
            partial = path.with_suffix(".partial")
            subprocess.run(
                [sys.executable, __file__, "--generate", str(number), str(n), str(partial)],
                check=True,
                cwd=ROOT,
            )
            partial.rename(path)
        paths.append(path)
    return paths


# -- the stages, each in its own subprocess -----------------------------------------------------


def rss_mb() -> tuple[float, float]:
    """(current, peak) RSS of this process in MB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def run_stage(stage: str, path: str, raw: list[Path], features: Path) -> dict[str, Any]:
    """In the subprocess: one stage of one path; one JSON line on stdout."""
    import numpy as np
    import pandas as pd

    from retrain import trainset
    from retrain.features import build_features
    from retrain.featurize import write_features
    from retrain.tables import coerce_types, iter_table, read_table
    from retrain.training import train_model

    cfg = bench_config()
    ds = cfg.dataset
    marks: dict[str, Any] = {"imported": rss_mb()}
    feature_paths = sorted(features.glob("*.parquet"))
    spill = tempfile.TemporaryDirectory(prefix="index-", dir=features.parent)  # as the step's
    out: dict[str, Any] = {}
    start = time.perf_counter()
    if stage == "featurize":
        features.mkdir(parents=True, exist_ok=True)
        rows = 0
        for raw_path in raw:
            target = features / raw_path.name
            data = raw_path.read_bytes()
            if path == "streamed":
                chunks = iter_table(data, raw_path.name, ds, CHUNK_ROWS)
                rows += write_features(chunks, ds, target)
            else:
                frame = build_features(coerce_types(read_table(data, raw_path.name, ds), ds), ds)
                frame.to_parquet(target, index=False)
                rows += len(frame)
                del frame
            del data
        out["rows"] = rows
    elif stage == "gate":
        if path == "streamed":
            from validation.training_stream import validate_training_stream

            index = trainset.build_row_index(feature_paths, ds, spill_dir=spill.name)
            marks["index"] = rss_mb()
            mask = trainset.newest_per_id(index) if cfg.ingest.duplicate_ids == "upsert" else None
            result = validate_training_stream(
                feature_paths, index, cfg, run_name="bench", mask=mask
            )
        else:
            from validation.gates import validate_training_set

            frame = pd.concat([pd.read_parquet(p) for p in feature_paths], ignore_index=True)
            marks["frame"] = rss_mb()
            result = validate_training_set(frame, cfg, run_name="bench")
        out |= {"success": result.success, "summary": result.summary()}
    else:
        if path == "streamed":
            index = trainset.build_row_index(feature_paths, ds, spill_dir=spill.name)
            marks["index"] = rss_mb()
            every = np.ones(index.n_rows, dtype=bool)
            train, holdout = trainset.split_by_time(
                feature_paths, index, every, cfg.training.holdout_fraction, id_column=ds.id_column
            )
            marks["split"] = rss_mb()
            budget = trainset.budget_of(cfg, None, index)
            out["budget"] = {"mb": budget.budget_mb, "batch_rows": budget.batch_rows}
            out["budget"]["max_rows"] = budget.max_rows
            result = trainset.train_streamed(feature_paths, index, train, holdout, cfg)
        else:
            frame = pd.concat([pd.read_parquet(p) for p in feature_paths], ignore_index=True)
            marks["frame"] = rss_mb()
            result = train_model(frame, cfg)
        out |= {
            "auc": result.metrics.auc,
            "best_iteration": result.best_iteration,
            "n_train": result.n_train,
            "n_holdout": result.n_holdout,
            "sampled_from": getattr(result, "sampled_from", 0),
        }
    out["seconds"] = time.perf_counter() - start
    marks["end"] = rss_mb()
    spill.cleanup()
    out["marks_mb"] = {k: [round(v) for v in pair] for k, pair in marks.items()}
    return out


def child(stage: str, path: str, rows: int, workdir: Path, limit_gb: float) -> dict[str, Any]:
    """Run a stage in a subprocess; its own peak RSS from wait4; killed if it ran out."""
    args = [sys.executable, __file__, "--stage", stage, "--path", path, "--rows", str(rows)]
    args += ["--workdir", str(workdir)]
    limit = int(limit_gb * 2**30) if path == "naive" and limit_gb else None

    def limited() -> None:
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MALLOC_ARENA_MAX": "2"}
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as stdout:
        proc = subprocess.Popen(
            args, stdout=stdout, stderr=err, cwd=ROOT, env=env, preexec_fn=limited
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        err.seek(0)
        text, errors = stdout.read().decode(), err.read().decode()
    record: dict[str, Any] = {
        "process_s": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
    }
    if proc.returncode == 0:
        return record | json.loads(text.strip().splitlines()[-1])
    out_of_memory = "MemoryError" in errors or "bad_alloc" in errors or proc.returncode < 0
    if not out_of_memory:
        raise RuntimeError(f"{stage}/{path} at {rows} rows failed:\n{errors[-3000:]}")
    why = f"signal {-proc.returncode}" if proc.returncode < 0 else "MemoryError"
    if limit:
        why += f" under RLIMIT_AS {limit_gb:g} GB"
    return record | {"killed": why, "error": errors.strip().splitlines()[-1][:300]}


def wait_for_idle(seconds: float) -> None:
    """On a shared machine: wait (at most ``seconds``) until no test run competes for the CPUs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        busy = subprocess.run(["pgrep", "-f", BUSY], capture_output=True).returncode == 0
        if not busy:
            return
        time.sleep(10)


def run_path(path: str, rows: int, workdir: Path, limit_gb: float, idle_s: float) -> dict[str, Any]:
    shutil.rmtree(workdir / "features", ignore_errors=True)
    stages: dict[str, Any] = {}
    for stage in STAGES:
        wait_for_idle(idle_s)
        stages[stage] = child(stage, path, rows, workdir, limit_gb)
        print(f"    {path:8s} {stage:9s} {_stage_line(stages[stage])}", flush=True)
        if stage == "featurize" and "killed" in stages[stage]:
            break  # no feature files: nothing to gate or train
    killed = next((f"{s}: {r['killed']}" for s, r in stages.items() if "killed" in r), None)
    train = stages.get("train", {})
    return {
        "path": path,
        "rows": rows,
        "wall_s": None if killed else round(sum(s["seconds"] for s in stages.values()), 1),
        "peak_rss_mb": max(s["peak_rss_mb"] for s in stages.values()),
        "auc": round(train["auc"], 4) if "auc" in train else None,
        "killed": killed,
        "stages": stages,
    }


def _stage_line(record: dict[str, Any]) -> str:
    if "killed" in record:
        return f"KILLED ({record['killed']}) after {record['process_s']} s"
    return f"{record['seconds']:7.1f} s  peak {record['peak_rss_mb']:6d} MB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--paths", nargs="+", default=["streamed", "naive"])
    parser.add_argument("--workdir", type=Path, help="for the data (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--naive-limit-gb", type=float, default=16.0)
    parser.add_argument("--out", default="training", help="benchmarks/results/<out>.json")
    parser.add_argument(
        "--wait-for-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each stage, wait up to this long while a pytest/make test run is going on",
    )
    parser.add_argument("--generate", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        number, rows, target = args.generate
        generate_file(int(number), int(rows), Path(target))
        return
    if args.stage:
        raw = raw_files(args.workdir, args.rows[0])
        print(json.dumps(run_stage(args.stage, args.path, raw, args.workdir / "features")))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="training-bench-"))
    machine = describe(
        "lightgbm", "pandas", "pyarrow", "great_expectations", naive_limit_gb=args.naive_limit_gb
    )
    runs: list[dict[str, Any]] = []
    try:
        limit = args.naive_limit_gb
        print(f"data in {workdir}; {len(EXTRA) + 11} features; naive under {limit:g} GB")
        raw_files(workdir, max(args.rows))
        for rows in sorted(args.rows):
            sized = workdir / f"rows-{rows}"
            (sized / "raw").mkdir(parents=True, exist_ok=True)
            for raw in raw_files(workdir, rows):  # the first files, linked: no copies
                link = sized / "raw" / raw.name
                if not link.exists():
                    link.symlink_to(raw)
            print(f"{rows:,} rows")
            for path in args.paths:
                runs.append(run_path(path, rows, sized, args.naive_limit_gb, args.wait_for_idle))
                shutil.rmtree(sized / "features", ignore_errors=True)
                save_result(args.out, {"runs": runs, "machine": machine})  # so far
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'path':9s} {'rows':>11s} {'wall s':>8s} {'peak MB':>8s} {'auc':>7s}")
    for run in runs:
        wall = "killed" if run["killed"] else f"{run['wall_s']:8.1f}"
        auc = "" if run["auc"] is None else f"{run['auc']:.4f}"
        print(f"{run['path']:9s} {run['rows']:11,d} {wall:>8s} {run['peak_rss_mb']:8d} {auc:>7s}")
    print(f"saved {save_result(args.out, {'runs': runs, 'machine': machine})}")


if __name__ == "__main__":
    main()
