"""README, "Run it on your own data", command by command, on a dataset that is not the demo's.

The flights data below has other column names, a category, a datetime and an id column of its
own; the test writes it, then runs exactly the commands the README shows, as a user types them
(``retrain`` in a shell, no environment variable set): ``init``, ``config check``, ``start
--config``, ``upload`` (which follows the files to the deploy decision), ``predict``,
``status``, ``stop``. Its stack is its own (started by ``retrain start``, as the README does).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.local import devstack

pytestmark = pytest.mark.e2e

RETRAIN = str(Path(sys.executable).parent / "retrain")
CARRIERS = ("AA", "B6", "DL", "NK", "UA", "WN")
AIRPORTS = ("ATL", "BOS", "DEN", "JFK", "LAX", "ORD", "SEA", "SFO")
COMMAND_TIMEOUT = 900  # seconds: `retrain upload` follows a whole retrain on 2 busy cores


def flights(n: int, *, seed: int, start: datetime, first_id: int) -> pd.DataFrame:
    """Departures over 28 days; the delay depends on the hour, the carrier and the distance,
    so a model has something to learn."""
    rng = np.random.default_rng(seed)
    dep = pd.Series(
        sorted(start + timedelta(minutes=int(m)) for m in rng.integers(0, 28 * 24 * 60, n))
    )
    carrier = rng.choice(CARRIERS, n)
    distance = np.round(rng.gamma(2.0, 600.0, n) + 150, 1)
    hour = dep.dt.hour.to_numpy()
    logit = -2.0 + 0.12 * (hour - 12) + 0.9 * np.isin(carrier, ("NK", "B6")) + distance / 3000
    return pd.DataFrame(
        {
            "flight_id": np.arange(first_id, first_id + n),
            "dep_time": dep.dt.strftime("%Y-%m-%d %H:%M:%S"),
            "carrier": carrier,
            "origin": rng.choice(AIRPORTS, n),
            "distance_km": distance,
            "dep_hour": hour,
            "taxi_out_min": np.where(rng.random(n) < 0.05, np.nan, rng.integers(5, 40, n)),
            "is_delayed": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )


def retrain(*args: str, root: Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``retrain ARGS --root ROOT`` as a user runs it: no RETRAIN_* variable in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAIN")}
    done = subprocess.run(
        [RETRAIN, *args, "--root", str(root)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    print(f"$ retrain {' '.join(args)}  -> {done.returncode}\n{done.stdout}{done.stderr}")
    return done


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's folder: their data files, the config they write, their predictions."""
    work = tmp_path_factory.mktemp("own-data")
    now = datetime.now().replace(microsecond=0)
    october = flights(1500, seed=1, start=now - timedelta(days=60), first_id=100_000)
    november = flights(1500, seed=2, start=now - timedelta(days=30), first_id=200_000)
    october.to_csv(work / "flights-october.csv", index=False)
    november.to_parquet(work / "flights-november.parquet", index=False)
    bad = flights(300, seed=3, start=now - timedelta(days=30), first_id=300_000)
    bad.loc[bad.index[:12], "carrier"] = "ZZ"  # a carrier the config does not know
    bad.to_csv(work / "flights-bad.csv", index=False)
    upcoming = flights(200, seed=4, start=now, first_id=400_000).drop(columns="is_delayed")
    upcoming.to_csv(work / "upcoming.csv", index=False)
    return work


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("own-data-stack")
    try:
        yield root
    finally:
        devstack.stop(root, log=lambda *_: None)  # after a failed step too


