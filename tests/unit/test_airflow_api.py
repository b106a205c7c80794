"""The REST client's retries against a local HTTP server: a busy api-server (HTTP 500, a locked
SQLite) is tried again quietly; only a final failure is told, with the earlier tries' errors."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from retrain import airflow_api
from retrain.airflow_api import AirflowApi, AirflowApiError


class Busy(BaseHTTPRequestHandler):
    """Answers HTTP 500 ("Serious error", as the api-server says for a locked SQLite) for the
    first ``failures`` requests, then 200."""

    failures = 0
    seen: list[str]

    def do_PATCH(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(self.path)
        if len(self.seen) <= self.failures:
            body, code = {"detail": f"Serious error {len(self.seen)}: database is locked"}, 500
        else:
            body, code = {"name": "heavy", "slots": 1, "is_paused": True}, 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def busy(monkeypatch) -> Iterator[type[Busy]]:
    monkeypatch.setattr(airflow_api.time, "sleep", lambda _s: None)
    handler = type("Handler", (Busy,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_retry_that_succeeds_says_nothing_alarming(busy, caplog) -> None:
    busy.failures = 2
    with caplog.at_level(logging.DEBUG, logger="retrain.airflow_api"):
        assert AirflowApi(busy.url).post_json("/api/v2/pools", {"name": "heavy"})["slots"] == 1
    assert len(busy.seen) == 3
    assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.DEBUG]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_final_failure_names_every_try(busy, caplog) -> None:
    busy.failures = airflow_api.SERVER_ERROR_ATTEMPTS
    with (
        caplog.at_level(logging.DEBUG, logger="retrain.airflow_api"),
        pytest.raises(AirflowApiError) as info,
    ):
        AirflowApi(busy.url).post_json("/api/v2/pools", {"name": "heavy"})
    message = str(info.value)
    first, rest = message.split("\n", 1)
    assert first.startswith("POST /api/v2/pools: HTTP 500: ") and "Serious error 3" in first
    assert "after 2 earlier tries" in rest
    assert "Serious error 1" in rest and "Serious error 2" in rest
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_pause_is_tried_again_on_a_busy_server(busy) -> None:
    """The e2e stacks pause DAGs right after start, when SQLite is busiest."""
    busy.failures = 1
    assert AirflowApi(busy.url).pause("features") is True
    assert busy.seen == ["/api/v2/dags/features", "/api/v2/dags/features"]


def test_an_answer_waits_until_the_request_is_settled_then_goes_to_its_task(
    busy, monkeypatch
) -> None:
    """A HITL answer is never sent in the first seconds after the question (Airflow 3.3.2 would
    retry the task and lose it): the client waits out the rest, then PATCHes the task's path."""
    from datetime import UTC, datetime, timedelta

    slept: list[float] = []
    monkeypatch.setattr(airflow_api.time, "sleep", slept.append)
    ti = {"dag_id": "approve", "dag_run_id": "r+1", "task_id": "wait_for_approval", "map_index": -1}
    # a retried try: the question keeps its first created_at, the try started a second ago
    asked = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    started = (datetime.now(UTC) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    api = AirflowApi(busy.url)
    request = {"task_instance": {**ti, "start_date": started}, "created_at": asked}
    api.respond(request, ["Approve"], {"comment": "ok"})
    assert len(slept) == 1
    assert airflow_api.HITL_SETTLE_S - 1.5 < slept[0] <= airflow_api.HITL_SETTLE_S - 1 + 0.1
    assert busy.seen == [
        "/api/v2/dags/approve/dagRuns/r%2B1/taskInstances/wait_for_approval/-1/hitlDetails"
    ]
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    api.respond({"task_instance": ti, "created_at": old}, ["Reject"])
    assert len(slept) == 1, "an old request is answered at once"
