"""``retrain``: the project's command line (demo, stack, uploads, status, reports).

``make demo`` is ``retrain demo``; ``make stop`` is ``retrain stop``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from retrain import devstack
from retrain.config import Config, load_config
from retrain.demo import ROUNDS, DemoFile, download_reports, run_round, upload
from retrain.storage import S3Storage

DEFAULT_ROOT = devstack.PROJECT_ROOT / ".stack"


def _storage(cfg: Config) -> S3Storage:
    return S3Storage.from_config(cfg.storage)


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    root = Path(args.root)
    stack = devstack.start(root, parallelism=args.parallelism)
    os.environ.update(stack.env())
    cfg = load_config()
    storage = _storage(cfg)
    seed = int(datetime.now(UTC).timestamp()) % 100_000
    for n, files in enumerate(ROUNDS[: args.rounds], start=1):
        print(f"--- round {n}: {', '.join(f'{f.name} ({f.scenario})' for f in files)}")
        summary = run_round(stack, cfg, storage, files, seed + 10 * n)
        print(f"--- round {n} done {time.monotonic() - started:.0f}s after `retrain demo` started")
        if summary.get("retrain", "success") != "success":
            print(f"round {n} failed; logs under {stack.airflow_home / 'logs'}", file=sys.stderr)
            return 1
    index = download_reports(storage, cfg, root / "reports")
    champion = _champion_line(storage, cfg)
    print("--- summary")
    print(f"champion:         {champion}")
    print(f"reports (local):  file://{index.resolve()}")
    print(f"reports (bucket): {storage.uri(cfg.storage.reports_prefix + 'index.html')}")
    print(f"quarantine:       {storage.uri(cfg.storage.quarantine_prefix)}")
    print(f"Airflow UI:       {stack.api_url}  (local stack, all users are admins)")
    print(
        f"S3 endpoint:      {stack.s3_endpoint}  (drop more files into "
        f"{storage.uri(cfg.storage.landing_prefix)}; `make stop` stops everything)"
    )
    return 0


def _champion_line(storage: S3Storage, cfg: Config) -> str:
    from retrain.registry import ModelRegistry

    champion = ModelRegistry(storage, cfg.storage.models_prefix).champion()
    if champion is None:
        return "none deployed"
    auc = champion.metrics.get("auc")
    return f"{champion.version} (auc {auc:.3f}, deployed {champion.deployed_at})"


def cmd_stop(args: argparse.Namespace) -> int:
    devstack.stop(Path(args.root))
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    stack = devstack.start(Path(args.root), parallelism=args.parallelism)
    print(f"Airflow {stack.api_url}, S3 {stack.s3_endpoint}")
    return 0


def _stack_env(root: Path) -> devstack.Stack:
    stack = devstack.load(root)
    if stack is None:
        raise SystemExit(f"no stack under {root}: run `make demo` first")
    os.environ.update(stack.env())
    return stack


def cmd_upload(args: argparse.Namespace) -> int:
    _stack_env(Path(args.root))
    cfg = load_config()
    f = DemoFile(f"{args.scenario}.{args.format}", args.scenario, args.format, args.rows, 0)
    for key in upload(_storage(cfg), cfg, (f,), args.seed):
        print(f"uploaded {key}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    stack = _stack_env(Path(args.root))
    cfg = load_config()
    storage = _storage(cfg)
    print(f"stack:    {'running' if devstack.running(Path(args.root)) else 'NOT running'}")
    print(f"champion: {_champion_line(storage, cfg)}")
    for dag_id in devstack.DAG_IDS:
        runs = stack.api.dag_runs(dag_id, limit=3)
        print(f"{dag_id:9} " + ", ".join(f"{r.run_id}={r.state}" for r in runs))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retrain", description=__doc__)
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="stack folder (default .stack)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="start the stack, drop demo data, follow the runs")
    demo.add_argument("--rounds", type=int, default=len(ROUNDS), choices=range(1, len(ROUNDS) + 1))
    for p in (demo, sub.add_parser("start", help="start the local stack")):
        p.add_argument("--parallelism", type=int, default=4)
    sub.add_parser("stop", help="stop the local stack")
    sub.add_parser("status", help="stack, champion and latest runs")
    up = sub.add_parser("upload", help="drop one generated file into landing/")
    up.add_argument("--scenario", choices=("normal", "drifted", "corrupt"), default="normal")
    up.add_argument("--format", choices=("csv", "parquet"), default="csv")
    up.add_argument("--rows", type=int, default=2000)
    up.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines as they happen, also in pipes
    handler = {
        "demo": cmd_demo,
        "start": cmd_start,
        "stop": cmd_stop,
        "status": cmd_status,
        "upload": cmd_upload,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
