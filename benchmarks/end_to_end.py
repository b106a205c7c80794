"""One big file dropped into the running embedded stack, to the deploy decision, stage by stage.

Starts the local stack as `make demo` does (S3-compatible server, Airflow scheduler, triggerer,
dag-processor, api-server on 127.0.0.1, SQLite, LocalExecutor), deploys a first model from a
small file, then drops one file of ``--baseline-rows`` rows (the baseline: what orchestration
costs whatever the size) and then one of ``--rows`` rows (default 1M), each compared with the
champion (drift, bootstrap, refit on a deploy). For each, the time of every stage from the
moment the upload finished, read from Airflow's task instances: arrival (upload -> the first
validation task running), validation, routing, the raw -> features and features -> retrain
asset hops, the feature build and each retrain task. Prints a table and saves
benchmarks/results/end_to_end.json.

    .venv/bin/python benchmarks/end_to_end.py [--rows 1000000] [--baseline-rows 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe, save_result  # noqa: E402

TIMEOUT = 1800.0


def _task_times(api, dag_id: str, run_id: str) -> dict[str, tuple[datetime, datetime]]:
    """(first start, last end) per task of one run (mapped tasks over all their indexes, the
    numbered shares of a task such as ``validate_0``, ``validate_1`` under its name)."""
    quoted = urllib.parse.quote(run_id, safe="")
    payload = api.get_json(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances", limit=100)
    out: dict[str, tuple[datetime, datetime]] = {}
    for ti in payload["task_instances"]:
        if not (ti.get("start_date") and ti.get("end_date")):
            continue
        start = datetime.fromisoformat(ti["start_date"])
        end = datetime.fromisoformat(ti["end_date"])
        head, _, number = ti["task_id"].rpartition("_")
        task = head if number.isdigit() else ti["task_id"]
        if task in out:
            first, last = out[task]
            start, end = min(start, first), max(end, last)
        out[task] = (start, end)
    return out


def one_file(stack, cfg, storage, rows: int, seed: int, say) -> dict:
    """Upload one generated CSV of ``rows`` rows, follow it to the decision, time the stages."""
    from retrain import devstack, follow
    from retrain.datagen import generate, write_batch
    from retrain.registry import ModelRegistry

    api = stack.api
    seen = {d: follow.run_ids(api, d, finished_only=d == "ingest") for d in devstack.DAG_IDS}
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    body = write_batch(generate(rows, seed=seed, start=now - timedelta(days=7)), "csv")
    key = f"{cfg.storage.landing_prefix}e2e-{rows}-{seed}.csv"
    storage.put_bytes(key, body)
    put_at = datetime.now(UTC)
    clock = time.monotonic()
    routed = follow.wait_routed(storage, cfg, [key], TIMEOUT)
    routed_s = time.monotonic() - clock
    assert routed[0].valid, routed[0].reason
    runs = {
        dag: follow.wait_new_run(api, dag, seen[dag], TIMEOUT)
        for dag in ("ingest", "features", "retrain")
    }
    for dag, run in runs.items():
        if run.state != "success":
            raise RuntimeError(
                f"{dag} run {run.run_id}: {run.state}\n{api.failed_task_logs([dag])}"
            )
    ingest = _task_times(api, "ingest", runs["ingest"].run_id)
    features = _task_times(api, "features", runs["features"].run_id)
    retrain = _task_times(api, "retrain", runs["retrain"].run_id)

    def s(a: datetime, b: datetime) -> float:
        return round((b - a).total_seconds(), 1)

    stages = {
        "arrival (upload -> validate running)": s(put_at, ingest["validate"][0]),
        "validate": s(*ingest["validate"]),
        "route": s(*ingest["route"]),
        "hop raw -> features": s(ingest["route"][1], features["build_features"][0]),
        "build_features": s(*features["build_features"]),
        "hop features -> retrain": s(
            features["build_features"][1], min(v[0] for v in retrain.values())
        ),
    }
    for task, (start, end) in sorted(retrain.items(), key=lambda kv: kv[1][0]):
        stages[task] = s(start, end)
    last = max(end for _, end in retrain.values())
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    decision = registry.load_decision(registry.list_versions()[-1]) or {}
    result = {
        "rows": rows,
        "bytes": len(body),
        "routed_s": round(routed_s, 1),
        "total_s": s(put_at, last),
        "stages_s": stages,
        "decision": {"deploy": decision.get("deploy"), "rule": decision.get("rule")},
    }
    say(f"{rows:>9,} rows: {result['total_s']:6.1f} s to the decision ({decision.get('rule')})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000)
    parser.add_argument("--first-rows", type=int, default=4_000)
    args = parser.parse_args()

    from retrain import devstack

    with tempfile.TemporaryDirectory(prefix="end-to-end-") as tmp:
        stack = devstack.start(Path(tmp), bucket="e2e-bench", log=lambda *_: None)
        try:
            cfg, storage = stack.config(), stack.storage()
            first = one_file(stack, cfg, storage, args.first_rows, 1, print)
            baseline = one_file(stack, cfg, storage, args.baseline_rows, 2, print)
            big = one_file(stack, cfg, storage, args.rows, 3, print)
        finally:
            devstack.stop(Path(tmp), log=lambda *_: None)

    names = list(dict.fromkeys([*baseline["stages_s"], *big["stages_s"]]))
    print(f"\n{'stage':40} {baseline['rows']:>10,} {big['rows']:>10,}  rows")
    for name in names:
        a, b = baseline["stages_s"].get(name), big["stages_s"].get(name)
        print(f"{name:40} {a if a is not None else '-':>10} {b if b is not None else '-':>10}")
    print(f"{'total, upload -> decision':40} {baseline['total_s']:>10} {big['total_s']:>10}")
    out = save_result(
        "end_to_end",
        {
            "first_model": first,
            "baseline": baseline,
            "runs": [big],
            "target_s": 90,
            "machine": describe("apache-airflow", "lightgbm", "great-expectations"),
        },
    )
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
