from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import psutil
import pytest

from retrain.local.s3server import S3Server, S3ServerError, free_port, start_s3_server

pytestmark = pytest.mark.integration


def test_server_listens_on_loopback_only(s3_server: S3Server) -> None:
    assert s3_server.endpoint_url == f"http://127.0.0.1:{s3_server.port}"
    with urllib.request.urlopen(f"{s3_server.endpoint_url}/moto-api/", timeout=5) as resp:
        assert resp.status == 200
    listening = [
        c
        for c in psutil.Process(s3_server.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening, "the server process has no listening socket"
    assert {(c.laddr.ip, c.laddr.port) for c in listening} == {("127.0.0.1", s3_server.port)}


def test_stop_terminates_and_is_idempotent(tmp_path: Path) -> None:
    server = start_s3_server(log_path=tmp_path / "moto.log")
    assert server.running()
    server.stop()
    assert not server.running()
    assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == "zombie"
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_port_in_use_fails_with_log_tail(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        with pytest.raises(S3ServerError, match=r"(?i)address already in use|in use"):
            start_s3_server(port, log_path=tmp_path / "moto.log")
