"""``retrain``: the project's command line (demo, stack, your own data, status, reports, models).

``make demo`` is ``retrain demo``; ``make stop`` is ``retrain stop``. Your own data:
``retrain init --from-sample FILE``, ``retrain config check``, ``retrain start --config``,
``retrain upload FILE ...`` (README, "Run it on your own data").
"""

from __future__ import annotations

import argparse
import sys
import traceback
from types import ModuleType

from retrain.cli import approval, config, curation, models, stack
from retrain.cli.common import DEFAULT_ROOT, CommandError
from retrain.config import ConfigError
from retrain.local import devstack
from retrain.local.demo import ROUNDS

MODELS_LISTED = models.MODELS_LISTED
# Each command's handler: ``cmd_<name>`` of its module, looked up when it runs.
HANDLERS: dict[str, tuple[ModuleType, str]] = {
    "demo": (stack, "cmd_demo"),
    "start": (stack, "cmd_start"),
    "stop": (stack, "cmd_stop"),
    "status": (stack, "cmd_status"),
    "alerts": (stack, "cmd_alerts"),
    "upload": (stack, "cmd_upload"),
    "retract": (curation, "cmd_retract"),
    "replay": (curation, "cmd_replay"),
    "models": (models, "cmd_models"),
    "rollback": (models, "cmd_rollback"),
    "predict": (models, "cmd_predict"),
    "approve": (approval, "cmd_approve"),
    "reject": (approval, "cmd_reject"),
    "init": (config, "cmd_init"),
    "config check": (config, "cmd_config_check"),
}


