"""The local stack: an S3-compatible server and Airflow's parts, on 127.0.0.1 only.

Two profiles, the same DAGs (only configuration differs):

- ``embedded`` (the default, ``make demo``): SQLite and LocalExecutor; needs nothing else;
- ``celery`` (``retrain start --profile celery``): Airflow's metadata on PostgreSQL, CeleryExecutor
  with Redis as its broker, two Celery workers beside the scheduler, dag-processor, triggerer
  and api-server. Each stack gets a database of its own on the PostgreSQL server
  (``retrain_<random>``) and a Redis database number of its own, both removed by ``stop``, so
  stacks never collide.

``make demo`` and the end-to-end tests start stacks through this module, each in its own root
folder (``.stack/`` for the demo, a temp folder for a test) and on its own ports, so a test can
run beside a live demo. Every process is started in a new session and its pid recorded, so
``stop`` can end the whole process group and leave nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrain.airflow_api import AirflowApi, AirflowApiError
from retrain.config import CONFIG_ENV
from retrain.local import stack_users
from retrain.local.s3server import free_port, start_s3_server

if TYPE_CHECKING:
    from retrain.config import Config
    from retrain.storage import S3Storage

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DAG_IDS = ("ingest", "features", "retrain", "score", "approve")  # started by data
WATCHDOG_DAG_ID = "watchdog"  # monitoring on a timer
# What `airflow standalone` runs, started one by one so that the log servers (which bind every
# interface) can be left out: on one machine the api-server reads task logs from local files.
AIRFLOW_COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
PROFILES = ("embedded", "celery")
# The celery profile's workers: two, each serving both queues with 2 task processes (4 task slots
# on 2 cores, as the embedded stack's parallelism); the heavy pool, not the queue, bounds how
# many of those slots heavy work takes (README, "Beyond one machine").
CELERY_WORKERS = ("worker-1", "worker-2")
CELERY_CONCURRENCY = 2
# Where the celery profile finds its services: a PostgreSQL URL whose user may create databases
# (its database is only the one to connect to for that) and a Redis server.
POSTGRES_URL_ENV = "RETRAIN_POSTGRES_URL"
REDIS_URL_ENV = "RETRAIN_REDIS_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
REDIS_CLAIM_KEY = "retrain:stack"  # marks a Redis database number as taken by one stack
STATE_FILE = "stack.json"
# Test credentials of the local S3-compatible server; it accepts any pair.
LOCAL_KEY_ID = "local-stack"
LOCAL_SECRET = "local-stack-secret"


TASK_HEARTBEAT_TIMEOUT_S = 60  # [scheduler] task_instance_heartbeat_timeout of local stacks
ORPHANS_CHECK_S = 15  # [scheduler] orphaned_tasks_check_interval of local stacks


class StackError(RuntimeError):
    """The stack did not start, or is not running."""


class ServicesUnavailable(StackError):
    """The celery profile's PostgreSQL or Redis does not answer."""


