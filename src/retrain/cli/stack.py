"""The local stack's commands: ``demo``, ``start``, ``stop``, ``status``, ``alerts``, ``upload``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

from retrain.cli.common import (
    CommandError,
    airflow,
    need_stack,
    reports_url,
    stack_config,
    storage,
    who,
)
from retrain.config import Config, ConfigError, load_config
from retrain.local import devstack


def cmd_demo(args: argparse.Namespace) -> int:
    from retrain.local.demo import ROUNDS, download_reports, run_round

    started = time.monotonic()
    root = Path(args.root)
    path, cfg = _checked_config(args)
    if not _generated_data_fits(cfg):
        raise CommandError(
            f"the demo drops generated files of the demo dataset, not of {cfg.dataset.name!r} "
            f"({cfg.source}): start a stack of your own data with `retrain start --config "
            f"{args.config or cfg.source}` and upload your files (`retrain upload FILE ...`)"
        )
    stack = _start(args, path)
    cfg = stack_config(root)
    bucket = storage(cfg)
    seed = int(datetime.now(UTC).timestamp()) % 100_000
    for n, files in enumerate(ROUNDS[: args.rounds], start=1):
        print(f"--- round {n}: {', '.join(f'{f.name} ({f.scenario})' for f in files)}")
        summary = run_round(stack, cfg, bucket, files, seed + 10 * n)
        print(f"--- round {n} done {time.monotonic() - started:.0f}s after `retrain demo` started")
        if summary.get("retrain", "success") != "success":
            print(f"round {n} failed; logs under {stack.airflow_home / 'logs'}", file=sys.stderr)
            return 1
    index = download_reports(bucket, cfg, root / "reports")
    print("--- summary")
    print(f"champion:         {_champion_line(bucket, cfg)}")
    print(f"reports:          {reports_url(stack)}  (in the Airflow UI: Retraining reports)")
    print(f"reports (local):  file://{index.resolve()}")
    print(f"reports (bucket): {bucket.uri(cfg.storage.reports_prefix + 'index.html')}")
    print(f"quarantine:       {bucket.uri(cfg.storage.quarantine_prefix)}")
    print(f"Airflow UI:       {stack.api_url}  ({who(stack)})")
    print(
        f"S3 endpoint:      {stack.s3_endpoint}  (drop more files into "
        f"{bucket.uri(cfg.storage.landing_prefix)}; `make stop` stops everything)"
    )
    received = _receive_alerts(stack) or []
    print(
        f"--- alerts: {len(received)} arrived through SNS ({cfg.alerts.sns_topic_arn}); "
        "`retrain alerts` shows new ones, `retrain status` the state"
    )
    _print_alerts(received)
    return 0


def _generated_data_fits(cfg: Config) -> bool:
    """Whether the demo's generated files have the config's columns."""
    from retrain.datagen import generate

    columns = generate(1, seed=0, start=datetime(2026, 1, 1)).columns
    return set(columns) == set(cfg.dataset.column_names)


def _champion_line(bucket, cfg: Config) -> str:
    from retrain.registry import ModelRegistry

    champion = ModelRegistry(bucket, cfg.storage.models_prefix).champion()
    if champion is None:
        return "none deployed"
    auc = champion.metrics.get("auc")
    return f"{champion.version} (auc {auc:.3f}, deployed {champion.deployed_at})"


def cmd_stop(args: argparse.Namespace) -> int:
    devstack.stop(Path(args.root))
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    stack = _start(args, _checked_config(args)[0])
    cfg = stack.config()
    print(describe(stack, cfg))
    if stack.profile == "celery":
        print(
            f"metadata database {stack.database} on "
            f"{stack.postgres_url.rsplit('@', 1)[-1].split('/')[0]}, broker "
            f"{stack.redis_url}/{stack.redis_db}; workers {', '.join(devstack.CELERY_WORKERS)} "
            f"serve queues {', '.join(stack.queues)}; `retrain stop` removes the database"
        )
    return 0


def describe(stack: devstack.Stack, cfg: Config) -> str:
    """What a started stack runs with, where the data goes and where to look."""
    ds, st = cfg.dataset, cfg.storage
    prefixes = " ".join(
        getattr(st, f"{name}_prefix")
        for name in ("landing", "raw", "quarantine", "models", "reports")
    )
    return "\n".join(
        [
            f"config:     {stack.config_source}",
            f"            (the stack runs with its copy {stack.config_path}; an edit takes "
            "effect at the next `retrain start`)",
            f"dataset:    {ds.name}: {len(ds.columns)} columns, id {ds.id_column}, time "
            f"{ds.time_column}, target {ds.target}",
            f"bucket:     s3://{stack.bucket} on the local S3 server {stack.s3_endpoint}",
            f"prefixes:   {prefixes}",
            f"upload to:  s3://{stack.bucket}/{st.landing_prefix}  (`retrain upload FILE ...`, "
            "or any S3 client with the endpoint above)",
            f"Airflow:    {stack.api_url}  ({stack.profile} profile; {who(stack)})",
            f"reports:    {reports_url(stack)}  (in the Airflow UI: Retraining reports)",
        ]
    )


def _checked_config(args: argparse.Namespace) -> tuple[Path, Config]:
    """``--config`` (else ``RETRAIN_CONFIG``, else ``retrain.toml``), loaded and checked before
    anything starts: an invalid config starts nothing; its warnings are printed."""
    from retrain.config_check import check_config

    path = Path(args.config).resolve() if args.config else devstack.config_file()
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise CommandError(f"the config is not valid, nothing was started:\n{exc}") from exc
    for finding in check_config(cfg):
        print(f"warning: {finding}", file=sys.stderr)  # its errors raised in load_config
    return path, cfg


def _start(args: argparse.Namespace, path: Path) -> devstack.Stack:
    """The stack of ``--profile`` under ``--root`` with the config at ``path``; a failed start
    leaves nothing running (:func:`retrain.local.devstack.start`)."""
    try:
        return devstack.start(
            Path(args.root),
            config=path,
            parallelism=args.parallelism,
            profile=args.profile,
        )
    except devstack.StackError as exc:  # services missing, another stack running, failed start
        raise CommandError(str(exc)) from exc


def cmd_upload(args: argparse.Namespace) -> int:
    """Drop files into landing/ and follow them: 0 all accepted and every run succeeded,
    1 a run failed, 3 a file was quarantined (the rest went on)."""
    from retrain.local.demo import DemoFile, follow_uploads, seen_runs, upload, upload_files

    stack = need_stack(Path(args.root))
    cfg = stack.config()
    bucket = storage(cfg)
    paths = [Path(f) for f in args.files]
    if missing := [str(p) for p in paths if not p.is_file()]:
        raise CommandError(f"no such file(s): {', '.join(missing)}; nothing was uploaded", 1)
    if not paths and not _generated_data_fits(cfg):
        raise CommandError(
            f"without files, `retrain upload` generates demo data, which does not fit "
            f"{cfg.dataset.name!r}: give your files (`retrain upload FILE ...`)"
        )
    seen = seen_runs(stack) if args.follow else {}
    if paths:
        keys = upload_files(bucket, cfg, paths)
    else:
        f = DemoFile(f"{args.scenario}.{args.format}", args.scenario, args.format, args.rows, 0)
        keys = upload(bucket, cfg, (f,), args.seed)
    for key in keys:
        print(f"uploaded {bucket.uri(key)}")
    if not args.follow:
        print("`retrain status` shows where they went")
        return 0
    summary = follow_uploads(stack, cfg, bucket, keys, seen)
    print(f"reports: {reports_url(stack)}")
    if any(summary.get(d, "success") != "success" for d in ("ingest", "features", "retrain")):
        return 1
    return 3 if any(not f["valid"] for f in summary["files"]) else 0


def cmd_status(args: argparse.Namespace) -> int:
    """The local stack's bucket and Airflow when there is one, else the config's (and
    ``--airflow-url``): the same screen on a laptop and against production."""
    from botocore.exceptions import BotoCoreError

    from retrain.status import gather, render
    from retrain.storage import StorageError

    root = Path(args.root)
    cfg, api = stack_config(root), airflow(args)
    stack = _stack_state(root)
    try:
        status = gather(storage(cfg), cfg, api=api, days=args.days, dag_ids=devstack.DAG_IDS)
    except (StorageError, BotoCoreError) as exc:
        print(
            f"status: cannot read {cfg.storage.bucket!r} (local stack: {stack}): {exc}",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(json.dumps({"stack": stack, **status.as_dict()}, indent=2))
        return 0
    print(f"local stack: {stack}")
    print(render(status))
    return 0


def _stack_state(root: Path) -> str:
    """Running or not, naming the dead parts: one dead triggerer is not a stopped stack."""
    if (stack := devstack.load(root)) is None:
        return "none (bucket from the config and environment)"
    profile = f"({stack.profile} profile)"
    if dead := devstack.dead_parts(stack):
        logs = ", ".join(str(Path(stack.root) / "logs" / f"{name}.log") for name in dead)
        return f"NOT running {profile}: {', '.join(dead)} dead; see {logs}"
    if devstack.running(root):
        return f"running {profile}"
    return f"NOT running {profile}: every process lives, but Airflow does not answer healthy"


def cmd_alerts(args: argparse.Namespace) -> int:
    """What arrived on the local stack's alerts queue since the last call (reading takes the
    messages off the queue; ``retrain status`` lists the recent ones from the bucket)."""
    stack = devstack.load(Path(args.root))
    if stack is None or not stack.alerts_queue_url:
        print(
            f"no local stack with an alerts queue under {args.root}: alerts go to the "
            "[alerts] sns_topic_arn's subscribers; `retrain status` shows the recent ones",
            file=sys.stderr,
        )
        return 1
    received = _receive_alerts(stack)
    if received is None:
        return 1
    if args.json:
        print(json.dumps([r.as_dict() for r in received], indent=2))
    elif not received:
        print("no alerts arrived since the last `retrain alerts`")
    else:
        _print_alerts(received)
    return 0


def _receive_alerts(stack: devstack.Stack):
    """The alerts waiting on the local stack's queue (taken off it), or None if unreadable."""
    from botocore.exceptions import BotoCoreError, ClientError

    from retrain.local.inbox import receive

    env = stack.env()
    try:
        return receive(
            stack.s3_endpoint,
            stack.alerts_queue_url,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
    except (BotoCoreError, ClientError) as exc:
        print(f"alerts: cannot read the queue (stack stopped?): {exc}", file=sys.stderr)
        return None


def _print_alerts(received) -> None:
    for r in received:
        print(f"{r.sent_at}  {r.subject or '(no subject)'}")
        print(textwrap.indent(r.message, "    "))