def parser() -> argparse.ArgumentParser:
    # --root and --debug go before or after the command: `retrain status --root x` works too.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root", default=argparse.SUPPRESS, help="the stack's folder (default .stack)"
    )
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="tracebacks on errors"
    )
    top = argparse.ArgumentParser(prog="retrain", description=__doc__, parents=[common])
    sub = top.add_subparsers(dest="command", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    demo = add("demo", "start the stack, drop demo data, follow the runs")
    demo.add_argument("--rounds", type=int, default=len(ROUNDS), choices=range(1, len(ROUNDS) + 1))
    for p in (demo, add("start", "start the local stack with a config (yours or the demo's)")):
        p.add_argument(
            "--config",
            default="",
            help="the config file (default $RETRAIN_CONFIG, else retrain.toml); the stack keeps "
            "a copy, which every later command on it uses",
        )
        p.add_argument("--parallelism", type=int, default=4)
        p.add_argument(
            "--profile",
            choices=devstack.PROFILES,
            default="embedded",
            help="embedded (SQLite, LocalExecutor: needs nothing else) or celery (PostgreSQL, "
            f"CeleryExecutor on Redis, two workers; ${devstack.POSTGRES_URL_ENV}, "
            f"${devstack.REDIS_URL_ENV})",
        )
    add("stop", "stop the local stack")
    st = add("status", "one screen: why no retrain, champion, data, quarantine, runs, alerts")
    st.add_argument("--json", action="store_true", help="everything as JSON")
    st.add_argument("--days", type=int, default=3, help="quarantined files of this many days")
    st.add_argument("--airflow-url", default="", help="api-server (default: the local stack)")
    al = add("alerts", "the alerts that arrived on the local stack's queue")
    al.add_argument("--json", action="store_true", help="as JSON")
    rt = add("retract", "take an accepted file or batch back out, then retrain")
    rt.add_argument("target", help="a raw key, a file name as it landed, or a batch id")
    rt.add_argument("--reason", required=True, help="why (recorded with who and when)")
    rt.add_argument("--no-retrain", action="store_true", help="do not re-emit the features asset")
    rt.add_argument("--airflow-url", default="", help="api-server (default: the local stack)")
    rp = add("replay", "put a quarantined file back into landing/")
    rp.add_argument("key", help="the quarantined object's key, e.g. quarantine/.../file.csv")
    rp.add_argument("--reason", default="", help="why (recorded with who and when)")
    md = add("models", "model versions, the gate's verdicts, the promotions")
    md.add_argument("--limit", type=int, default=MODELS_LISTED, help="newest this many (0: all)")
    md.add_argument("--json", action="store_true", help="as JSON")
    rb = add("rollback", "restore an earlier champion (compare-and-swap)")
    rb.add_argument(
        "version", nargs="?", default=None, help="default: the one the champion replaced"
    )
    rb.add_argument("--reason", required=True, help="why (recorded with who and when)")
    pr = add("predict", "score a local csv/parquet file with the champion")
    pr.add_argument("file", help="a file in the dataset's raw format (the target is optional)")
    pr.add_argument("--out", default="", help="csv or .parquet (default: FILE.predictions.csv)")
    for name, verb in (("approve", "approve"), ("reject", "reject")):
        ap = add(name, f"{verb} a deploy that waits for a person ([gate] approval)")
        ap.add_argument("version", help="the challenger's version (or its serving refit's)")
        ap.add_argument("--comment", default="", help="why (kept in the approval record)")
        ap.add_argument("--airflow-url", default="", help="api-server (default: the local stack)")
        ap.add_argument(
            "--no-wait", dest="wait", action="store_false", help="do not wait for the outcome"
        )
    up = add(
        "upload",
        "drop files into landing/ and follow them to the deploy decision (exit 0: all "
        "accepted and every run succeeded, 1: a run failed, 3: a file was quarantined)",
    )
    up.add_argument("files", nargs="*", help="csv/parquet files (none: generated demo data)")
    up.add_argument(
        "--no-follow", dest="follow", action="store_false", help="upload and return at once"
    )
    up.add_argument("--scenario", choices=("normal", "drifted", "corrupt"), default="normal")
    up.add_argument("--format", choices=("csv", "parquet"), default="csv")
    up.add_argument("--rows", type=int, default=2000)
    up.add_argument("--seed", type=int, default=1)
    it = add("init", "write a starting config from a sample of your data, to review")
    it.add_argument("--from-sample", required=True, metavar="DATA_FILE", help="csv/parquet")
    it.add_argument("--out", default="retrain.toml", help="where to write it (retrain.toml)")
    it.add_argument("--name", default="", help="the dataset's name (default: the file's stem)")
    it.add_argument("--force", action="store_true", help="replace an existing --out")
    cf = add("config", "check a config without starting anything")
    cf_sub = cf.add_subparsers(dest="config_command", required=True)
    ck = cf_sub.add_parser(
        "check",
        parents=[common],
        help="errors, contradictions and warnings; with --sample, ingest's verdict on a file "
        "(exit 0: valid, 1: not valid, or warnings with --strict, 3: a sample is rejected)",
    )
    ck.add_argument("file", nargs="?", default="", help="default $RETRAIN_CONFIG or retrain.toml")
    ck.add_argument("--sample", action="append", default=[], metavar="DATA_FILE", help="repeatable")
    ck.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # not set_defaults: the shared actions' defaults would then overwrite a --root given first
    args.root = getattr(args, "root", str(DEFAULT_ROOT))
    args.debug = getattr(args, "debug", False)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines as they happen, also in pipes
    name = args.command if args.command != "config" else f"config {args.config_command}"
    module, handler = HANDLERS[name]
    try:
        return getattr(module, handler)(args)
    except Exception as exc:  # one paragraph, not a traceback whose end hides the cause
        if args.debug:
            traceback.print_exc()
        known = isinstance(exc, CommandError | ConfigError | devstack.StackError)
        print(
            f"retrain {name}: {exc if known else f'{type(exc).__name__}: {exc}'}", file=sys.stderr
        )
        if not args.debug and not known:  # a bug, or a fault this code did not foresee
            print("(`retrain --debug ...` shows the traceback)", file=sys.stderr)
        return getattr(exc, "code", 2)


if __name__ == "__main__":
    sys.exit(main())
