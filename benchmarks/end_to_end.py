"""One big file dropped into the running embedded stack, to the deploy decision, stage by stage.

Starts the local stack as `make demo` does (S3-compatible server, Airflow scheduler, triggerer,
dag-processor, api-server on 127.0.0.1, SQLite, LocalExecutor), deploys a first model from a
small file, then drops one file of ``--baseline-rows`` rows (the baseline: what orchestration
costs whatever the size) and then one of ``--rows`` rows (default 1M), each compared with the
champion (drift, bootstrap, refit on a deploy). For each, the time of every stage from the
moment the upload finished, read from Airflow's task instances: arrival (upload -> the first
validation task running), validation, routing, the raw -> features and features -> retrain
asset hops, the feature build and each retrain task; and the totals to the decision (the end of
evaluate_and_decide) and to the deployed model (the end of deploy, after the refit for serving).
``--repeat N`` does it all N times on fresh stacks (the run-to-run spread of this machine);
``--against REF`` runs the stack from commit REF's code too, alternating with the checkout's
(the same machine, minutes apart). Prints a table and saves benchmarks/results/end_to_end.json.

    .venv/bin/python benchmarks/end_to_end.py [--rows 1000000] [--repeat 2] [--against a9eb053]
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

from machine import describe, export, save_result  # noqa: E402

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
    from retrain.datagen import generate, write_batch
    from retrain.local import devstack, follow
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
    decided = retrain["evaluate_and_decide"][1]
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    decision = registry.load_decision(registry.list_versions()[-1]) or {}
    result = {
        "rows": rows,
        "bytes": len(body),
        "routed_s": round(routed_s, 1),
        "decision_s": s(put_at, decided),  # the deploy decision made (evaluate_and_decide)
        "total_s": s(put_at, last),  # ... and the refit for serving deployed (deploy)
        "stages_s": stages,
        "decision": {"deploy": decision.get("deploy"), "rule": decision.get("rule")},
    }
    say(
        f"{rows:>9,} rows: {result['decision_s']:6.1f} s to the decision "
        f"({decision.get('rule')}), {result['total_s']:6.1f} s to the deployed model"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000)
    parser.add_argument("--first-rows", type=int, default=4_000)
    parser.add_argument(
        "--repeat", type=int, default=1, help="fresh stacks, one big file each (the spread)"
    )
    parser.add_argument(
        "--against",
        metavar="GIT_REF",
        help="also run the stack from this commit's code, alternating with the checkout's",
    )
    args = parser.parse_args()

    firsts, baselines, bigs, theirs = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="end-to-end-") as tmp:
        other = export(args.against, Path(tmp) / "against") if args.against else None
        for attempt in range(args.repeat):
            for code_root in [ROOT, other] if other else [ROOT]:
                tag = "" if code_root == ROOT else f"[{args.against}] "
                say = lambda line, tag=tag: print(tag + line)  # noqa: E731
                root = Path(tmp) / f"stack-{attempt}-{'against' if tag else 'this'}"
                first, baseline, big = _one_stack(root, code_root, args, attempt, say)
                if code_root == ROOT:
                    firsts.append(first)
                    baselines.append(baseline)
                    bigs.append(big)
                else:
                    theirs.append(big)

    baseline, big = baselines[0], bigs[0]
    names = list(dict.fromkeys([*baseline["stages_s"], *big["stages_s"]]))
    columns = [baseline, *bigs]
    print(f"\n{'stage':40} " + " ".join(f"{r['rows']:>10,}" for r in columns) + "  rows")
    for name in names:
        cells = [r["stages_s"].get(name) for r in columns]
        print(f"{name:40} " + " ".join(f"{c if c is not None else '-':>10}" for c in cells))
    for label, key in (("upload -> decision", "decision_s"), ("upload -> deployed", "total_s")):
        print(f"{label:40} " + " ".join(f"{r[key]:>10}" for r in columns))
        if theirs:
            cells = " ".join(f"{r[key]:>10}" for r in theirs)
            print(f"{'  the same, code of ' + args.against:40} {'':>10} {cells}")
    result = {
        "first_model": firsts[0],
        "baseline": baseline,
        "runs": bigs,
        "target_s": 90,
        "machine": describe("apache-airflow", "lightgbm", "great-expectations"),
    }
    if theirs:
        result["against"] = {"ref": args.against, "runs": theirs}
    out = save_result("end_to_end", result)
    print(f"saved {out.relative_to(ROOT)}")


def _one_stack(root: Path, code_root: Path, args, attempt: int, say) -> tuple[dict, dict, dict]:
    """A fresh stack running ``code_root``'s code: the first model, the baseline, the big file."""
    from retrain.local import devstack

    stack = devstack.start(root, bucket="e2e-bench", code_root=code_root, log=lambda *_: None)
    try:
        cfg, storage = stack.config(), stack.storage()
        first = one_file(stack, cfg, storage, args.first_rows, 1, say)
        baseline = one_file(stack, cfg, storage, args.baseline_rows, 2, say)
        big = one_file(stack, cfg, storage, args.rows, 3 + attempt, say)
    finally:
        devstack.stop(root, log=lambda *_: None)
    return first, baseline, big


if __name__ == "__main__":
    main()
