"""What the landing wait costs every DAG parse: importing the project's LandingSensor vs the
amazon provider's S3KeySensor (the stock deferrable alternative), side by side.

Each sample is a fresh interpreter that first imports ``airflow.sdk`` (the dag-processor has it
loaded already), then times the sensor module's import. Runs alternate between the two so that
machine noise hits both alike. Prints a table and saves benchmarks/results/sensor_import.json.

    .venv/bin/python benchmarks/sensor_import.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = {
    "project LandingSensor": "triggers.landing",
    "stock S3KeySensor (baseline)": "airflow.providers.amazon.aws.sensors.s3",
}
PROBE = """
import time, importlib, airflow.sdk
t = time.perf_counter(); importlib.import_module({module!r}); print(time.perf_counter() - t)
"""


def sample(module: str, home: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        env={"AIRFLOW_HOME": home, "PATH": ""},
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    with tempfile.TemporaryDirectory() as home:
        for _ in range(args.runs):
            for name, module in CANDIDATES.items():
                results[name].append(sample(module, home))
    baseline = statistics.median(results["stock S3KeySensor (baseline)"])
    rows = []
    print(f"{'sensor':32} {'median s':>9} {'min s':>7} {'max s':>7} {'x baseline':>10}")
    for name, times in results.items():
        med = statistics.median(times)
        rows.append(
            {
                "sensor": name,
                "median_s": med,
                "min_s": min(times),
                "max_s": max(times),
                "ratio_to_baseline": med / baseline,
                "samples": times,
            }
        )
        print(f"{name:32} {med:9.3f} {min(times):7.3f} {max(times):7.3f} {med / baseline:10.2f}")
    out = Path(__file__).parent / "results" / "sensor_import.json"
    out.write_text(json.dumps({"runs": args.runs, "results": rows}, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
