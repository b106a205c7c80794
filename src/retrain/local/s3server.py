"""Run a real moto S3-compatible server as a child process, spoken to over HTTP.

The local stack and the tests use this instead of in-process mocks so that every byte goes
through botocore's real HTTP path (signing, conditional-write headers, 412s, pagination), the
same as against AWS. The server binds to loopback only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 3  # free_port() can race with another process grabbing the port


class S3ServerError(RuntimeError):
    """The moto server did not come up (the message carries the tail of its log)."""


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    host: str
    port: int
    log_path: Path
    _proc: subprocess.Popen = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def running(self) -> bool:
        return self._proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Terminate; kill if it has not exited within ``timeout``. Safe to call twice."""
        if self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=timeout)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _server_command(host: str, port: int) -> list[str]:
    sibling = Path(sys.executable).with_name("moto_server")
    if sibling.exists():
        base = [str(sibling)]
    elif found := shutil.which("moto_server"):
        base = [found]
    else:
        base = [sys.executable, "-m", "moto.server"]
    return [*base, "-H", host, "-p", str(port)]


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1.0) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:  # answered, so it is serving
        return exc.code < 500
    except (OSError, ValueError):
        return False


def _launch(host: str, port: int, log_path: Path, timeout: float) -> S3Server | None:
    """Start one child; None if it exited early (e.g. the port was taken meanwhile)."""
    env = {**os.environ, **DUMMY_CREDENTIALS}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            _server_command(host, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            # Its own process group: a stack can outlive the command that started it and be
            # stopped later by pid group, and a Ctrl-C meant for a test runner does not reach it.
            start_new_session=True,
        )
    url = f"http://{host}:{port}"
    server = S3Server(endpoint_url=url, host=host, port=port, log_path=log_path, _proc=proc)
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        if _is_ready(url):
            return server
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    server.stop()
    raise S3ServerError(
        f"moto server on {url} not ready after {timeout:.0f}s; log {log_path}:\n"
        + _log_tail(log_path)
    )


def start_s3_server(
    port: int = 0,
    *,
    log_path: Path | None = None,
    host: str = "127.0.0.1",
    timeout: float = STARTUP_TIMEOUT,
) -> S3Server:
    """Start moto on ``host:port`` (0 picks a free port) and wait until it answers HTTP."""
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="moto-s3-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    attempts = _PORT_ATTEMPTS if port == 0 else 1
    for _ in range(attempts):
        server = _launch(host, port or free_port(host), log_path, timeout)
        if server is not None:
            return server
    raise S3ServerError(
        f"moto server exited during startup on {host}; log {log_path}:\n" + _log_tail(log_path)
    )