@dataclass(frozen=True)
class Stack:
    """Where a running stack lives; saved as ``<root>/stack.json``."""

    root: str
    s3_endpoint: str
    api_url: str
    bucket: str
    pids: dict[str, int]
    ports: dict[str, int]
    # What Airflow was started with, so a component restarted later gets the same environment
    # (defaults keep a stack.json written before these fields loadable).
    parallelism: int = 4
    overrides: dict[str, str] = field(default_factory=dict)
    # The SQS queue subscribed to the alerts topic (what `retrain alerts` reads).
    alerts_queue_url: str = ""
    # The project tree Airflow's parts import the DAGs, the library and the config from.
    code_root: str = str(PROJECT_ROOT)
    # Events mode: the SQS queue the bucket notifies about landing/ objects ("" when polling).
    landing_queue_url: str = ""
    # "embedded" or "celery"; for celery, the PostgreSQL server (its maintenance URL) with this
    # stack's own database on it, and the Redis server with this stack's own database number.
    profile: str = "embedded"
    postgres_url: str = ""
    database: str = ""
    redis_url: str = ""
    redis_db: int = -1
    # Named users (name -> role, retrain.local.stack_users) instead of everyone an admin.
    users: dict[str, str] = field(default_factory=dict)
    # The config the stack runs with: a copy taken at its start (under ``root``, so an edit of
    # the original changes nothing until a restart), where it was copied from, and its hash.
    config_path: str = ""
    config_source: str = ""
    config_sha256: str = ""

    @property
    def components(self) -> dict[str, list[str]]:
        """The Airflow processes of this stack's profile, by name, with their arguments."""
        return components(self.profile, Path(self.root), self.queues)

    @property
    def queues(self) -> tuple[str, ...]:
        """The Celery queues the workers serve (the config's default and heavy queue)."""
        res = _stack_config(self.overrides, Path(self.code_root)).resources
        return (res.default_queue, res.heavy_queue)

    def profile_env(self) -> dict[str, str]:
        """What Airflow is told about the profile (see :func:`profile_env`)."""
        return profile_env(
            self.profile,
            Path(self.root),
            postgres_url=self.postgres_url,
            database=self.database,
            redis_url=self.redis_url,
            redis_db=self.redis_db,
            default_queue=self.queues[0],
        )

    def airflow_env(self) -> dict[str, str]:
        """The environment of this stack's Airflow components (see :func:`airflow_env`): one
        place, so that starting and restarting a component cannot differ."""
        return airflow_env(
            Path(self.root),
            s3_endpoint=self.s3_endpoint,
            bucket=self.bucket,
            ports=self.ports,
            parallelism=self.parallelism,
            overrides=self.overrides,
            code_root=Path(self.code_root),
            profile=self.profile_env(),
            users=self.users,
        )

    @property
    def api(self) -> AirflowApi:
        """The REST API as the tooling calls it: with named users, as the first admin."""
        admin = stack_users.admin_of(self.users)
        if not admin:
            return AirflowApi(self.api_url)
        return AirflowApi(self.api_url, token=lambda: self.token(admin))  # at its first call

    def token(self, user: str) -> str:
        """A JWT of one of the stack's named users (as that user logs in)."""
        return stack_users.token(self.api_url, user, stack_users.password(self.airflow_home, user))

    @property
    def airflow_home(self) -> Path:
        return Path(self.root) / "airflow"

    def env(self) -> dict[str, str]:
        """Environment for clients of this stack (CLI, tests): where the bucket is, and the
        config overrides the stack runs with (e.g. its alerts topic)."""
        return {
            **{
                k: v
                for k, v in self.overrides.items()
                if k.startswith("RETRAIN__") or k == "RETRAIN_CONFIG"
            },
            "RETRAIN__STORAGE__ENDPOINT_URL": self.s3_endpoint,
            "RETRAIN__STORAGE__BUCKET": self.bucket,
            "AWS_ACCESS_KEY_ID": LOCAL_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET,
        }

    def config(self) -> Config:
        """The config the stack's tasks run with (its overrides included)."""
        from retrain.config import load_config

        env = self.env()
        path = env.get("RETRAIN_CONFIG", str(Path(self.code_root) / "retrain.toml"))
        return load_config(path, env=env)

    def storage(self) -> S3Storage:
        """The stack's bucket, reached with the stack's local credentials."""
        from retrain.storage import S3Storage

        return S3Storage.from_config(
            self.config().storage,
            aws_access_key_id=LOCAL_KEY_ID,
            aws_secret_access_key=LOCAL_SECRET,
        )


def airflow_env(
    root: Path,
    *,
    s3_endpoint: str,
    bucket: str,
    ports: dict[str, int],
    parallelism: int = 4,
    overrides: dict[str, str] | None = None,
    code_root: Path = PROJECT_ROOT,
    profile: dict[str, str] | None = None,
    users: dict[str, str] | None = None,
) -> dict[str, str]:
    """The whole configuration of the local Airflow: env vars only, nothing written to the repo.

    ``code_root`` is the project tree the components run from (DAG folder, library, config):
    the checkout by default, or a read-only copy of it, as workers run from an image. Its
    ``src`` and root go first on PYTHONPATH, ahead of the checkout's editable install.
    ``profile`` is :func:`profile_env`'s answer for the celery profile (executor, database,
    broker); without it, the embedded profile (SQLite under ``root``, LocalExecutor).
    """
    venv_bin = str(Path(sys.executable).parent)
    conn = {
        "conn_type": "aws",
        "login": LOCAL_KEY_ID,
        "password": LOCAL_SECRET,
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }
    env = dict(os.environ)
    env.update(
        {
            # `airflow standalone` starts its parts by calling `airflow` from PATH.
            "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(code_root / "dags"),
            "PYTHONPATH": os.pathsep.join(
                [str(code_root / "src"), str(code_root), *filter(None, [env.get("PYTHONPATH")])]
            ),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(ports["api"]),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{ports['api']}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ports['api']}/execution/",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_log"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_log"]),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # A task whose supervisor died stays "running", and what follows it waits, until
            # Airflow notices (README, "Deploying"). With its scheduler alive: when its heartbeat
            # is this old (default 300 s; supervisors beat every 5 s, so a minute is twelve
            # missed beats). With the scheduler dead too (LocalExecutor's workers are its
            # children): when the next scheduler looks for orphans of dead schedulers (default
            # every 300 s), which resets them to run again.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT_S),
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": str(ORPHANS_CHECK_S),
            "AIRFLOW_CONN_RETRAIN_S3": json.dumps(conn),
            "RETRAIN_CONFIG": env.get("RETRAIN_CONFIG", str(code_root / "retrain.toml")),
            "RETRAIN__STORAGE__ENDPOINT_URL": s3_endpoint,
            "RETRAIN__STORAGE__BUCKET": bucket,
            "RETRAIN__ORCHESTRATION__AWS_CONN_ID": "retrain_s3",
            "AWS_ACCESS_KEY_ID": LOCAL_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_COLOR": "1",
        }
    )
    env.update(stack_users.airflow_env(root / "airflow", users or {}))
    env.update(profile or {})
    env.update(overrides or {})
    # Airflow's own StatsD metrics go where the pipeline's go ([metrics], off by default).
    from retrain.config import load_config
    from retrain.metrics import airflow_statsd_env

    env.update(airflow_statsd_env(load_config(env["RETRAIN_CONFIG"], env=env).metrics))
    return env


