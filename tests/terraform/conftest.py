"""The parsed Terraform configuration, once per session (tests that break it work on a copy)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import tf_static


@pytest.fixture(scope="session")
def parsed_tf() -> dict[str, tf_static.Config]:
    return tf_static.load_all()


@pytest.fixture
def broken_copy(parsed_tf) -> Callable[[], dict[str, tf_static.Config]]:
    """A deep copy of the parsed configuration, for a test to break on purpose."""
    return lambda: copy.deepcopy(parsed_tf)
