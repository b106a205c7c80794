"""``retrain status`` and ``retrain alerts`` against a real S3-compatible server: files ingested
for real, an incident recorded as a failing task would, the screen and the JSON that come out.
Airflow's REST API is played by a small HTTP server answering what ``/api/v2`` answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import boto3
import pytest

from retrain import cli
from retrain.airflow_api import AirflowApi
from retrain.alerts import Incidents, first_line
from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.layout import Layout
from retrain.local import devstack
from retrain.local.s3server import DUMMY_CREDENTIALS, S3Server, free_port
from retrain.status import gather, render
from retrain.steps import ingest
from retrain.storage import S3Storage

START = datetime(2026, 10, 1)
BAD = b"customer_id,note\nc1,not the dataset\n"
KEY_ID, SECRET = DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"], DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]


@pytest.fixture
def cfg(config: Config, storage: S3Storage) -> Config:
    return replace(config, storage=replace(config.storage, bucket=storage.bucket))


def land(storage: S3Storage, cfg: Config, name: str, data: bytes) -> dict:
    key = f"{cfg.storage.landing_prefix}{name}"
    storage.put_bytes(key, data)
    return next(f for f in ingest.landed_files(storage, cfg) if f["key"] == key)


@pytest.fixture
def bad_morning(storage: S3Storage, cfg: Config) -> ingest.IngestResult:
    """One good and one bad file ingested; retrain failing (as its failure callback records)."""
    good = write_batch(generate(300, seed=1, start=START), "csv")
    files = [land(storage, cfg, "good.csv", good), land(storage, cfg, "bad.csv", BAD)]
    batch = ingest.ingest_batch(storage, cfg, files, batch_id="b1")
    assert len(batch.raw_keys) == 1 and len(batch.quarantined) == 1
    Incidents(storage, Layout.of(cfg)).failed(
        "dag:retrain", "retrain failed", "train: only 120 rows after the holdout", run="r2"
    )
    return batch


def test_status_of_a_bad_morning(storage, cfg, bad_morning) -> None:
    status = gather(storage, cfg)
    text = render(status)
    (bad,) = bad_morning.quarantined

    assert status.champion is None and "champion    none deployed" in text
    assert status.last_accepted is not None
    assert status.last_accepted.raw_key == bad_morning.raw_keys[0]
    assert "ago)  landing/good.csv -> raw/ingest_date=" in text
    (q,) = status.quarantined
    assert (q.key, q.name, q.batch_id) == (bad.dest_key, "bad.csv", "b1")
    assert q.reason == first_line(bad.reason) and q.reason.startswith("37 of 40 expectations")
    assert f"bad.csv: {q.reason}"[:60] in text
    assert [i.name for i in status.incidents] == ["dag:retrain"]
    assert "  dag:retrain since " in text and ", 1 run: train: only 120 rows after" in text
    assert status.why.startswith("retrain failing since ")
    assert status.why.endswith(": train: only 120 rows after the holdout")
    why = " ".join(line.strip() for line in text.split("\n\n")[0].splitlines()[1:])
    assert why == f"WHY no retrain? {status.why}", "the screen's 2nd line (wrapped)"
    assert "runs        unknown (no Airflow API" in text
    assert status.alerts[0].subject == "[retrain] FAILED: retrain failed"
    data = json.loads(json.dumps(status.as_dict()))
    assert data["why"] == status.why and data["quarantined"][0]["name"] == "bad.csv"


def test_quarantine_outside_the_days_is_left_out(storage, cfg, bad_morning) -> None:
    later = datetime.fromisoformat(gather(storage, cfg).at).replace(year=2099)
    status = gather(storage, cfg, now=later, days=3)
    assert status.quarantined == () and status.quarantined_more == 0
    assert status.last_accepted is not None and status.last_accepted.age_s > 3600 * 24 * 365


def test_landing_counts_waiting_files_and_the_oldest(storage, cfg) -> None:
    land(storage, cfg, "first.csv", BAD)
    land(storage, cfg, "second.csv", BAD)
    storage.put_bytes(f"{cfg.storage.landing_prefix}upload.csv.part", BAD)  # ignored: not data
    pending = gather(storage, cfg).pending
    assert pending.count == 2
    assert pending.oldest_key in {"landing/first.csv", "landing/second.csv"}
    assert pending.wait_s is not None and pending.wait_s >= 0


# -- with Airflow's REST API -------------------------------------------------------------------


class FakeAirflow(BaseHTTPRequestHandler):
    """What ``/api/v2`` answers, from ``routes`` (path -> JSON)."""

    routes: dict[str, object] = {}

    def do_GET(self) -> None:
        body = self.routes.get(unquote(urlparse(self.path).path))
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body if body is not None else {"detail": "nope"}).encode())

    def log_message(self, *args) -> None:
        pass


def run(dag_id: str, run_id: str, state: str, start: str) -> dict:
    return {
        "dag_id": dag_id,
        "dag_run_id": run_id,
        "state": state,
        "run_type": "asset_triggered",
        "queued_at": start,
        "start_date": start,
        "end_date": None,
    }


def ti(dag_id: str, run_id: str, task_id: str, state: str | None) -> dict:
    return {"dag_id": dag_id, "dag_run_id": run_id, "task_id": task_id, "state": state}


@pytest.fixture
def airflow(bad_morning) -> Iterator[dict[str, object]]:
    """retrain: r2 failed (the open incident's run), r1 failed earlier in deploy."""
    since = "2000-01-01T00:00:00Z"  # before the incident opened: not its run
    routes: dict[str, object] = {
        "/api/v2/monitor/health": {
            "metadatabase": {"status": "healthy"},
            "scheduler": {"status": "healthy"},
            "triggerer": {"status": "unhealthy"},
        },
        "/api/v2/dags/ingest/dagRuns": {"dag_runs": [run("ingest", "i1", "running", since)]},
        "/api/v2/dags/features/dagRuns": {"dag_runs": []},
        "/api/v2/dags/retrain/dagRuns": {
            "dag_runs": [run("retrain", "r2", "failed", ""), run("retrain", "r1", "failed", since)]
        },
        "/api/v2/dags/retrain/dagRuns/r1/taskInstances": {
            "task_instances": [
                ti("retrain", "r1", "train", "success"),
                ti("retrain", "r1", "deploy", "failed"),
            ]
        },
    }
    routes |= {f"/api/v2/dags/{d}": {"dag_id": d, "is_paused": False} for d in devstack.DAG_IDS}
    handler = type("Handler", (FakeAirflow,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    routes["url"] = f"http://127.0.0.1:{server.server_port}"  # the handler sees later changes
    try:
        yield routes
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_runs_and_their_reasons_from_the_api(storage, cfg, airflow) -> None:
    status = gather(storage, cfg, api=AirflowApi(str(airflow["url"])))
    retrain = status.dag("retrain")
    assert retrain is not None
    assert [(r.run_id, r.reason) for r in retrain.runs] == [
        ("r2", "train: only 120 rows after the holdout"),  # the incident's run: its reason
        ("r1", "failed task(s): deploy"),  # older: asked Airflow which task failed
    ]
    assert status.dag("features").runs == () and status.dag("ingest").runs[0].state == "running"
    assert status.health["triggerer"] == "unhealthy"
    text = render(status)
    assert "  retrain   failed   r2 (started ?): train: only 120 rows" in text
    assert "Airflow not healthy: {'triggerer': 'unhealthy'}" in text


def test_an_ingest_run_still_publishing_is_under_way(storage, cfg, airflow) -> None:
    """Accepted, not yet decided, and the ingest run that accepted it still at work: that is
    the answer, not a lost asset event; once a run only waits for files again, it is."""
    Incidents(storage, Layout.of(cfg)).cleared("dag:retrain", "retrain recovered", "r3 passed")
    airflow["/api/v2/dags/retrain/dagRuns"] = {"dag_runs": [run("retrain", "r3", "success", "")]}
    steps = ("wait_for_files", "validate_0", "validate_large", "route")
    tasks = [ti("ingest", "i1", t, "success") for t in steps]
    airflow["/api/v2/dags/ingest/dagRuns/i1/taskInstances"] = {
        "task_instances": [*tasks, ti("ingest", "i1", "publish_raw", "running")]
    }
    status = gather(storage, cfg, api=AirflowApi(str(airflow["url"])))
    assert status.dag("ingest").runs[0].phase == "publishing raw/"
    assert "landing/good.csv was accepted" in status.why
    assert "ingest run i1 is still under way (publishing raw/, started " in status.why
    assert "asset event" not in status.why
    assert "  ingest    running  [publishing raw/] i1 (started " in render(status)

    waiting = [ti("ingest", "i1", "wait_for_files", "deferred")]
    waiting += [ti("ingest", "i1", t, None) for t in ("validate_0", "route", "publish_raw")]
    airflow["/api/v2/dags/ingest/dagRuns/i1/taskInstances"] = {"task_instances": waiting}
    status = gather(storage, cfg, api=AirflowApi(str(airflow["url"])))
    assert status.dag("ingest").runs[0].phase == "waiting for files"
    assert "no features or retrain run is under way" in status.why
    assert "  ingest    running  [waiting for files] i1 (started " in render(status)


def test_a_paused_dag_is_the_answer(storage, cfg, airflow) -> None:
    airflow["/api/v2/dags/features"] = {"dag_id": "features", "is_paused": True}
    status = gather(storage, cfg, api=AirflowApi(str(airflow["url"])))
    assert status.dag("features").paused is True
    assert status.why == "features paused in Airflow: unpause to resume the pipeline"


def test_a_dag_airflow_does_not_know_is_unknown_alone(storage, cfg, airflow) -> None:
    del airflow["/api/v2/dags/features"]  # not loaded (an import error, say)
    status = gather(storage, cfg, api=AirflowApi(str(airflow["url"])))
    features = status.dag("features")
    assert features is not None and "HTTP 404" in features.error
    assert status.dag("retrain").runs[0].run_id == "r2", "the other DAGs are still shown"
    assert "  features  unknown: GET /api/v2/dags/features: HTTP 404" in render(status)


def test_an_api_that_does_not_answer_leaves_runs_unknown(storage, cfg, bad_morning) -> None:
    api = AirflowApi(f"http://127.0.0.1:{free_port()}", timeout=2)
    status = gather(storage, cfg, api=api)
    assert status.dags is None and status.health == {}
    assert status.airflow.startswith(f"unknown (Airflow at {api.base_url} did not answer")
    assert status.why.startswith("retrain failing since "), "the bucket's facts still answer"


# -- the commands ------------------------------------------------------------------------------


def test_status_command_without_a_stack_reads_the_configured_bucket(
    storage, s3_server: S3Server, bad_morning, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("RETRAIN_CONFIG", raising=False)
    monkeypatch.delenv("RETRAIN_AIRFLOW_URL", raising=False)
    monkeypatch.setenv("RETRAIN__STORAGE__BUCKET", storage.bucket)
    monkeypatch.setenv("RETRAIN__STORAGE__ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert cli.main(["--root", str(tmp_path), "status", "--json", "--days", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stack"].startswith("none") and data["bucket"] == storage.bucket
    assert data["quarantine_days"] == 1 and data["quarantined"][0]["name"] == "bad.csv"
    assert data["dags"] is None and data["why"].startswith("retrain failing since")
    assert cli.main(["--root", str(tmp_path), "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("local stack: none") and "WHY no retrain? retrain failing" in out


def test_alerts_command_prints_what_arrived_then_nothing(
    s3_server: S3Server, tmp_path: Path, capsys
) -> None:
    endpoint = s3_server.endpoint_url
    topic, queue = devstack._create_alert_channel(endpoint, f"t-{tmp_path.name[-20:]}")
    stack = devstack.Stack(str(tmp_path), endpoint, "http://127.0.0.1:1", "b", {}, {})
    stack = replace(stack, alerts_queue_url=queue)
    (tmp_path / devstack.STATE_FILE).write_text(json.dumps(asdict(stack)))
    sns = boto3.client(
        "sns",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )
    sns.publish(TopicArn=topic, Subject="[retrain] FAILED: retrain failed", Message="a\nb")

    assert cli.main(["--root", str(tmp_path), "alerts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("  [retrain] FAILED: retrain failed")
    assert lines[1:] == ["    a", "    b"]
    assert cli.main(["--root", str(tmp_path), "alerts", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [], "reading took them off the queue"


def test_alerts_command_without_a_stack_says_so(tmp_path: Path, capsys) -> None:
    assert cli.main(["--root", str(tmp_path), "alerts"]) == 1
    assert "no local stack with an alerts queue" in capsys.readouterr().err
