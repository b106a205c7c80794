"""One real stack for every end-to-end test: S3-compatible server, Airflow scheduler,
triggerer, dag-processor and api-server on free ports in a temp AIRFLOW_HOME (about 45 s to start
on 2 cores, so the tests share it). Nothing is triggered by hand: files are dropped into
landing/ and the DAGs run by themselves."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrain import devstack
from retrain.config import Config, load_config
from retrain.storage import S3Storage

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FAST = {  # the triggerer polls landing/ every second and settles a batch after 2 s
    "RETRAIN__ORCHESTRATION__POLL_INTERVAL": "1",
    "RETRAIN__ORCHESTRATION__SETTLE_SECONDS": "2",
}


# The shared stack's story starts with its first model (test_stack), then the faults strike;
# the events-mode and alerting tests run on stacks of their own, before the shared one starts.
MODULE_ORDER = ("test_events", "test_alerting", "test_stack", "test_faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end modules in story order (stable within a module), other tests untouched."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if item.path.parent == here]
    rank = {name: n for n, name in enumerate(MODULE_ORDER)}
    ordered = sorted(
        (items[i] for i in slots), key=lambda item: rank.get(item.path.stem, len(rank))
    )
    for i, item in zip(slots, ordered, strict=True):
        items[i] = item


@pytest.fixture(scope="session")
def read_only_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the project tree that cannot be written, as a worker's image would be.

    As root (who ignores file modes) the copy is bind-mounted read-only onto itself; otherwise
    its files and folders lose their write bits.
    """
    tree = tmp_path_factory.mktemp("image") / "project"
    shutil.copytree(
        PROJECT_ROOT,
        tree,
        ignore=lambda _, names: [n for n in names if n in _NOT_THE_TREE or n.endswith(".egg-info")],
    )
    mounted = False
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(tree), str(tree)], check=True)
        mounted = True
        subprocess.run(["mount", "-o", "remount,ro,bind", str(tree)], check=True)
    else:
        for path in [tree, *tree.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
    try:
        yield tree
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(tree)], check=False)
        else:
            for path in [tree, *tree.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, read_only_tree: Path
) -> Iterator[devstack.Stack]:
    """Airflow's parts run from the read-only copy of the tree (DAGs, library, config)."""
    root = tmp_path_factory.mktemp("stack")
    try:
        yield devstack.start(
            root, bucket="retrain-e2e", overrides=FAST, parallelism=4, code_root=read_only_tree
        )
    finally:
        devstack.stop(root)
        assert devstack.load(root) is None


def config_of(stack: devstack.Stack) -> Config:
    """The config the stack's tasks run with (its overrides included)."""
    env = stack.env()
    return load_config(env.get("RETRAIN_CONFIG", Path(stack.code_root) / "retrain.toml"), env=env)


# What a run may write under the checkout: nothing. Snapshots skip what tools keep there.
_NOT_THE_TREE = {".git", ".venv", ".stack", ".pytest_cache", ".ruff_cache", "__pycache__"}


def tree_snapshot(root: Path = PROJECT_ROOT) -> dict[str, tuple[int, int]]:
    """Every file under the project tree: (size, mtime in ns), by relative path."""
    out = {}
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if any(p in _NOT_THE_TREE or p.endswith(".egg-info") for p in parts) or not path.is_file():
            continue
        stat = path.stat()
        out[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return out


def storage_of(stack: devstack.Stack) -> S3Storage:
    env = stack.env()
    return S3Storage.from_config(
        config_of(stack).storage,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="session")
def cfg(stack: devstack.Stack) -> Config:
    return config_of(stack)


@pytest.fixture(scope="session")
def storage(stack: devstack.Stack) -> S3Storage:
    return storage_of(stack)


@contextlib.contextmanager
def explain_failure(stack: devstack.Stack) -> Iterator[None]:
    """A red run prints the logs of the failed Airflow tasks, so CI explains itself."""
    try:
        yield
    except BaseException:
        print(stack.api.failed_task_logs(list(devstack.DAG_IDS), limit_runs=5))
        for name in ("scheduler", "triggerer", "dag-processor"):
            log_path = Path(stack.root) / "logs" / f"{name}.log"
            print(f"--- {name} log tail\n{devstack.tail_log(log_path)}")
        raise


@pytest.fixture
def explain(stack: devstack.Stack):
    """``with explain():`` around the part of a test that waits on the stack."""
    return lambda: explain_failure(stack)
