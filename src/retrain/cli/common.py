"""What the commands share: the local stack they talk to, the config it runs with, its bucket.

A stack started with ``retrain start --config FILE`` keeps a copy of FILE (``devstack.Stack``):
every later command on that stack reads the copy, so no environment variable has to be set
again, and a ``RETRAIN_CONFIG`` with other contents is refused rather than silently mixed in.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from retrain.config import CONFIG_ENV, Config, load_config
from retrain.local import devstack

if TYPE_CHECKING:
    from retrain.airflow_api import AirflowApi
    from retrain.storage import S3Storage

DEFAULT_ROOT = devstack.PROJECT_ROOT / ".stack"


class CommandError(Exception):
    """A command cannot go on: printed as one paragraph (the traceback only with --debug)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def use_stack(root: Path) -> devstack.Stack | None:
    """The stack under ``root``, its environment applied to this process; None without one.

    Raises :class:`CommandError` when ``RETRAIN_CONFIG`` names a config other than the one the
    stack runs with."""
    stack = devstack.load(root)
    if stack is None:
        return None
    if (given := os.environ.get(CONFIG_ENV)) and (
        conflict := devstack.config_conflict(stack, given)
    ):
        raise CommandError(conflict)
    os.environ.update(stack.env())
    return stack


def need_stack(root: Path) -> devstack.Stack:
    if (stack := use_stack(root)) is None:
        raise CommandError(
            f"no stack under {root}: start one (`retrain start --config FILE`, or `make demo`)"
        )
    return stack


def stack_config(root: Path) -> Config:
    """The config of the stack under ``root`` (its copy), else ``RETRAIN_CONFIG`` or
    ``retrain.toml``: the same commands work against a deployment's bucket."""
    use_stack(root)
    return load_config()


def storage(cfg: Config) -> S3Storage:
    from retrain.storage import S3Storage

    return S3Storage.from_config(cfg.storage)


def airflow(args: argparse.Namespace) -> AirflowApi | None:
    """The api-server to talk to: ``--airflow-url``, else the local stack's."""
    from retrain.airflow_api import AirflowApi

    if url := getattr(args, "airflow_url", "") or os.environ.get("RETRAIN_AIRFLOW_URL"):
        return AirflowApi(url, token=os.environ.get("RETRAIN_AIRFLOW_TOKEN"))
    stack = devstack.load(Path(args.root))
    return stack.api if stack else None


def reports_url(stack: devstack.Stack) -> str:
    """The reports index through the Airflow plugin: opens in a browser, behind the login."""
    from retrain.report_links import report_url

    return report_url(stack.api_url, "index.html")


def who(stack: devstack.Stack) -> str:
    if stack.users:
        return f"users {', '.join(stack.users)}; passwords in {stack.airflow_home}/passwords.json"
    return "local stack, all users are admins"
