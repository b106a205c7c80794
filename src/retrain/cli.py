"""``retrain``: the project's command line (demo, stack, uploads, status, reports, models).

``make demo`` is ``retrain demo``; ``make stop`` is ``retrain stop``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
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
    stack = _start(args)
    if stack is None:
        return 2
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
    print(f"reports:          {_reports_url(stack)}  (in the Airflow UI: Retraining reports)")
    print(f"reports (local):  file://{index.resolve()}")
    print(f"reports (bucket): {storage.uri(cfg.storage.reports_prefix + 'index.html')}")
    print(f"quarantine:       {storage.uri(cfg.storage.quarantine_prefix)}")
    print(f"Airflow UI:       {stack.api_url}  ({_who(stack)})")
    print(
        f"S3 endpoint:      {stack.s3_endpoint}  (drop more files into "
        f"{storage.uri(cfg.storage.landing_prefix)}; `make stop` stops everything)"
    )
    received = _receive_alerts(stack) or []
    print(
        f"--- alerts: {len(received)} arrived through SNS ({cfg.alerts.sns_topic_arn}); "
        "`retrain alerts` shows new ones, `retrain status` the state"
    )
    _print_alerts(received)
    return 0


def _reports_url(stack: devstack.Stack) -> str:
    """The reports index through the Airflow plugin: opens in a browser, behind the login."""
    from retrain.report_links import report_url

    return report_url(stack.api_url, "index.html")


def _who(stack: devstack.Stack) -> str:
    if stack.users:
        return f"users {', '.join(stack.users)}; passwords in {stack.airflow_home}/passwords.json"
    return "local stack, all users are admins"


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
    stack = _start(args)
    if stack is None:
        return 2
    print(f"Airflow {stack.api_url}, S3 {stack.s3_endpoint} ({stack.profile} profile)")
    print(f"reports {_reports_url(stack)} (in the Airflow UI: Retraining reports; {_who(stack)})")
    if stack.profile == "celery":
        print(
            f"metadata database {stack.database} on "
            f"{stack.postgres_url.rsplit('@', 1)[-1].split('/')[0]}, broker "
            f"{stack.redis_url}/{stack.redis_db}; workers {', '.join(devstack.CELERY_WORKERS)} "
            f"serve queues {', '.join(stack.queues)}; `retrain stop` removes the database"
        )
    return 0


def _start(args: argparse.Namespace) -> devstack.Stack | None:
    """The stack of ``--profile`` under ``--root``, or None with the reason on stderr."""
    try:
        return devstack.start(Path(args.root), parallelism=args.parallelism, profile=args.profile)
    except devstack.StackError as exc:  # services missing, another profile running, a failed start
        print(f"retrain {args.command}: {exc}", file=sys.stderr)
        return None


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
    """The local stack's bucket and Airflow when there is one, else the config's (and
    ``--airflow-url``): the same screen on a laptop and against production."""
    from botocore.exceptions import BotoCoreError

    from retrain.status import gather, render
    from retrain.storage import StorageError

    root = Path(args.root)
    _use_local_stack(root)
    cfg, api = load_config(), _airflow(args)
    stack = _stack_state(root)
    try:
        status = gather(_storage(cfg), cfg, api=api, days=args.days, dag_ids=devstack.DAG_IDS)
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

    from retrain.inbox import receive

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


def _airflow(args: argparse.Namespace):
    """The api-server to tell about a retraction: ``--airflow-url``, else the local stack's."""
    from retrain.airflow_api import AirflowApi

    if url := args.airflow_url or os.environ.get("RETRAIN_AIRFLOW_URL"):
        return AirflowApi(url, token=os.environ.get("RETRAIN_AIRFLOW_TOKEN"))
    stack = devstack.load(Path(args.root))
    return stack.api if stack else None


def _use_local_stack(root: Path) -> None:
    if stack := devstack.load(root):
        os.environ.update(stack.env())


