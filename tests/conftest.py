"""Shared fixtures: the project's config, and a real moto S3 server over HTTP for the whole
session with a fresh bucket per test."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from retrain.config import Config, StorageConfig, load_config
from retrain.local.s3server import DUMMY_CREDENTIALS, S3Server, start_s3_server
from retrain.storage import S3Storage

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Airflow reads its configuration on first import: point it at a throwaway home before any test
# imports it, so the suite never touches ~/airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="retrain-test-airflow-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
CREDENTIALS = {
    "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(log_path=tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def storage_factory(s3_server: S3Server) -> Callable[[], S3Storage]:
    """S3Storage on a new, uniquely named bucket that is NOT created yet."""

    def make() -> S3Storage:
        bucket = f"t-{uuid.uuid4().hex[:16]}"
        cfg = StorageConfig(bucket=bucket, endpoint_url=s3_server.endpoint_url)
        return S3Storage.from_config(cfg, **CREDENTIALS)

    return make


@pytest.fixture
def storage(storage_factory: Callable[[], S3Storage]) -> S3Storage:
    store = storage_factory()
    store.ensure_bucket()
    return store


@pytest.fixture(scope="session")
def config() -> Config:
    """The shipped retrain.toml, without environment overrides."""
    return load_config(PROJECT_ROOT / "retrain.toml", env={})
