"""A small client for Airflow 3's REST API (``/api/v2``), stdlib only.

The demo and the end-to-end tests watch runs through the api-server instead of the ``airflow``
CLI, whose start-up alone takes tens of seconds on a small machine. No Airflow import here: this
talks HTTP to whatever Airflow is running, local or remote.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)
SERVER_ERROR_ATTEMPTS = 3  # a 5xx is tried again after 1 s, then 2 s


class AirflowApiError(RuntimeError):
    """The api-server answered with an error or could not be reached."""


def _earlier(errors: list[str]) -> str:
    """The errors of the tries before the last, for the final error only (a line of its own, so
    that a one-line summary of the error shows the last try's)."""
    if not errors:
        return ""
    return f"\n(after {len(errors)} earlier tries: {'; '.join(errors)})"


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    state: str
    run_type: str
    queued_at: str | None
    start_date: str | None
    end_date: str | None

    @property
    def finished(self) -> bool:
        return self.state in ("success", "failed")


@dataclass(frozen=True)
class TaskInstance:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    id: str = ""  # the task instance's uuid (a running task's process title names it)


class AirflowApi:
    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        """``token``: a JWT, or how to get one (asked at the first call that needs it, so a
        client can exist before the api-server answers)."""
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def bearer(self) -> str | None:
        """The JWT sent as ``Authorization: Bearer`` (None: no authentication)."""
        if callable(self.token):
            try:
                self.token = self.token()
            except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
                raise AirflowApiError(f"could not log in to {self.base_url}: {exc}") from exc
        return self.token

    def _request(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        accept: str = "application/json",
        body: Any = None,
        method: str = "POST",
    ) -> bytes:
        """GET, or ``method`` with a JSON ``body``; a 5xx is tried again."""
        url = f"{self.base_url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        headers = {"Accept": accept}
        if path != "/api/v2/monitor/health" and (token := self.bearer()):
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is None:
            method = "GET"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        # A 5xx is mostly a busy metadata database (SQLite locked) and the next try succeeds:
        # retries are logged at DEBUG only, their errors told only if the last try fails too.
        earlier: list[str] = []
        for attempt in range(SERVER_ERROR_ATTEMPTS):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace")[:500]
                if exc.code >= 500 and attempt + 1 < SERVER_ERROR_ATTEMPTS:
                    log.debug("%s %s: HTTP %s, trying again: %s", method, path, exc.code, text)
                    earlier.append(f"HTTP {exc.code}: {' '.join(text.split())[:200]}")
                    time.sleep(2**attempt)
                    continue
                error = f"{method} {path}: HTTP {exc.code}: {text}"
                raise AirflowApiError(error + _earlier(earlier)) from exc
            except (urllib.error.URLError, OSError) as exc:
                raise AirflowApiError(f"{method} {path}: {exc}" + _earlier(earlier)) from exc
        raise AssertionError("unreachable")

    def get_json(self, path: str, **params: Any) -> Any:
        return json.loads(self._request(path, params))

    def post_json(self, path: str, body: Any) -> Any:
        return json.loads(self._request(path, body=body))

    def patch_json(self, path: str, body: Any) -> Any:
        return json.loads(self._request(path, body=body, method="PATCH"))

    def pause(self, dag_id: str, paused: bool = True) -> bool:
        """Pause (or unpause) a DAG; what the api-server says it is now."""
        return bool(self.patch_json(f"/api/v2/dags/{dag_id}", {"is_paused": paused})["is_paused"])

    def emit_asset_event(self, name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record an event on the asset called ``name``, as a producer task would: the DAGs
        scheduled on it run (``retrain retract`` uses this to retrain without the files)."""
        found = self.get_json("/api/v2/assets", name_pattern=name, limit=100)["assets"]
        matches = [a for a in found if a["name"] == name]
        if not matches:
            raise AirflowApiError(f"no asset named {name!r} (is the DAG that declares it loaded?)")
        return self.post_json(
            "/api/v2/assets/events", {"asset_id": matches[0]["id"], "extra": extra or {}}
        )

    def hitl_requests(
        self, dag_id: str, *, answered: bool | None = False, subject: str = ""
    ) -> list[dict[str, Any]]:
        """Human-in-the-loop requests of ``dag_id``'s runs, newest first (``answered`` None:
        all; ``subject``: a part of it). Each has its ``task_instance``, ``subject``,
        ``options``, ``assigned_users``, ``created_at`` and, once answered, who and what."""
        params: dict[str, Any] = {"limit": 100, "order_by": "-created_at"}
        if answered is not None:
            params["response_received"] = str(answered).lower()
        if subject:
            params["subject_search"] = subject
        return self.get_json(f"/api/v2/dags/{dag_id}/dagRuns/~/hitlDetails", **params)[
            "hitl_details"
        ]

    def respond(
        self,
        request: dict[str, Any],
        chosen: list[str],
        params_input: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Answer a human-in-the-loop request (one of :meth:`hitl_requests`) as this client's
        user, as the Required Actions view does.

        Not in the first :data:`HITL_SETTLE_S` seconds after the waiting try started: on
        Airflow 3.3.2 an answer that lands before the scheduler has processed the executor's
        report of the parked task makes it take that report for a failure and retry the task,
        which asks again and loses the answer (seen at +0.5 s, and at +5 s under load, with the
        report processed at +6 s). The try's start, not the question's creation: a retried
        task keeps the question's ``created_at``.
        """
        ti = request["task_instance"]
        started = _parse_time(ti.get("start_date")) or _parse_time(request.get("created_at"))
        if started is not None:
            wait = HITL_SETTLE_S - (datetime.now(UTC) - started).total_seconds()
            if wait > 0:
                time.sleep(wait)
        run = urllib.parse.quote(ti["dag_run_id"], safe="")
        path = (
            f"/api/v2/dags/{ti['dag_id']}/dagRuns/{run}/taskInstances/{ti['task_id']}/"
            f"{ti.get('map_index', -1)}/hitlDetails"
        )
        return self.patch_json(path, {"chosen_options": chosen, "params_input": params_input or {}})

    def health(self) -> dict[str, Any]:
        return self.get_json("/api/v2/monitor/health")

    def is_healthy(self) -> bool:
        try:
            health = self.health()
        except AirflowApiError:
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((health.get(p) or {}).get("status") == "healthy" for p in parts)

    def dag_ids(self) -> list[str]:
        return [d["dag_id"] for d in self.get_json("/api/v2/dags", limit=100)["dags"]]

    def import_errors(self) -> list[dict[str, Any]]:
        return self.get_json("/api/v2/importErrors")["import_errors"]

    def dag_runs(self, dag_id: str, limit: int = 50) -> list[DagRun]:
        payload = self.get_json(
            f"/api/v2/dags/{dag_id}/dagRuns", limit=limit, order_by="-run_after"
        )
        return [
            DagRun(
                dag_id=r["dag_id"],
                run_id=r["dag_run_id"],
                state=r["state"],
                run_type=r["run_type"],
                queued_at=r.get("queued_at"),
                start_date=r.get("start_date"),
                end_date=r.get("end_date"),
            )
            for r in payload["dag_runs"]
        ]

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstance]:
        quoted = urllib.parse.quote(run_id, safe="")
        payload = self.get_json(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances", limit=100)
        return [
            TaskInstance(
                dag_id=t["dag_id"],
                run_id=t["dag_run_id"],
                task_id=t["task_id"],
                map_index=t.get("map_index", -1),
                state=t.get("state"),
                try_number=t.get("try_number", 0),
                id=t.get("id", ""),
            )
            for t in payload["task_instances"]
        ]

    def task_log(self, ti: TaskInstance, try_number: int | None = None) -> str:
        quoted = urllib.parse.quote(ti.run_id, safe="")
        attempt = try_number or max(ti.try_number, 1)
        raw = self._request(
            f"/api/v2/dags/{ti.dag_id}/dagRuns/{quoted}/taskInstances/{ti.task_id}/logs/{attempt}",
            {"full_content": "true", "map_index": ti.map_index},
        )
        try:
            content = json.loads(raw).get("content", raw.decode(errors="replace"))
        except ValueError:
            return raw.decode(errors="replace")
        if isinstance(content, list):
            return "\n".join(
                line.get("event", json.dumps(line)) if isinstance(line, dict) else str(line)
                for line in content
            )
        return str(content)

    def failed_task_logs(self, dag_ids: list[str], limit_runs: int = 5) -> str:
        """The logs of every failed or retried task in the latest runs: what a red run needs."""
        chunks = []
        for dag_id in dag_ids:
            try:
                runs = self.dag_runs(dag_id, limit=limit_runs)
            except AirflowApiError as exc:
                chunks.append(f"=== {dag_id}: cannot list runs: {exc}")
                continue
            for run in runs:
                for ti in self.task_instances(dag_id, run.run_id):
                    if ti.state in ("failed", "up_for_retry", "upstream_failed"):
                        try:
                            log = self.task_log(ti)
                        except AirflowApiError as exc:
                            log = f"(log unavailable: {exc})"
                        chunks.append(
                            f"=== {dag_id} / {run.run_id} / {ti.task_id} "
                            f"[{ti.state}, try {ti.try_number}]\n{log[-6000:]}"
                        )
        return "\n".join(chunks)


HITL_SETTLE_S = 15.0  # see AirflowApi.respond


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
