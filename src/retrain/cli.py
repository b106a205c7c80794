"""``retrain``: the project's command line (demo, stack, uploads, status, reports).

``make demo`` is ``retrain demo``; ``make stop`` is ``retrain stop``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from retrain import devstack
from retrain.config import Config, load_config
from retrain.storage import S3Storage

DEFAULT_ROOT = devstack.PROJECT_ROOT / ".stack"
STAGE_TIMEOUT = 900.0  # seconds per stage; generous, the machine is small


@dataclass(frozen=True)
class DemoFile:
    name: str
    scenario: str
    fmt: str
    rows: int
    days_ago: float


ROUNDS: tuple[tuple[DemoFile, ...], ...] = (
    (  # a normal week in two formats, plus one broken export
        DemoFile("customers-week1.csv", "normal", "csv", 4000, 14),
        DemoFile("customers-week1b.parquet", "normal", "parquet", 4000, 14),
        DemoFile("customers-broken-export.csv", "corrupt", "csv", 500, 14),
    ),
    (  # the next week, after a price change: drifted
        DemoFile("customers-week2.csv", "drifted", "csv", 4000, 7),
    ),
)


def _storage(cfg: Config) -> S3Storage:
    return S3Storage.from_config(cfg.storage)


def upload(storage: S3Storage, cfg: Config, files: tuple[DemoFile, ...], seed: int) -> list[str]:
    """Generate demo batches and drop them into landing/, as a user would."""
    from retrain.datagen import generate, write_batch

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    keys = []
    for i, f in enumerate(files):
        df = generate(
            f.rows,
            seed=seed + i,
            scenario=f.scenario,
            start=now - timedelta(days=f.days_ago),
            days=7.0,
        )
        stem, ext = f.name.rsplit(".", 1)
        key = f"{cfg.storage.landing_prefix}{stem}-{seed}.{ext}"
        storage.put_bytes(key, write_batch(df, f.fmt))
        keys.append(key)
    return keys


def run_round(
    stack: devstack.Stack,
    cfg: Config,
    storage: S3Storage,
    files: tuple[DemoFile, ...],
    seed: int,
    say=print,
) -> dict:
    """Upload one round of files and follow the runs they set off, to the deploy decision."""
    from retrain import follow
    from retrain.registry import ModelRegistry

    api, clock = stack.api, follow.Clock()
    seen = {d: follow.run_ids(api, d, finished_only=d == "ingest") for d in devstack.DAG_IDS}
    keys = upload(storage, cfg, files, seed)
    say(f"{clock()} uploaded {len(keys)} file(s) to {storage.uri(cfg.storage.landing_prefix)}")
    routed = follow.wait_routed(storage, cfg, keys, STAGE_TIMEOUT)
    for r in routed:
        verdict = "valid       ->" if r.valid else "QUARANTINED ->"
        say(f"{clock()} ingest: {r.landing_key} {verdict} {r.dest_key}")
    ingest_run = follow.wait_new_run(api, "ingest", seen["ingest"], STAGE_TIMEOUT)
    batches = sorted(
        {part for r in routed for part in r.dest_key.split("/") if part.startswith("batch=")}
    )
    say(f"{clock()} ingest run {ingest_run.run_id}: {ingest_run.state} ({', '.join(batches)})")
    summary = {
        "files": [r.__dict__ for r in routed],
        "ingest": ingest_run.state,
        "ingest_run": ingest_run.run_id,
    }
    if not any(r.valid for r in routed):
        say(f"{clock()} no valid file: no feature build, no retrain (as intended)")
        return summary
    progress = lambda line: say(f"{clock()} {line}")  # noqa: E731
    for dag_id in ("features", "retrain"):
        run = follow.wait_new_run(api, dag_id, seen[dag_id], STAGE_TIMEOUT, on_task=progress)
        say(f"{clock()} {dag_id} run {run.run_id}: {run.state}")
        summary[dag_id] = run.state
        if run.state != "success":
            say(api.failed_task_logs([dag_id], limit_runs=1))
            return summary
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    version = registry.list_versions()[-1]
    decision = registry.load_decision(version) or {}
    champion = registry.champion()
    summary |= {
        "version": version,
        "decision": decision,
        "champion": champion.version if champion else None,
    }
    verdict = "DEPLOYED" if champion and champion.version == version else "HELD"
    say(f"{clock()} model {version}: {verdict} -- {decision.get('reason', '?')}")
    return summary


def download_reports(storage: S3Storage, cfg: Config, dest: Path) -> Path:
    for obj in storage.list_objects(cfg.storage.reports_prefix):
        target = dest / obj.key[len(cfg.storage.reports_prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.get_bytes(obj.key))
    return dest / "index.html"


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
            print(f"round {n} failed; logs under {root / 'airflow' / 'logs'}", file=sys.stderr)
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
