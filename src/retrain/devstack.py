"""The embedded stack: an S3-compatible server and Airflow's standalone parts, on 127.0.0.1 only.

``make demo`` and the end-to-end tests start the same stack through this module, each in its own
root folder (``.stack/`` for the demo, a temp folder for a test) and on its own ports, so a test
can run beside a live demo. Every process is started in a new session and its pid recorded, so
``stop`` can end the whole process group and leave nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrain.airflow_api import AirflowApi, AirflowApiError
from retrain.s3server import free_port, start_s3_server

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_IDS = ("ingest", "features", "retrain", "score")  # started by data (score: by a deploy)
WATCHDOG_DAG_ID = "watchdog"  # monitoring on a timer
# What `airflow standalone` runs, started one by one so that the log servers (which bind every
# interface) can be left out: on one machine the api-server reads task logs from local files.
AIRFLOW_COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
STATE_FILE = "stack.json"
# Test credentials of the local S3-compatible server; it accepts any pair.
LOCAL_KEY_ID = "local-stack"
LOCAL_SECRET = "local-stack-secret"


class StackError(RuntimeError):
    """The stack did not start, or is not running."""


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

    @property
    def api(self) -> AirflowApi:
        return AirflowApi(self.api_url)

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


def airflow_env(
    root: Path,
    *,
    s3_endpoint: str,
    bucket: str,
    ports: dict[str, int],
    parallelism: int = 4,
    overrides: dict[str, str] | None = None,
    code_root: Path = PROJECT_ROOT,
) -> dict[str, str]:
    """The whole configuration of the local Airflow: env vars only, nothing written to the repo.

    ``code_root`` is the project tree the components run from (DAG folder, library, config):
    the checkout by default, or a read-only copy of it, as workers run from an image. Its
    ``src`` and root go first on PYTHONPATH, ahead of the checkout's editable install.
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
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(ports["api"]),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{ports['api']}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ports['api']}/execution/",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_log"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_log"]),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
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
    env.update(overrides or {})
    # Airflow's own StatsD metrics go where the pipeline's go ([metrics], off by default).
    from retrain.config import load_config
    from retrain.metrics import airflow_statsd_env

    env.update(airflow_statsd_env(load_config(env["RETRAIN_CONFIG"], env=env).metrics))
    return env


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


def start(
    root: Path,
    *,
    bucket: str = "retrain-demo",
    ports: dict[str, int] | None = None,
    parallelism: int = 4,
    overrides: dict[str, str] | None = None,
    code_root: Path = PROJECT_ROOT,
    ready_timeout: float = 300.0,
    log=print,
) -> Stack:
    """Start the S3-compatible server and Airflow standalone; return once DAGs are loaded.

    Airflow's parts run from ``code_root`` (see :func:`airflow_env`) with it as their working
    directory; they write only under ``root`` and into the bucket.
    """
    root, code_root = root.resolve(), code_root.resolve()
    if existing := running(root):
        log(f"stack already running (api {existing.api_url}, s3 {existing.s3_endpoint})")
        return existing
    stop(root, log=lambda *_: None)  # leftovers of a crashed stack
    ports = {name: free_port() for name in ("s3", "api", "worker_log", "trigger_log")} | (
        ports or {}
    )
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    s3_endpoint = f"http://127.0.0.1:{ports['s3']}"
    pids: dict[str, int] = {}
    try:
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
        env = airflow_env(
            root,
            s3_endpoint=s3_endpoint,
            bucket=bucket,
            ports=ports,
            parallelism=parallelism,
            overrides=overrides,
            code_root=code_root,
        )
        log(
            f"starting Airflow on http://127.0.0.1:{ports['api']} (AIRFLOW_HOME={root / 'airflow'})"
        )
        _migrate_db(env, logs / "airflow-db.log")
        for name, args in AIRFLOW_COMPONENTS.items():
            pids[name] = _spawn([_airflow_bin(), *args], env, logs / f"{name}.log", code_root)
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
        )
        _save(stack)
        _wait_airflow(stack, ready_timeout, logs, log)
    except BaseException:
        _kill_groups(pids)
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
    if name not in AIRFLOW_COMPONENTS:
        raise ValueError(f"cannot restart {name!r}: one of {', '.join(AIRFLOW_COMPONENTS)}")
    root = Path(stack.root)
    _kill_groups({name: stack.pids[name]})
    env = airflow_env(
        root,
        s3_endpoint=stack.s3_endpoint,
        bucket=stack.bucket,
        ports=stack.ports,
        parallelism=stack.parallelism,
        overrides=stack.overrides,
        code_root=Path(stack.code_root),
    )
    log_path = root / "logs" / f"{name}.log"
    since = datetime.now(UTC)
    pid = _spawn([_airflow_bin(), *AIRFLOW_COMPONENTS[name]], env, log_path, Path(stack.code_root))
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


def _arrival_of(overrides: dict[str, str], code_root: Path) -> tuple[str, str]:
    """The stack's ``[orchestration] arrival`` and landing prefix, from the config it will run
    with (the queue URL, which the stack itself provides, may still be missing)."""
    from retrain.config import load_config

    env = {**os.environ, **overrides}
    env.setdefault("RETRAIN__ORCHESTRATION__QUEUE_URL", "pending: the local stack creates it")
    cfg = load_config(env.get("RETRAIN_CONFIG", str(code_root / "retrain.toml")), env=env)
    return cfg.orchestration.arrival, cfg.storage.landing_prefix


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
        tails = "\n".join(f"--- {n}\n{tail_log(logs / f'{n}.log', 20)}" for n in AIRFLOW_COMPONENTS)
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
    (root.resolve() / STATE_FILE).unlink(missing_ok=True)
    log(f"stopped stack under {root} (process groups {killed})")
    return killed
