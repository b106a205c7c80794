"""Training under a hard memory limit: the naive path (pd.concat + train_model) runs out, the
retrain step's path (``steps.retrain.train_challenger``: the feature files staged from the bucket,
retrain.trainset under a memory budget) trains, on the same data and limit.

Each path runs in a subprocess of its own (this file run as a script) that first loads every
library and warms up what starts threads (LightGBM's OpenMP team, pyarrow's pools), then caps
its address space with ``RLIMIT_AS`` at what it uses by then plus ``HEADROOM_MB``. Address
space, not RSS, is what ``setrlimit`` can cap (``RLIMIT_RSS`` is not enforced, and
``RLIMIT_DATA`` counts nearly the same mappings), so the baseline is taken after warm-up, with
``MALLOC_ARENA_MAX=2`` (glibc would reserve 64 MB of address space per thread),
``ARROW_DEFAULT_MEMORY_POOL=system`` (mimalloc reserves address space far ahead of use) and
``OMP_NUM_THREADS=2`` (so the thread count, hence the reservations, do not follow the machine).

On 3M rows (11 features), measured on the 2-core machine of benchmarks/: the naive path needs
~720 MB of address space above the baseline, the streamed path with a 450 MB budget ~270 MB
(and ~370 MB of RSS in all, training on a seeded sample of 0.9M of the 2.4M training rows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from retrain.config import Config

HEADROOM_MB = 500
BUDGET_MB = 450
FILES, FILE_ROWS = 4, 750_000  # 3M rows; the naive frame alone is ~430 MB
ROUNDS = 30  # enough to learn, few enough to keep the test near 30 s


@pytest.fixture(scope="module")
def feature_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from retrain.config import load_config
    from retrain.datagen import generate
    from retrain.features import build_features

    ds = load_config(Path(__file__).parents[2] / "retrain.toml", env={}).dataset
    folder = tmp_path_factory.mktemp("memory-limit")
    paths = []
    for i in range(FILES):
        start = datetime(2025, 3, 3) + timedelta(days=7 * i)
        path = folder / f"week-{i}.parquet"
        build_features(generate(FILE_ROWS, seed=70 + i, start=start), ds).to_parquet(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def bucket(feature_files: list[Path], s3_server) -> tuple[str, str]:
    """The feature files in a bucket, as the features DAG leaves them: (endpoint, bucket)."""
    from retrain.config import StorageConfig
    from retrain.local.s3server import DUMMY_CREDENTIALS
    from retrain.storage import S3Storage

    storage = S3Storage.from_config(
        StorageConfig(bucket="memory-limit", endpoint_url=s3_server.endpoint_url),
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    storage.ensure_bucket()
    for i, path in enumerate(feature_files):
        storage.upload(_feature_key(i), path)
    return s3_server.endpoint_url, storage.bucket


def _feature_key(i: int) -> str:
    return f"features/ingest_date=2025-03-{3 + i:02d}/batch=b{i}/week-{i}.csv.parquet"


def limited(kind: str, *args: str) -> tuple[int, dict]:
    env = {
        **os.environ,
        "MALLOC_ARENA_MAX": "2",
        "ARROW_DEFAULT_MEMORY_POOL": "system",
        "OMP_NUM_THREADS": "2",
    }
    done = subprocess.run(
        [sys.executable, __file__, kind, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"{kind}: no result (exit {done.returncode}):\n{done.stderr[-2000:]}"
    return done.returncode, json.loads(lines[-1])


def test_the_retrain_step_trains_where_the_naive_path_runs_out(
    feature_files: list[Path], bucket: tuple[str, str]
) -> None:
    code, naive = limited("naive", str(feature_files[0].parent))
    assert code == 3, naive  # out of memory, reported by the child
    assert "oom" in naive and naive["grew_mb"] <= HEADROOM_MB
    code, streamed = limited("step", *bucket)
    assert code == 0, streamed
    assert streamed["grew_mb"] < HEADROOM_MB
    assert streamed["peak_rss_mb"] <= BUDGET_MB * 1.1  # the budget holds (within 10%)
    assert streamed["sampled_from"] == 0.8 * FILES * FILE_ROWS  # the training part
    assert 0 < streamed["n_train"] < streamed["sampled_from"]
    assert 0.75 < streamed["auc"] < 0.95  # it learned (the full-data model: ~0.81)
    # the task's own report of its memory against the budget agrees
    assert streamed["memory"]["budget_mb"] == BUDGET_MB
    assert streamed["memory"]["peak_rss_mb"] == pytest.approx(streamed["peak_rss_mb"], abs=2)


# -- the child ------------------------------------------------------------------------------------


def _status() -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmPeak", "VmSize", "VmHWM")}


def _child(kind: str, *args: str) -> int:
    import resource

    import lightgbm as lgb
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from retrain.config import StorageConfig, load_config
    from retrain.local.s3server import DUMMY_CREDENTIALS
    from retrain.steps.retrain import train_challenger
    from retrain.storage import S3Storage
    from retrain.training import train_model

    cfg: Config = load_config(Path(__file__).parents[2] / "retrain.toml", env={})
    training = replace(cfg.training, num_boost_round=ROUNDS, memory_budget_mb=BUDGET_MB)
    cfg = replace(cfg, training=training)
    ds = cfg.dataset
    warm = np.arange(200, dtype=float).reshape(100, 2)
    lgb.train({"verbose": -1, "num_threads": 2}, lgb.Dataset(warm, label=np.arange(100) % 2), 1)
    if kind == "naive":
        paths = sorted(Path(args[0]).glob("*.parquet"))
        pq.read_table(paths[0], columns=[ds.id_column])
    else:
        endpoint, name = args
        cfg = replace(cfg, storage=StorageConfig(bucket=name, endpoint_url=endpoint))
        storage = S3Storage.from_config(
            cfg.storage,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        keys = [_feature_key(i) for i in range(FILES)]
        storage.head_metadata(keys[0])  # the client's connection pool, before the cap
    base = _status()["VmSize"]
    limit = (base + HEADROOM_MB) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        if kind == "naive":
            result = train_model(pd.concat([pd.read_parquet(p) for p in paths]), cfg)
            out = {"auc": result.metrics.auc, "n_train": result.n_train}
        else:
            challenger = train_challenger(storage, cfg, keys)
            out = {
                "auc": challenger.metrics["auc"],
                "n_train": challenger.n_train,
                "sampled_from": challenger.sampled_from,
                "memory": challenger.memory,
            }
    except (MemoryError, lgb.basic.LightGBMError) as exc:  # LightGBM's std::bad_alloc
        grew = _status()["VmPeak"] - base
        print(json.dumps({"oom": f"{type(exc).__name__}: {str(exc)[:200]}", "grew_mb": grew}))
        return 3
    status = _status()
    out |= {"grew_mb": status["VmPeak"] - base, "peak_rss_mb": status["VmHWM"]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], *sys.argv[2:]))
