"""The parsed deployment files, once per session (tests that break them work on copies)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import deploy_static
import pytest

from retrain.config import Config, load_config


@pytest.fixture(scope="session")
def cfg() -> Config:
    # The committed config itself, not the environment's overrides.
    return load_config(deploy_static.PROJECT_ROOT / "retrain.toml", env={})


@pytest.fixture(scope="session")
def lock_text() -> str:
    return deploy_static.LOCK.read_text()


@pytest.fixture(scope="session")
def airflow_version(lock_text) -> str:
    return deploy_static.locked_version(lock_text)


@pytest.fixture(scope="session")
def instructions() -> list[deploy_static.Instruction]:
    return deploy_static.parse_dockerfile(deploy_static.DOCKERFILE.read_text())


@pytest.fixture(scope="session")
def values() -> dict[str, dict[str, Any]]:
    return deploy_static.load_values()


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    return deploy_static.load_schema()


@pytest.fixture
def broken_values(values) -> Callable[[], dict[str, dict[str, Any]]]:
    """A deep copy of the parsed values files, for a test to break on purpose."""
    return lambda: copy.deepcopy(values)