def cmd_retract(args: argparse.Namespace) -> int:
    from retrain.airflow_api import AirflowApiError
    from retrain.curation import CurationError, retract

    _use_local_stack(Path(args.root))
    cfg = load_config()
    try:
        done = retract(_storage(cfg), cfg, args.target, reason=args.reason)
    except CurationError as exc:
        print(f"retract: {exc}", file=sys.stderr)
        return 2
    for raw, dest in zip(done.raw_keys, done.quarantine_keys, strict=True):
        print(f"retracted {raw} -> {dest}")
    print(f"recorded in {done.action_key}")
    if args.no_retrain:
        return 0
    api = _airflow(args)
    try:
        if api is None:
            raise AirflowApiError("no --airflow-url and no local stack")
        api.emit_asset_event("features", {"retracted": list(done.raw_keys)})
        print("features asset re-emitted: the retrain DAG runs without the retracted files")
    except AirflowApiError as exc:
        print(
            f"could not re-emit the features asset ({exc}); the files are out of the training "
            "data either way: the next accepted batch retrains without them, or create a "
            "`features` asset event in the Airflow UI (Assets) to retrain now",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from retrain.curation import CurationError, replay

    _use_local_stack(Path(args.root))
    cfg = load_config()
    try:
        done = replay(_storage(cfg), cfg, args.key, reason=args.reason)
    except CurationError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    print(f"replayed {done.quarantine_key} -> {done.landing_key} (recorded in {done.action_key})")
    return 0


# -- models: the registry, rollback, local scoring -------------------------------------------

MODELS_LISTED = 20
REASON_WIDTH = 60


def _registry(cfg: Config):
    from retrain.registry import ModelRegistry

    return ModelRegistry(_storage(cfg), cfg.storage.models_prefix)


def model_rows(
    registry, metric: str, limit: int | None, versions: list[str] | None = None
) -> list[dict]:
    """One row per decision, newest first: the evaluated version, created, holdout metric, the
    gate's verdict and (a deploy) the serving refit it promoted, in its own column; a refit is
    not a row of its own. ``champion``: the row's version or its refit is the champion. One GET
    for the decision and one for the metadata of each version read."""
    champion = registry.champion()
    current = champion.version if champion else None
    versions = (registry.list_versions() if versions is None else versions)[::-1]
    rows = []
    for version in versions:
        if limit and len(rows) >= limit:
            break
        decision = registry.load_decision(version) or {}
        if decision.get("version", version) != version:  # a refit's copy of its decision
            continue
        meta = registry.load_metadata(version)
        if meta.get("refit_of"):  # a refit without its decision (written right after it)
            continue
        verdict = decision.get("deploy")
        serving = decision.get("serving_version") or ""
        rows.append(
            {
                "version": version,
                "created": meta.get("created_at") or "",
                metric: (meta.get("metrics") or {}).get(metric),
                "decision": "deploy" if verdict is True else "hold" if verdict is False else "",
                "serving": serving,
                "reason": decision.get("reason") or "",
                "champion": current is not None and current in (version, serving),
            }
        )
    return rows


def render_models(
    rows: list[dict], promotions: list, metric: str, total: int, where: str
) -> list[str]:
    """``total``: the versions in the registry (refits included); the rows are one per
    decision (:func:`model_rows`)."""
    from retrain.alerts import first_line

    lines = [
        f"models in {where} (one row per decision, newest first: {len(rows)} shown; "
        f"{total} versions, refits included; * = champion)"
    ]
    if not rows:
        lines.append("  none yet: the first retrain saves one")
    else:
        width = max(len("VERSION"), *(len(r["version"]) for r in rows))
        serve = max(len("SERVING"), *(len(r.get("serving") or "-") for r in rows))
        header = (
            f"  {'VERSION':<{width}}  {'CREATED':<16}  {metric.upper():>6}  DECISION  "
            f"{'SERVING':<{serve}}  REASON"
        )
        lines.append(header)
        for r in rows:
            value = r[metric]
            shown_value = f"{value:.3f}" if isinstance(value, int | float) else "-"
            decision = r["decision"] or "-"
            serving = r.get("serving") or "-"
            reason = first_line(r["reason"], REASON_WIDTH) if r["reason"] else "(undecided)"
            lines.append(
                f"{'*' if r['champion'] else ' '} {r['version']:<{width}}  "
                f"{_short_time(r['created']):<16}  {shown_value:>6}  {decision:<8}  "
                f"{serving:<{serve}}  {reason}"
            )
    lines.append("promotions (newest first):")
    if not promotions:
        lines.append("  none: no model was deployed yet")
    for p in promotions:
        came = f" <- {p.previous_version}" if p.previous_version else " (first champion)"
        who = f" by {p.by}" if p.by else ""
        why = first_line(p.reason, REASON_WIDTH) if p.reason else ""
        lines.append(f"  {_short_time(p.at, seconds=True)}  {p.kind:<8}  {p.version}{came}{who}")
        if why:
            lines.append(f"      {why}")
    return lines


def _short_time(value: str, *, seconds: bool = False) -> str:
    """``2026-11-22T01:30:12.123+00:00`` -> ``2026-11-22 01:30`` (UTC), as given if unparseable."""
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value or "-"
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return f"{when:%Y-%m-%d %H:%M:%S}" if seconds else f"{when:%Y-%m-%d %H:%M}"


def cmd_models(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError

    from retrain.storage import StorageError

    _use_local_stack(Path(args.root))
    cfg = load_config()
    registry = _registry(cfg)
    metric = cfg.gate.metric
    try:
        versions = registry.list_versions()
        rows = model_rows(registry, metric, args.limit, versions)
        promotions = registry.promotions(limit=args.limit or None)
    except (StorageError, BotoCoreError) as exc:
        print(f"models: cannot read {cfg.storage.bucket!r}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps({"models": rows, "promotions": [p.as_dict() for p in promotions]}, indent=2)
        )
        return 0
    where = registry.storage.uri(registry.prefix)
    print("\n".join(render_models(rows, promotions, metric, len(versions), where)))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError

    from retrain.curation import current_user
    from retrain.registry import ChampionChanged, RollbackRefused, UnknownVersion
    from retrain.storage import StorageError

    _use_local_stack(Path(args.root))
    cfg = load_config()
    registry = _registry(cfg)
    try:
        seen = registry.champion()
        champion = registry.rollback(
            args.version, reason=args.reason, expected=seen, by=current_user()
        )
    except (UnknownVersion, RollbackRefused) as exc:
        print(f"rollback: {exc}; nothing was changed", file=sys.stderr)
        return 1
    except ChampionChanged as exc:
        print(
            f"rollback: the champion moved while rolling back ({exc}); nothing was changed: "
            "see `retrain models` and decide again",
            file=sys.stderr,
        )
        return 1
    except (StorageError, BotoCoreError) as exc:
        print(f"rollback: cannot reach {cfg.storage.bucket!r}: {exc}", file=sys.stderr)
        return 2
    record = registry.promotion_key(champion.promoted_at, champion.kind, champion.version)
    metric = champion.metrics.get(cfg.gate.metric)
    on_holdout = f" ({cfg.gate.metric} {metric:.3f} on its holdout)" if metric is not None else ""
    print(f"rolled back: champion {champion.previous_version} -> {champion.version}{on_holdout}")
    print(f"reason: {champion.reason} (by {champion.by})")
    print(f"recorded in {registry.storage.uri(record)}")
    try:
        from retrain.steps.reporting import publish_index

        publish_index(registry.storage, cfg)
    except (StorageError, BotoCoreError) as exc:
        print(f"(the reports index was not updated: {exc})", file=sys.stderr)
    print(
        f"`retrain predict` scores with {champion.version} from now on; the batch scores under "
        f"{registry.storage.uri(cfg.storage.predictions_prefix)} stay as they were written"
    )
    return 0


def default_predictions_path(path: Path) -> Path:
    """``data/new.csv.gz`` -> ``data/new.predictions.csv``, next to the input."""
    name = path.name
    for suffix in (".csv.gz", ".csv", ".parquet"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}.predictions.csv")


def cmd_predict(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError

    from retrain.steps.scoring import (
        ScoringInputError,
        ScoringRefused,
        champion_model,
        read_file_for_scoring,
        score_frame,
    )
    from retrain.storage import StorageError

    path = Path(args.file)
    if not path.is_file():
        print(f"predict: {path}: no such file", file=sys.stderr)
        return 1
    _use_local_stack(Path(args.root))
    cfg = load_config()
    try:
        features = read_file_for_scoring(path, cfg.dataset)
        champion, model = champion_model(_registry(cfg))
    except (ScoringInputError, ScoringRefused) as exc:
        print(f"predict: {exc}", file=sys.stderr)
        return 1
    except (StorageError, BotoCoreError) as exc:
        print(
            f"predict: cannot read the champion from {cfg.storage.bucket!r}: {exc}", file=sys.stderr
        )
        return 2
    scores = score_frame(model, features, cfg.dataset, champion.version)
    out = Path(args.out) if args.out else default_predictions_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        scores.to_parquet(out, index=False)
    else:
        scores.to_csv(out, index=False)
    metric = champion.metrics.get(cfg.gate.metric)
    on_holdout = f", {cfg.gate.metric} {metric:.3f} on its holdout" if metric is not None else ""
    print(
        f"scored {len(scores)} row(s) of {path} with the champion {champion.version} "
        f"(deployed {champion.deployed_at}{on_holdout})"
    )
    if len(scores):
        s = scores["score"]
        print(
            f"scores: mean {s.mean():.3f}, min {s.min():.3f}, max {s.max():.3f}; "
            f"{int((s >= 0.5).sum())} row(s) at 0.5 or above"
        )
    print(f"wrote {out} ({', '.join(scores.columns)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retrain", description=__doc__)
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="stack folder (default .stack)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="start the stack, drop demo data, follow the runs")
    demo.add_argument("--rounds", type=int, default=len(ROUNDS), choices=range(1, len(ROUNDS) + 1))
    for p in (demo, sub.add_parser("start", help="start the local stack")):
        p.add_argument("--parallelism", type=int, default=4)
        p.add_argument(
            "--profile",
            choices=devstack.PROFILES,
            default="embedded",
            help="embedded (SQLite, LocalExecutor: needs nothing else) or celery (PostgreSQL, "
            f"CeleryExecutor on Redis, two workers; ${devstack.POSTGRES_URL_ENV}, "
            f"${devstack.REDIS_URL_ENV})",
        )
    sub.add_parser("stop", help="stop the local stack")
    st = sub.add_parser(
        "status",
        help="one screen: why no retrain, champion, data, quarantine, runs, incidents, alerts",
    )
    st.add_argument("--json", action="store_true", help="everything as JSON")
    st.add_argument("--days", type=int, default=3, help="quarantined files of this many days")
    st.add_argument("--airflow-url", default="", help="api-server (default: the local stack)")
    al = sub.add_parser("alerts", help="the alerts that arrived on the local stack's queue")
    al.add_argument("--json", action="store_true", help="as JSON")
    rt = sub.add_parser("retract", help="take an accepted file or batch back out, then retrain")
    rt.add_argument("target", help="a raw key, a file name as it landed, or a batch id")
    rt.add_argument("--reason", required=True, help="why (recorded with who and when)")
    rt.add_argument("--no-retrain", action="store_true", help="do not re-emit the features asset")
    rt.add_argument("--airflow-url", default="", help="api-server (default: the local stack)")
    rp = sub.add_parser("replay", help="put a quarantined file back into landing/")
    rp.add_argument("key", help="the quarantined object's key, e.g. quarantine/.../file.csv")
    rp.add_argument("--reason", default="", help="why (recorded with who and when)")
    md = sub.add_parser("models", help="model versions, the gate's verdicts, the promotions")
    md.add_argument("--limit", type=int, default=MODELS_LISTED, help="newest this many (0: all)")
    md.add_argument("--json", action="store_true", help="as JSON")
    rb = sub.add_parser("rollback", help="restore an earlier champion (compare-and-swap)")
    rb.add_argument(
        "version", nargs="?", default=None, help="default: the one the champion replaced"
    )
    rb.add_argument("--reason", required=True, help="why (recorded with who and when)")
    pr = sub.add_parser("predict", help="score a local csv/parquet file with the champion")
    pr.add_argument("file", help="a file in the dataset's raw format (the target is optional)")
    pr.add_argument("--out", default="", help="csv or .parquet (default: FILE.predictions.csv)")
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
        "alerts": cmd_alerts,
        "upload": cmd_upload,
        "retract": cmd_retract,
        "replay": cmd_replay,
        "models": cmd_models,
        "rollback": cmd_rollback,
        "predict": cmd_predict,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