def components(
    profile: str, root: Path, queues: tuple[str, ...] = ("default", "heavy")
) -> dict[str, list[str]]:
    """The Airflow processes a stack of ``profile`` runs (name: arguments of ``airflow``)."""
    if profile not in PROFILES:
        raise StackError(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}")
    if profile == "embedded":
        return dict(AIRFLOW_COMPONENTS)
    workers = {
        name: [
            "celery",
            "worker",
            "--queues",
            ",".join(dict.fromkeys(queues)),
            "--concurrency",
            str(CELERY_CONCURRENCY),
            "--celery-hostname",
            f"{name}@%h",
            # the log server binds every interface; on one machine the api-server reads the
            # task logs from local files, as with the embedded stack
            "--skip-serve-logs",
            "--pid",
            str(root / "airflow" / f"{name}.pid"),
        ]
        for name in CELERY_WORKERS
    }
    return {**AIRFLOW_COMPONENTS, **workers}


def profile_env(
    profile: str,
    root: Path,
    *,
    postgres_url: str = "",
    database: str = "",
    redis_url: str = "",
    redis_db: int = -1,
    default_queue: str = "default",
) -> dict[str, str]:
    """Airflow's settings for ``profile``: nothing for the embedded one; for celery, the
    metadata database (this stack's own on the PostgreSQL server, also Celery's result
    backend), CeleryExecutor with this stack's Redis database as broker, the default queue."""
    if profile == "embedded":
        return {}
    sql = database_url(postgres_url, database)
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql,
        # 4 components and 2 workers on one server: small pools keep a stack at ~30 connections
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "6",
        "AIRFLOW__CELERY__BROKER_URL": f"{redis_url.rstrip('/')}/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{sql}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CELERY_CONCURRENCY),
        # a message not acknowledged within this long is delivered again (a dead worker's)
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": default_queue,
    }


def database_url(postgres_url: str, database: str) -> str:
    """Airflow's SQLAlchemy URL for ``database`` on the server of ``postgres_url`` (psycopg2)."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(drivername="postgresql+psycopg2", database=database)
    return url.render_as_string(hide_password=False)


def service_urls(env: dict[str, str] | None = None) -> tuple[str, str]:
    """(PostgreSQL URL, Redis URL) for the celery profile: the environment's, else 127.0.0.1."""
    env = os.environ if env is None else env
    return (
        env.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL,
        env.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL,
    )