def test_init_writes_a_config_that_check_accepts_with_its_sample(workdir: Path, root) -> None:
    done = retrain(
        "init", "--from-sample", "flights-october.csv", "--name", "flights",
        "--out", "flights.toml", root=root, cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote flights.toml" in done.stdout
    raw = tomllib.loads((workdir / "flights.toml").read_text())
    ds = raw["dataset"]
    assert (ds["id_column"], ds["time_column"], ds["target"]) == (
        "flight_id",
        "dep_time",
        "is_delayed",
    )
    assert ds["columns"]["carrier"]["dtype"] == "category"
    assert ds["columns"]["dep_time"]["dtype"] == "datetime"
    assert ds["columns"]["dep_hour"]["drift"] is False, "a calendar part: never counted as drift"
    assert raw["storage"]["bucket"] == "retrain-flights"

    done = retrain(
        "config", "check", "flights.toml", "--sample", "flights-october.csv",
        "--sample", "flights-november.parquet", root=root, cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "flights.toml: valid" in done.stdout
    assert done.stdout.count("ACCEPTED") == 2

    done = retrain(
        "config", "check", "flights.toml", "--sample", "flights-bad.csv", root=root, cwd=workdir
    )
    assert done.returncode == 3, "a rejected sample: the exit code says so"
    assert "would be QUARANTINED" in done.stdout and "carrier" in done.stdout


def test_a_contradiction_is_an_error_and_starts_nothing(workdir: Path, root: Path) -> None:
    text = (workdir / "flights.toml").read_text()
    (workdir / "contradicting.toml").write_text(f"{text}\n[orchestration]\npoll_interval = 5\n")
    done = retrain("config", "check", "contradicting.toml", root=root, cwd=workdir)
    assert done.returncode == 1 and "idle_poll_interval" in done.stderr
    done = retrain("start", "--config", "contradicting.toml", root=root, cwd=workdir)
    assert done.returncode == 2
    assert "retrain start: the config is not valid, nothing was started" in done.stderr
    assert "idle_poll_interval" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 2, "one paragraph: what, then the one error"
    assert devstack.load(root) is None, "nothing started, nothing recorded"


def test_start_uses_the_configs_bucket_and_says_where_things_are(workdir: Path, root) -> None:
    done = retrain("start", "--config", "flights.toml", root=root, cwd=workdir)
    assert done.returncode == 0, done.stderr
    stack = devstack.load(root)
    assert stack is not None and stack.bucket == "retrain-flights"
    assert stack.config_source == str(workdir / "flights.toml")
    out = done.stdout
    assert f"config:     {workdir / 'flights.toml'}" in out
    assert "dataset:    flights: 8 columns, id flight_id" in out
    assert "bucket:     s3://retrain-flights on the local S3 server" in out
    assert f"reports:    {stack.api_url}/retrain-reports/index.html" in out


def test_upload_follows_the_files_to_a_deployed_model(workdir: Path, root: Path) -> None:
    done = retrain(
        "upload", "flights-october.csv", "flights-november.parquet", "flights-bad.csv",
        root=root, cwd=workdir, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 3, "one file quarantined, the rest went on"
    out = done.stdout
    assert "landing/flights-october.csv valid" in out
    assert "landing/flights-november.parquet valid" in out
    assert "landing/flights-bad.csv QUARANTINED" in out and "ZZ" in out
    assert "retrain run" in out and ": DEPLOYED -- " in out
    stack = devstack.load(root)
    assert stack is not None
    keys = [o.key for o in stack.storage().list_objects("raw/")]
    assert sum(k.endswith(("flights-october.csv", "flights-november.parquet")) for k in keys) == 2


def test_predict_and_status_use_the_stacks_config_without_variables(
    workdir: Path, root: Path
) -> None:
    done = retrain("predict", "upcoming.csv", root=root, cwd=workdir)
    assert done.returncode == 0, done.stderr
    scores = pd.read_csv(workdir / "upcoming.predictions.csv")
    assert len(scores) == 200 and scores["score"].between(0, 1).all()
    assert "flight_id" in scores.columns
    done = retrain("status", "--json", root=root, cwd=workdir)
    assert done.returncode == 0 and '"bucket": "retrain-flights"' in done.stdout
    # another config in RETRAIN_CONFIG: refused, naming both, rather than mixed in
    env = {**os.environ, "RETRAIN_CONFIG": str(devstack.PROJECT_ROOT / "retrain.toml")}
    mixed = subprocess.run(
        [RETRAIN, "models", "--root", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert mixed.returncode == 2
    assert "retrain.toml differs from the config the stack" in mixed.stderr
    assert str(workdir / "flights.toml") in mixed.stderr


def test_stop_leaves_nothing_running(workdir: Path, root: Path) -> None:
    stack = devstack.load(root)
    assert stack is not None
    done = retrain("stop", root=root, cwd=workdir)
    assert done.returncode == 0
    assert devstack.load(root) is None
    assert not any(devstack._group_alive(pid) for pid in stack.pids.values())
