"""The Airflow connection the triggers read, pointing at the session's moto server."""

from __future__ import annotations

import json

import pytest

from retrain.local.s3server import S3Server

CONN_ID = "landing_test"


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch, s3_server: S3Server) -> str:
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return CONN_ID
