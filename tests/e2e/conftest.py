"""One real stack per profile for the end-to-end tests: S3-compatible server, Airflow scheduler,
triggerer, dag-processor and api-server on free ports in a temp AIRFLOW_HOME (about 45 s to start
on 2 cores, so the tests share it). Nothing is triggered by hand: files are dropped into
landing/ and the DAGs run by themselves.

Profiles: every test of the shared stack runs on the embedded one (SQLite, LocalExecutor); the
tests marked ``celery`` (the end-to-end story's first batch and the fault tests) run again on
the celery profile (PostgreSQL, CeleryExecutor on Redis, two workers), with a database and a
Redis database number of their own, removed afterwards. That second round is skipped, with the
reason, when PostgreSQL or Redis does not answer (``RETRAIN_POSTGRES_URL``,
``RETRAIN_REDIS_URL``; default 127.0.0.1), and left out with ``RETRAIN_E2E_PROFILES=embedded``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrain.config import Config
from retrain.local import devstack
from retrain.storage import S3Storage

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FAULT_MARKER = "KILL-THIS-TASK"  # a file holding it SIGKILLs its validate task (retrain.faults)
FAST = {  # the triggerer polls landing/ every second and settles a batch after 2 s
    "RETRAIN__ORCHESTRATION__POLL_INTERVAL": "1",
    "RETRAIN__ORCHESTRATION__SETTLE_SECONDS": "2",
    "RETRAIN_FAULT_KILL_ON": FAULT_MARKER,
}


# The shared stack's story starts with its first model (test_stack), then the faults strike;
# the events-mode, alerting and own-data tests run on stacks of their own, before the shared one.
# The whole story on the embedded profile first, then the celery round on a stack of its own.
MODULE_ORDER = (
    "test_events",
    "test_alerting",
    "test_own_data",
    "test_stack",
    "test_reports_ui",
    "test_faults",
)
# The shared stack logs people in with their roles, as a deployment does (not all admins):
# the tooling acts as "admin"; test_reports_ui reads as each.
E2E_USERS = {"admin": "admin", "viewer": "viewer", "nobody": ""}
PROFILES = ("embedded", "celery")
PROFILES_ENV = "RETRAIN_E2E_PROFILES"  # e.g. "embedded" to leave the celery round out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests of the shared stack run per profile: every one on the embedded stack, those
    marked ``celery`` on the celery stack too."""
    if "stack" not in metafunc.fixturenames:
        return
    wanted = os.environ.get(PROFILES_ENV, ",".join(PROFILES)).split(",")
    profiles = ["embedded"]
    if metafunc.definition.get_closest_marker("celery"):
        profiles.append("celery")
    profiles = [p for p in profiles if p in wanted] or ["embedded"]
    metafunc.parametrize("profile", profiles, indirect=True, scope="session")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end modules in story order per profile (stable within a module), other tests
    untouched: one stack of each profile, one after the other."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if item.path.parent == here]
    rank = {name: n for n, name in enumerate(MODULE_ORDER)}

    def key(item: pytest.Item) -> tuple[int, int]:
        callspec = getattr(item, "callspec", None)
        profile = callspec.params.get("profile", "embedded") if callspec else "embedded"
        return PROFILES.index(profile), rank.get(item.path.stem, len(rank))

    ordered = sorted((items[i] for i in slots), key=key)
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
def profile(request: pytest.FixtureRequest) -> str:
    """The profile of the shared stack (parametrized by pytest_generate_tests)."""
    return getattr(request, "param", "embedded")


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, read_only_tree: Path, profile: str
) -> Iterator[devstack.Stack]:
    """Airflow's parts run from the read-only copy of the tree (DAGs, library, config). A
    profile's stack is stopped (its database dropped) before the next profile's starts."""
    if profile == "celery" and (problem := devstack.services_problem(*devstack.service_urls())):
        pytest.skip(f"celery profile not run: {problem}")
    root = tmp_path_factory.mktemp(f"stack-{profile}")
    try:
        yield devstack.start(
            root,
            bucket="retrain-e2e",
            overrides=FAST,
            parallelism=4,
            code_root=read_only_tree,
            profile=profile,
            users=E2E_USERS,
        )
    finally:
        recorded = devstack.load(root)
        devstack.stop(root)
        assert devstack.load(root) is None
        if recorded is not None and recorded.database:
            assert not database_exists(recorded), f"{recorded.database} was not dropped"


def database_exists(stack: devstack.Stack) -> bool:
    """Whether the celery stack's own database is still on the PostgreSQL server."""
    import psycopg2

    conn = psycopg2.connect(stack.postgres_url, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (stack.database,))
            return cur.fetchone() is not None
    finally:
        conn.close()


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


@pytest.fixture(scope="session")
def cfg(stack: devstack.Stack) -> Config:
    return stack.config()


@pytest.fixture(scope="session")
def storage(stack: devstack.Stack) -> S3Storage:
    return stack.storage()


@contextlib.contextmanager
def explain_failure(stack: devstack.Stack) -> Iterator[None]:
    """A red run prints the logs of the failed Airflow tasks, so CI explains itself."""
    try:
        yield
    except BaseException:
        print(stack.api.failed_task_logs(list(devstack.DAG_IDS), limit_runs=5))
        for name in (n for n in stack.components if n != "api-server"):  # + Celery workers
            log_path = Path(stack.root) / "logs" / f"{name}.log"
            print(f"--- {name} log tail\n{devstack.tail_log(log_path)}")
        raise


@pytest.fixture
def explain(stack: devstack.Stack):
    """``with explain():`` around the part of a test that waits on the stack."""
    return lambda: explain_failure(stack)