def services_problem(postgres_url: str, redis_url: str, timeout: float = 3.0) -> str | None:
    """Why the celery profile cannot start here (PostgreSQL or Redis not answering, or the
    user may not create databases), or None when both answer."""
    problems = []
    try:
        with contextlib.closing(_pg_connect(postgres_url, timeout)) as conn, conn.cursor() as cur:
            cur.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
            row = cur.fetchone()
            if not row or not row[0]:
                problems.append(
                    f"PostgreSQL at {_safe(postgres_url)}: the user may not CREATE DATABASE"
                )
    except Exception as exc:  # any driver error means: not usable
        problems.append(f"PostgreSQL at {_safe(postgres_url)} does not answer: {_first_line(exc)}")
    try:
        import redis

        redis.Redis.from_url(redis_url, socket_connect_timeout=timeout).ping()
    except Exception as exc:
        problems.append(f"Redis at {_safe(redis_url)} does not answer: {_first_line(exc)}")
    if not problems:
        return None
    return (
        "the celery profile needs PostgreSQL and Redis: "
        + "; ".join(problems)
        + f". Start them, or point {POSTGRES_URL_ENV} (a user that may create databases) and "
        f"{REDIS_URL_ENV} at running ones; the embedded profile (`retrain start`, `make demo`) "
        "needs neither."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _safe(url: str) -> str:
    """A service URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _pg_connect(postgres_url: str, timeout: float = 5.0):
    import psycopg2

    conn = psycopg2.connect(postgres_url, connect_timeout=max(1, int(timeout)))
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return conn


def create_database(postgres_url: str) -> str:
    """A new, empty database ``retrain_<random>`` on the server; returns its name."""
    name = f"retrain_{secrets.token_hex(6)}"
    with contextlib.closing(_pg_connect(postgres_url)) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(postgres_url: str, name: str) -> None:
    """Drop a stack's database (ending whatever still holds a connection to it)."""
    if not name.startswith("retrain_") or not name.replace("_", "").isalnum():
        raise ValueError(f"not a stack database: {name!r}")
    with contextlib.closing(_pg_connect(postgres_url)) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_server(url: str) -> str:
    """``redis://host:port`` of a Redis URL (any database number in it dropped: each stack
    claims its own)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def claim_redis_db(redis_url: str, owner: str, postgres_url: str | None = None) -> int:
    """An empty Redis database number (1..15) for this stack alone, marked with ``owner`` (its
    PostgreSQL database) and the time. With ``postgres_url``, a claim left by a stack that was
    killed without ``retrain stop`` (older than :data:`STALE_CLAIM_SECONDS`, its database gone or
    without a connection) is taken back, and that database dropped: hard kills leak nothing for
    long."""
    import redis

    base = redis.Redis.from_url(redis_url, db=0)
    try:
        count = int(base.config_get("databases").get("databases", 16))
    except redis.ResponseError:  # CONFIG disabled: Redis' default
        count = 16
    claim = f"{owner} {int(time.time())}"
    for db in range(1, count):
        client = redis.Redis.from_url(redis_url, db=db)
        if client.set(REDIS_CLAIM_KEY, claim, nx=True):
            if client.dbsize() == 1:  # nothing but our claim: empty, ours
                return db
            client.delete(REDIS_CLAIM_KEY)  # someone else's data lives there
        elif (
            postgres_url
            and _abandoned(stale := client.get(REDIS_CLAIM_KEY), postgres_url)
            and _take_over(client, stale, claim)
        ):
            if (stale_owner := _claim_owner(stale)).startswith("retrain_"):
                drop_database(postgres_url, stale_owner)
            return db
    raise ServicesUnavailable(
        f"no free Redis database at {_safe(redis_url)} (1..{count - 1} are all in use)"
    )


STALE_CLAIM_SECONDS = 600  # a stack starts in well under this; its database is in use after


def _take_over(client, stale: bytes, claim: str) -> bool:
    """Empty a database and claim it, atomically, only if its claim is still ``stale`` (two
    stacks starting at once must not both take it)."""
    import redis

    with client.pipeline() as pipe:
        try:
            pipe.watch(REDIS_CLAIM_KEY)
            if pipe.get(REDIS_CLAIM_KEY) != stale:
                return False
            pipe.multi()
            pipe.flushdb()
            pipe.set(REDIS_CLAIM_KEY, claim)
            pipe.execute()
        except redis.WatchError:
            return False
    return True


def _claim_owner(raw: bytes | None) -> str:
    return raw.decode().split(" ", 1)[0] if raw else ""


def _abandoned(raw: bytes | None, postgres_url: str, now: float | None = None) -> bool:
    """Whether a Redis claim belongs to a stack that is gone: claimed long enough ago and its
    database has no session (a live stack's scheduler and workers always hold some)."""
    if not raw:
        return False
    owner, _, since = raw.decode().partition(" ")
    try:
        age = (now if now is not None else time.time()) - float(since)
    except ValueError:  # a claim from before claims carried their time
        age = float("inf")
    if age < STALE_CLAIM_SECONDS:
        return False
    with contextlib.closing(_pg_connect(postgres_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (owner,))
        return cur.fetchone()[0] == 0


def release_redis_db(redis_url: str, db: int, owner: str) -> None:
    """Empty a stack's Redis database, if it is still marked as that stack's."""
    import redis

    client = redis.Redis.from_url(redis_url, db=db)
    if _claim_owner(client.get(REDIS_CLAIM_KEY)) == owner:
        client.flushdb()


def _spawn(cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(cwd),
        )
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still answers kill(0): reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def wait_for(predicate, timeout: float, interval: float = 1.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def load(root: Path) -> Stack | None:
    path = root / STATE_FILE
    if not path.exists():
        return None
    return Stack(**json.loads(path.read_text()))


def running(root: Path) -> Stack | None:
    """The stack under ``root`` if all its processes are alive and Airflow answers."""
    stack = load(root)
    if stack is None or not all(_alive(pid) for pid in stack.pids.values()):
        return None
    return stack if stack.api.is_healthy() else None


def config_file(overrides: dict[str, str] | None = None, code_root: Path = PROJECT_ROOT) -> Path:
    """The config a stack starts with: ``RETRAIN_CONFIG`` of ``overrides``, else of the
    environment, else the project's ``retrain.toml``."""
    given = (overrides or {}).get(CONFIG_ENV) or os.environ.get(CONFIG_ENV)
    return Path(given).resolve() if given else code_root / "retrain.toml"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def config_conflict(stack: Stack, given: str | Path, named: str = "") -> str | None:
    """Why ``given`` (a ``RETRAIN_CONFIG``) cannot be used with ``stack``, or None: it is the
    stack's own copy or has the same bytes. The stack's tasks read its copy, so a command reading
    another config would show and do things the pipeline does not."""
    if not stack.config_sha256:
        return None
    path = Path(given)
    if path.resolve() == Path(stack.config_path).resolve():
        return None
    try:
        if file_sha256(path) == stack.config_sha256:
            return None
        differs = "differs from"
    except OSError as exc:
        differs = f"cannot be read ({exc.strerror or exc}), so it cannot be compared with"
    how = f"Unset {CONFIG_ENV} to use the stack's config, or restart" if not named else "Restart"
    return (
        f"{named or f'{CONFIG_ENV}={given}'} {differs} the config the stack under {stack.root} "
        f"runs with ({stack.config_path}, copied from {stack.config_source} when it started). "
        f"{how} the stack with yours: `retrain stop`, then `retrain start --config {given}`"
    )


def start(
    root: Path,
    *,
    bucket: str | None = None,
    config: Path | None = None,
    ports: dict[str, int] | None = None,
    parallelism: int = 4,
    overrides: dict[str, str] | None = None,
    code_root: Path = PROJECT_ROOT,
    ready_timeout: float = 300.0,
    profile: str = "embedded",
    users: dict[str, str] | None = None,
    log=print,
) -> Stack:
    """Start the S3-compatible server and Airflow's parts; return once DAGs are loaded.

    ``users`` (name -> role) logs people in with their own roles instead of making everyone
    an admin (:mod:`retrain.local.stack_users`; the tooling acts as the first admin).

    ``config`` (default :func:`config_file`) is copied under ``root`` and the stack runs with
    the copy; ``bucket`` (default: the config's ``[storage] bucket``) is created on the local
    S3-compatible server. A running stack is returned as it is, unless ``config`` names a file
    with other contents than the stack's copy (:class:`StackError`).

    Airflow's parts run from ``code_root`` (see :func:`airflow_env`) with it as their working
    directory; they write only under ``root``, into the bucket and, with the celery profile,
    into this stack's own PostgreSQL database and Redis database number (see the module's
    docstring). The heavy pool is created with ``[resources] heavy_pool_slots`` either way.
    """
    root, code_root = root.resolve(), code_root.resolve()
    if profile not in PROFILES:
        raise StackError(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}")
    explicit = config or (overrides or {}).get(CONFIG_ENV) or os.environ.get(CONFIG_ENV)
    source = Path(config).resolve() if config else config_file(overrides, code_root)
    if existing := running(root):
        if existing.profile != profile:
            raise StackError(
                f"a stack of the {existing.profile} profile is running under {root}: stop it "
                f"first (`retrain stop`, `make stop`) or give the {profile} one another --root"
            )
        if explicit and (conflict := config_conflict(existing, source, f"the config {source}")):
            raise StackError(f"a stack is running already: {conflict}")
        log(f"stack already running (api {existing.api_url}, s3 {existing.s3_endpoint})")
        return existing
    stop(root, log=lambda *_: None)  # leftovers of a crashed stack
    services: dict[str, Any] = {}
    if profile == "celery":
        postgres_url, redis_url = service_urls()
        redis_url = redis_server(redis_url)
        if problem := services_problem(postgres_url, redis_url):
            raise ServicesUnavailable(problem)
        services = {"postgres_url": postgres_url, "redis_url": redis_url}
    copy = root / "config" / "retrain.toml"
    copy.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(source, copy)
    except OSError as exc:
        raise StackError(f"cannot read the config {source}: {exc.strerror or exc}") from exc
    overrides = {**(overrides or {}), CONFIG_ENV: str(copy)}
    bucket = bucket or _stack_config(overrides, code_root).storage.bucket
    ports = {name: free_port() for name in ("s3", "api", "worker_log", "trigger_log")} | (
        ports or {}
    )
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    s3_endpoint = f"http://127.0.0.1:{ports['s3']}"
    pids: dict[str, int] = {}
    try:
        if services:
            services["database"] = create_database(services["postgres_url"])
            services["redis_db"] = claim_redis_db(
                services["redis_url"], services["database"], services["postgres_url"]
            )
            log(
                f"celery profile: Airflow's database {services['database']} on "
                f"{_safe(services['postgres_url'])}, broker {services['redis_url']}/"
                f"{services['redis_db']}, workers {', '.join(CELERY_WORKERS)}"
            )
        log(f"starting S3-compatible server on {s3_endpoint} (also SNS and SQS, for alerts)")
        pids["s3"] = start_s3_server(ports["s3"], log_path=logs / "s3.log").pid
        _create_bucket(s3_endpoint, bucket)
        topic_arn, queue_url = _create_alert_channel(s3_endpoint, f"{bucket}-alerts")
        overrides = {
            "RETRAIN__ALERTS__NOTIFIER": "sns",
            "RETRAIN__ALERTS__SNS_TOPIC_ARN": topic_arn,
            **(overrides or {}),
        }
        landing_queue_url = ""
        arrival, landing_prefix = _arrival_of(overrides, code_root)
        if arrival == "events":
            landing_queue_url = _create_landing_notifications(
                s3_endpoint, bucket, landing_prefix, f"{bucket}-landing"
            )
            overrides["RETRAIN__ORCHESTRATION__QUEUE_URL"] = landing_queue_url
            log(f"arrival by events: s3://{bucket}/{landing_prefix} notifies {landing_queue_url}")
        stack = Stack(
            root=str(root),
            s3_endpoint=s3_endpoint,
            api_url=f"http://127.0.0.1:{ports['api']}",
            bucket=bucket,
            pids=pids,
            ports=ports,
            parallelism=parallelism,
            overrides=overrides,
            alerts_queue_url=queue_url,
            code_root=str(code_root),
            landing_queue_url=landing_queue_url,
            profile=profile,
            users=dict(users or {}),
            config_path=str(copy),
            config_source=str(source),
            config_sha256=file_sha256(copy),
            **services,
        )
        if users:
            if not stack_users.admin_of(users):
                raise StackError("named users need an admin among them (the tooling's user)")
            stack_users.write_passwords(stack.airflow_home, users)
        _save(stack)  # `stop` ends its processes (pids fills in below) and drops its database
        env = stack.airflow_env()
        log(
            f"starting Airflow ({profile}) on http://127.0.0.1:{ports['api']} "
            f"(AIRFLOW_HOME={root / 'airflow'})"
        )
        _migrate_db(env, logs / "airflow-db.log")
        for name, args in stack.components.items():
            pids[name] = _spawn([_airflow_bin(), *args], env, logs / f"{name}.log", code_root)
        _save(stack)
        _wait_airflow(stack, ready_timeout, logs, log)
        ensure_pool(stack)
    except BaseException:
        _kill_groups(pids)
        _release(
            **{"postgres_url": "", "database": "", "redis_url": "", "redis_db": -1, **services}
        )
        (root / STATE_FILE).unlink(missing_ok=True)
        raise
    return stack


def _save(stack: Stack) -> None:
    (Path(stack.root) / STATE_FILE).write_text(json.dumps(asdict(stack), indent=2))


def restart(stack: Stack, name: str, *, ready_timeout: float = 120.0) -> Stack:
    """Start the Airflow component ``name`` again, as :func:`start` did; return the new record.

    For fault tests and operators: whatever is left of the old process group is stopped first,
    the new pid is written to ``stack.json`` (so :func:`stop` still ends everything), and this
    returns once the process is up and the api-server reports every component healthy.
    """
    parts = stack.components
    if name not in parts:
        raise ValueError(f"cannot restart {name!r}: one of {', '.join(parts)}")
    root = Path(stack.root)
    _kill_groups({name: stack.pids[name]})
    env = stack.airflow_env()
    log_path = root / "logs" / f"{name}.log"
    since = datetime.now(UTC)
    pid = _spawn([_airflow_bin(), *parts[name]], env, log_path, Path(stack.code_root))
    restarted = replace(stack, pids={**stack.pids, name: pid})
    _save(restarted)

    def ready() -> bool:
        if not _alive(pid):
            raise StackError(f"{name} exited after restart:\n{tail_log(log_path)}")
        try:
            health = restarted.api.health()
        except AirflowApiError:
            return False
        return restarted.api.is_healthy() and heartbeat_since(health, name, since)

    wait_for(ready, timeout=ready_timeout, interval=1.0, what=f"{name} to be healthy again")
    return restarted


def heartbeat_since(health: dict, name: str, since: datetime) -> bool:
    """Whether the health answer shows a heartbeat of component ``name`` at or after ``since``:
    a component killed moments ago still counts as healthy until its last heartbeat ages out,
    so only a fresh heartbeat proves the new process runs. Components without one (the
    api-server) answer at all or not."""
    part = name.replace("-", "_")
    if part not in health or part == "metadatabase":
        return True
    beat = (health.get(part) or {}).get(f"latest_{part}_heartbeat")
    if not beat:
        return False
    when = datetime.fromisoformat(beat)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)) >= since


def _airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def _migrate_db(env: dict[str, str], log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        done = subprocess.run(
            [_airflow_bin(), "db", "migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        raise StackError(f"airflow db migrate failed:\n{tail_log(log_path)}")


def _create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=LOCAL_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET,
    )
    client.create_bucket(Bucket=bucket)  # answers 200 when it exists already, as on AWS


def _local_clients(endpoint: str, *services: str) -> list[Any]:
    """boto3 clients for the local server, with its dummy credentials."""
    import boto3

    kwargs = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": LOCAL_KEY_ID,
        "aws_secret_access_key": LOCAL_SECRET,
    }
    return [boto3.client(service, **kwargs) for service in services]


def _create_queue(sqs: Any, name: str) -> tuple[str, str]:
    """The queue ``name`` (idempotent, as on AWS): (URL, ARN)."""
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return queue_url, attrs["Attributes"]["QueueArn"]


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Messages in the queue, visible or in flight (SQS's approximate counts)."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def _create_alert_channel(endpoint: str, name: str) -> tuple[str, str]:
    """An SNS topic with an SQS queue subscribed, on the local server: alerts travel as they
    would on AWS, and `retrain alerts` reads what arrived. Returns (topic ARN, queue URL)."""
    sns, sqs = _local_clients(endpoint, "sns", "sqs")
    topic_arn = sns.create_topic(Name=name)["TopicArn"]  # idempotent, as on AWS
    queue_url, queue_arn = _create_queue(sqs, name)
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return topic_arn, queue_url


def _stack_config(overrides: dict[str, str], code_root: Path):
    """The config a stack's tasks run with (the events-mode queue URL, which the stack itself
    provides, may still be missing)."""
    from retrain.config import load_config

    env = {**os.environ, **overrides}
    env.setdefault("RETRAIN__ORCHESTRATION__QUEUE_URL", "pending: the local stack creates it")
    return load_config(env.get("RETRAIN_CONFIG", str(code_root / "retrain.toml")), env=env)


def _arrival_of(overrides: dict[str, str], code_root: Path) -> tuple[str, str]:
    """The stack's ``[orchestration] arrival`` and landing prefix."""
    cfg = _stack_config(overrides, code_root)
    return cfg.orchestration.arrival, cfg.storage.landing_prefix


def ensure_pool(stack: Stack) -> dict[str, Any]:
    """The heavy pool with ``[resources] heavy_pool_slots`` (created, or resized when a stack
    restarted on its old database has another size): a task in a missing pool never runs."""
    import urllib.request

    res = _stack_config(stack.overrides, Path(stack.code_root)).resources
    body = {
        "name": res.heavy_pool,
        "slots": res.heavy_pool_slots,
        "description": "heavy tasks ([resources] in the config): training, large validations",
        "include_deferred": False,
    }
    try:
        pool = stack.api.get_json(f"/api/v2/pools/{res.heavy_pool}")
    except AirflowApiError as exc:
        if "HTTP 404" not in str(exc):
            raise
        return stack.api.post_json("/api/v2/pools", body)
    if pool.get("slots") == res.heavy_pool_slots:
        return pool
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token := stack.api.bearer():
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{stack.api_url}/api/v2/pools/{res.heavy_pool}",
        data=json.dumps({"pool": res.heavy_pool, "slots": res.heavy_pool_slots}).encode(),
        headers=headers,
        method="PATCH",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _create_landing_notifications(endpoint: str, bucket: str, prefix: str, name: str) -> str:
    """Events mode: an SQS queue receiving the bucket's ObjectCreated notifications for
    ``prefix``, on the local server (which delivers them as AWS does: an ``s3:TestEvent`` first,
    keys URL-encoded). Returns the queue URL."""
    s3, sqs = _local_clients(endpoint, "s3", "sqs")
    queue_url, queue_arn = _create_queue(sqs, name)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration=landing_notification(queue_arn, prefix),
    )
    return queue_url


def landing_notification(queue_arn: str, prefix: str) -> dict:
    """The bucket notification configuration events mode needs: every created object under
    ``prefix`` into the queue (what terraform/ provisions on AWS)."""
    return {
        "QueueConfigurations": [
            {
                "Id": "retrain-landing",
                "QueueArn": queue_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
            }
        ]
    }


def _wait_airflow(stack: Stack, timeout: float, logs: Path, log) -> None:
    api = stack.api
    started = time.monotonic()

    def ready() -> bool:
        for name, pid in stack.pids.items():
            if not _alive(pid):
                raise StackError(f"{name} exited:\n{tail_log(logs / f'{name}.log')}")
        if not api.is_healthy():
            return False
        if errors := api.import_errors():
            raise StackError(f"DAG import errors: {json.dumps(errors, indent=2)[:4000]}")
        return {*DAG_IDS, WATCHDOG_DAG_ID} <= set(api.dag_ids())

    try:
        wait_for(ready, timeout=timeout, interval=1.0, what="Airflow to load the DAGs")
    except TimeoutError as exc:
        tails = "\n".join(f"--- {n}\n{tail_log(logs / f'{n}.log', 20)}" for n in stack.components)
        raise StackError(f"{exc}\n{tails}") from exc
    dags = ", ".join((*DAG_IDS, WATCHDOG_DAG_ID))
    log(f"Airflow ready in {time.monotonic() - started:.0f}s: DAGs {dags}")


def tail_log(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


def _kill_groups(pids: dict[str, int], grace: float = 20.0) -> list[int]:
    """SIGTERM each process group, then SIGKILL whatever is left after ``grace`` seconds."""
    targets = [pid for pid in pids.values() if pid]
    _signal_groups(targets, signal.SIGTERM)

    def groups_gone() -> bool:
        return not any(_group_alive(pid) for pid in targets)

    try:
        wait_for(groups_gone, timeout=grace, interval=0.2, what="the stack to stop")
    except TimeoutError:
        _signal_groups(targets, signal.SIGKILL)
        wait_for(groups_gone, timeout=10, interval=0.2, what="the stack to die")
    return targets


def _signal_groups(pgids: list[int], sig: int) -> None:
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    _alive(pgid)  # reaps the leader if it is our zombie
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state ppid pgrp ...; a zombie ('Z') is gone for our purposes
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop(root: Path, log=print) -> list[int]:
    """Stop the stack under ``root`` by its recorded pids (their whole process groups)."""
    stack = load(root.resolve())
    if stack is None:
        log(f"no stack recorded under {root}")
        return []
    killed = _kill_groups(stack.pids)
    released = _release_services(stack)
    (root.resolve() / STATE_FILE).unlink(missing_ok=True)
    log(f"stopped stack under {root} (process groups {killed}){released}")
    return killed


def _release_services(stack: Stack) -> str:
    """Drop a celery stack's database and empty its Redis database; say what was removed."""
    return _release(stack.postgres_url, stack.database, stack.redis_url, stack.redis_db)


def _release(postgres_url: str, database: str, redis_url: str, redis_db: int) -> str:
    done = []
    try:
        if database:
            drop_database(postgres_url, database)
            done.append(f"database {database} dropped")
        if redis_db >= 0:
            release_redis_db(redis_url, redis_db, database)
            done.append(f"Redis database {redis_db} emptied")
    except Exception as exc:  # a service gone since: say what is left behind
        done.append(f"could not remove database {database} / Redis db {redis_db}: {exc}")
    return f"; {', '.join(done)}" if done else ""


def dead_parts(stack: Stack) -> tuple[str, ...]:
    """The names of the stack's recorded processes (``Stack.pids``) no longer alive: "NOT
    running" alone does not say which part to look at (a dead triggerer, say)."""
    return tuple(name for name, pid in stack.pids.items() if not _alive(pid))
