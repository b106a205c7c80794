"""The local stack's configuration: loopback only, sized for 2 cores, event-driven, no examples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from retrain.local.devstack import (
    AIRFLOW_COMPONENTS,
    STATE_FILE,
    Stack,
    _save,
    airflow_env,
    dead_parts,
    heartbeat_since,
    load,
)

PORTS = {"s3": 1001, "api": 1002, "worker_log": 1003, "trigger_log": 1004}


def _env(tmp_path: Path, **kwargs) -> dict[str, str]:
    return airflow_env(
        tmp_path, s3_endpoint="http://127.0.0.1:1001", bucket="b", ports=PORTS, **kwargs
    )


def test_services_bind_to_loopback_on_the_given_ports(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__PORT"] == "1002"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:1002"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "1003"
    assert env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == "1004"
    # the log servers bind every interface, so the components that would start them do not
    assert "--skip-serve-logs" in AIRFLOW_COMPONENTS["scheduler"]
    assert "--skip-serve-logs" in AIRFLOW_COMPONENTS["triggerer"]


def test_airflow_is_local_small_and_starts_dags_unpaused(tmp_path: Path) -> None:
    env = _env(tmp_path, parallelism=3)
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "3"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags")
    assert env["PATH"].split(":")[0].endswith("/bin"), "the venv's airflow comes first on PATH"


def test_the_connection_points_at_the_local_bucket(tmp_path: Path) -> None:
    env = _env(tmp_path, overrides={"RETRAIN__ORCHESTRATION__POLL_INTERVAL": "1"})
    conn = json.loads(env["AIRFLOW_CONN_RETRAIN_S3"])
    assert conn["conn_type"] == "aws"
    assert conn["extra"]["endpoint_url"] == "http://127.0.0.1:1001"
    assert env["RETRAIN__STORAGE__BUCKET"] == "b"
    assert env["RETRAIN__ORCHESTRATION__POLL_INTERVAL"] == "1"


def test_a_stack_remembers_how_airflow_was_started_and_reads_older_records(tmp_path: Path) -> None:
    stack = Stack(
        root=str(tmp_path),
        s3_endpoint="http://127.0.0.1:1001",
        api_url="http://127.0.0.1:1002",
        bucket="b",
        pids={"s3": 11, "triggerer": 12},
        ports=PORTS,
        parallelism=3,
        overrides={"RETRAIN__ORCHESTRATION__POLL_INTERVAL": "1"},
    )
    _save(stack)
    assert load(tmp_path) == stack
    # a stack.json written before parallelism and overrides were recorded
    old = json.loads((tmp_path / STATE_FILE).read_text())
    del old["parallelism"], old["overrides"]
    (tmp_path / STATE_FILE).write_text(json.dumps(old))
    loaded = load(tmp_path)
    assert loaded is not None and (loaded.parallelism, loaded.overrides) == (4, {})


def test_only_a_heartbeat_after_the_restart_proves_the_new_process_runs() -> None:
    since = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    health = {
        "metadatabase": {"status": "healthy"},
        "triggerer": {
            "status": "healthy",
            "latest_triggerer_heartbeat": "2026-05-01T11:59:58+00:00",
        },
        "dag_processor": {
            "status": "healthy",
            "latest_dag_processor_heartbeat": "2026-05-01T12:00:03.5+00:00",
        },
        "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": None},
    }
    assert not heartbeat_since(health, "triggerer", since), "the killed process's last beat"
    assert heartbeat_since(health, "dag-processor", since)
    assert not heartbeat_since(health, "scheduler", since)
    assert heartbeat_since(health, "api-server", since), "answering is its only sign of life"


def test_the_stack_reads_its_arrival_mode_from_the_config_it_runs_with(monkeypatch) -> None:
    from retrain.local.devstack import PROJECT_ROOT, _arrival_of

    monkeypatch.delenv("RETRAIN__ORCHESTRATION__ARRIVAL", raising=False)
    monkeypatch.delenv("RETRAIN_CONFIG", raising=False)
    assert _arrival_of({}, PROJECT_ROOT) == ("poll", "landing/")
    # events without a queue yet: the stack provides the queue, so the config still loads
    events = {"RETRAIN__ORCHESTRATION__ARRIVAL": "events"}
    assert _arrival_of(events, PROJECT_ROOT) == ("events", "landing/")


def test_events_mode_notifies_a_queue_of_every_object_created_in_landing(s3_server) -> None:
    import boto3

    from retrain.local.devstack import LOCAL_KEY_ID, LOCAL_SECRET, _create_landing_notifications

    kwargs = {
        "endpoint_url": s3_server.endpoint_url,
        "region_name": "us-east-1",
        "aws_access_key_id": LOCAL_KEY_ID,
        "aws_secret_access_key": LOCAL_SECRET,
    }
    s3, sqs = boto3.client("s3", **kwargs), boto3.client("sqs", **kwargs)
    s3.create_bucket(Bucket="devstack-events")
    url = _create_landing_notifications(
        s3_server.endpoint_url, "devstack-events", "landing/", "devstack-events-landing"
    )
    s3.put_object(Bucket="devstack-events", Key="raw/not-this.csv", Body=b"x")
    s3.put_object(Bucket="devstack-events", Key="landing/this one.csv", Body=b"x")
    bodies = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    ]
    assert bodies[0]["Event"] == "s3:TestEvent"
    keys = [r["s3"]["object"]["key"] for b in bodies[1:] for r in b["Records"]]
    assert keys == ["landing%2Fthis+one.csv"]  # URL-encoded, as on AWS


# -- the celery profile -----------------------------------------------------------------------

CLOSED = "127.0.0.1:9"  # the discard port: nothing listens on it here


def test_the_celery_profile_is_configuration_only(tmp_path: Path) -> None:
    """Same DAGs, same components plus two workers: only executor, database and broker differ."""
    from retrain.local.devstack import CELERY_WORKERS, components, profile_env

    assert profile_env("embedded", tmp_path) == {}
    embedded = _env(tmp_path)
    assert embedded["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in embedded
        or "sqlite" in embedded["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    )
    profile = profile_env(
        "celery",
        tmp_path,
        postgres_url="postgresql://me:secret@127.0.0.1:5432/postgres",
        database="retrain_abc123",
        redis_url="redis://127.0.0.1:6379",
        redis_db=7,
        default_queue="light",
    )
    env = _env(tmp_path, profile=profile)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    sql = "postgresql+psycopg2://me:secret@127.0.0.1:5432/retrain_abc123"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == sql
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{sql}"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/7"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "light"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1", "still loopback only"
    assert {k: v for k, v in env.items() if k not in profile} == {
        k: v for k, v in embedded.items() if k not in profile
    }, "nothing else differs"

    parts = components("celery", tmp_path, ("light", "big"))
    assert set(parts) == {*AIRFLOW_COMPONENTS, *CELERY_WORKERS} and len(CELERY_WORKERS) == 2
    for name in CELERY_WORKERS:
        args = parts[name]
        assert args[:2] == ["celery", "worker"]
        assert args[args.index("--queues") + 1] == "light,big", "every worker serves both queues"
        assert int(args[args.index("--concurrency") + 1]) <= 2, "sized for 2 cores"
        assert "--skip-serve-logs" in args, "no log server binding every interface"
        assert args[args.index("--pid") + 1] == str(tmp_path / "airflow" / f"{name}.pid")
    assert components("embedded", tmp_path) == AIRFLOW_COMPONENTS


def test_a_celery_stack_record_restarts_its_workers_with_the_same_database(tmp_path: Path) -> None:
    from retrain.local.devstack import CELERY_WORKERS

    stack = Stack(
        root=str(tmp_path),
        s3_endpoint="http://127.0.0.1:1001",
        api_url="http://127.0.0.1:1002",
        bucket="b",
        pids={"s3": 11},
        ports=PORTS,
        profile="celery",
        postgres_url="postgresql://postgres@127.0.0.1:5432/postgres",
        database="retrain_0123456789ab",
        redis_url="redis://127.0.0.1:6379",
        redis_db=3,
    )
    _save(stack)
    loaded = load(tmp_path)
    assert loaded == stack and set(CELERY_WORKERS) <= set(loaded.components)
    env = loaded.profile_env()
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("/retrain_0123456789ab")
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/3"


def test_unreachable_services_are_named_with_what_to_do() -> None:
    from retrain.local.devstack import POSTGRES_URL_ENV, REDIS_URL_ENV, services_problem

    problem = services_problem(f"postgresql://postgres@{CLOSED}/postgres", f"redis://{CLOSED}", 1)
    assert problem is not None
    assert f"PostgreSQL at postgresql://postgres@{CLOSED}/postgres does not answer" in problem
    assert f"Redis at redis://{CLOSED} does not answer" in problem
    assert POSTGRES_URL_ENV in problem and REDIS_URL_ENV in problem
    assert "embedded profile" in problem and "needs neither" in problem


def test_starting_the_celery_profile_without_its_services_starts_nothing(
    tmp_path: Path, monkeypatch
) -> None:
    import pytest

    from retrain.local import devstack

    monkeypatch.setenv(devstack.POSTGRES_URL_ENV, f"postgresql://postgres@{CLOSED}/postgres")
    monkeypatch.setenv(devstack.REDIS_URL_ENV, f"redis://{CLOSED}")
    with pytest.raises(devstack.ServicesUnavailable, match="PostgreSQL at"):
        devstack.start(tmp_path / "stack", profile="celery", log=lambda *_: None)
    assert load(tmp_path / "stack") is None and not (tmp_path / "stack").exists()


def _services_or_skip() -> tuple[str, str]:
    import pytest

    from retrain.local.devstack import redis_server, service_urls, services_problem

    postgres_url, redis_url = service_urls()
    if problem := services_problem(postgres_url, redis_url, 2):
        pytest.skip(problem)
    return postgres_url, redis_server(redis_url)


def test_each_stack_gets_its_own_database_and_redis_db_and_gives_them_back() -> None:
    import psycopg2
    import redis

    from retrain.local.devstack import (
        REDIS_CLAIM_KEY,
        claim_redis_db,
        create_database,
        drop_database,
        release_redis_db,
    )

    postgres_url, redis_url = _services_or_skip()
    first, second = create_database(postgres_url), create_database(postgres_url)
    try:
        assert first != second and first.startswith("retrain_")
        conn = psycopg2.connect(postgres_url)
        try:
            cur = conn.cursor()
            cur.execute("SELECT datname FROM pg_database WHERE datname IN %s", ((first, second),))
            assert {r[0] for r in cur.fetchall()} == {first, second}
        finally:
            conn.close()
        one, two = claim_redis_db(redis_url, first), claim_redis_db(redis_url, second)
        assert one != two and min(one, two) >= 1
        client = redis.Redis.from_url(redis_url, db=one)
        client.set("celery-ish", "x")
        release_redis_db(redis_url, two, "not-its-owner")
        claim = redis.Redis.from_url(redis_url, db=two).get(REDIS_CLAIM_KEY).decode()
        assert claim.split(" ")[0] == second
        release_redis_db(redis_url, one, first)
        release_redis_db(redis_url, two, second)
        assert client.dbsize() == 0
    finally:
        drop_database(postgres_url, first)
        drop_database(postgres_url, second)
    conn = psycopg2.connect(postgres_url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM pg_database WHERE datname IN %s", ((first, second),))
        assert cur.fetchone()[0] == 0
    finally:
        conn.close()


def test_a_claim_left_by_a_killed_stack_is_taken_back_with_its_database() -> None:
    """A stack killed without `retrain stop` leaves its Redis claim and its database behind; the
    next stack takes that Redis database back once the claim is old and the database idle, and
    drops the database. A claim that is recent, or whose database is in use, stays."""
    import psycopg2
    import pytest
    import redis

    from retrain.local.devstack import (
        REDIS_CLAIM_KEY,
        STALE_CLAIM_SECONDS,
        claim_redis_db,
        create_database,
        drop_database,
        release_redis_db,
    )

    postgres_url, redis_url = _services_or_skip()
    killed, busy, fresh = (create_database(postgres_url) for _ in range(3))
    base = postgres_url.rsplit("/", 1)[0]
    held = psycopg2.connect(f"{base}/{busy}")  # a live stack's session
    old = int(time.time()) - STALE_CLAIM_SECONDS - 60
    dbs: dict[str, int] = {}
    try:
        for owner in (killed, busy, fresh):
            dbs[owner] = claim_redis_db(redis_url, owner)
        for owner, since in ((killed, old), (busy, old)):  # as if claimed long ago
            redis.Redis.from_url(redis_url, db=dbs[owner]).set(REDIS_CLAIM_KEY, f"{owner} {since}")
        redis.Redis.from_url(redis_url, db=dbs[killed]).set("celery-leftover", "x")
        newcomer = create_database(postgres_url)
        try:
            # the lowest free-or-abandoned number: the killed stack's, or a never-used lower one
            got = claim_redis_db(redis_url, newcomer, postgres_url)
            if got != dbs[killed]:
                release_redis_db(redis_url, got, newcomer)
                pytest.skip(f"Redis db {got} was free below the abandoned one: nothing shown")
            client = redis.Redis.from_url(redis_url, db=got)
            assert client.get("celery-leftover") is None
            assert client.get(REDIS_CLAIM_KEY).decode().split(" ")[0] == newcomer
            for owner in (busy, fresh):
                claim = redis.Redis.from_url(redis_url, db=dbs[owner]).get(REDIS_CLAIM_KEY)
                assert claim.decode().split(" ")[0] == owner
            conn = psycopg2.connect(postgres_url)
            try:
                cur = conn.cursor()
                cur.execute(
                    "SELECT datname FROM pg_database WHERE datname IN %s", ((killed, busy),)
                )
                assert {r[0] for r in cur.fetchall()} == {busy}
            finally:
                conn.close()
            release_redis_db(redis_url, got, newcomer)
        finally:
            drop_database(postgres_url, newcomer)
    finally:
        held.close()
        for owner, db in dbs.items():
            release_redis_db(redis_url, db, owner)
        for owner in (killed, busy, fresh):
            drop_database(postgres_url, owner)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_dead_parts_of_a_stack_are_named(tmp_path: Path) -> None:
    live = os.getpid()
    pids = {"s3": live, "scheduler": live, "triggerer": _dead_pid(), "api-server": live}
    stack = Stack(str(tmp_path), "http://127.0.0.1:1", "http://127.0.0.1:2", "b", pids, PORTS)
    assert dead_parts(stack) == ("triggerer",)
    assert dead_parts(replace(stack, pids={"s3": live})) == ()


def test_a_config_other_than_the_stacks_copy_is_a_conflict_naming_both(tmp_path: Path) -> None:
    from dataclasses import replace

    from retrain.local.devstack import Stack, config_conflict, file_sha256

    copy = tmp_path / "stack" / "config" / "retrain.toml"
    copy.parent.mkdir(parents=True)
    copy.write_text('[dataset]\nname = "flights"\n')
    original = tmp_path / "flights.toml"
    original.write_text(copy.read_text())
    stack = replace(
        Stack(str(tmp_path / "stack"), "http://s3", "http://api", "b", {}, {}),
        config_path=str(copy),
        config_source=str(original),
        config_sha256=file_sha256(copy),
    )
    assert config_conflict(stack, copy) is None, "the stack's own copy"
    assert config_conflict(stack, original) is None, "the same bytes"
    original.write_text('[dataset]\nname = "flights"  # edited\n')
    conflict = config_conflict(stack, original)
    assert conflict is not None
    assert conflict.startswith(f"RETRAIN_CONFIG={original} differs from the config the stack")
    assert f"({copy}, copied from {original} when it started)" in conflict
    assert f"`retrain start --config {original}`" in conflict
    missing = config_conflict(stack, tmp_path / "gone.toml")
    assert missing is not None and "cannot be read" in missing
    assert config_conflict(replace(stack, config_sha256=""), original) is None, "an old stack"
