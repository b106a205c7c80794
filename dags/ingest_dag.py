"""Ingest: wait in the triggerer for files in landing/, gate each with GX, route it.

The batch is validated by a few parallel mapped tasks (reading, hashing, the raw GX checkpoint;
nothing moves there), then one task routes every file exactly once: valid files to raw/, invalid,
duplicate or unsafe ones to quarantine/ with a report. The raw asset is emitted only when at least
one valid file arrived, so a bad file never triggers training. Runs continuously, one run at a
time: each run is one settled batch.
"""

from __future__ import annotations

from datetime import timedelta

from _shared.common import ALERTING, CONFIG, DAG_KWARGS, RAW, TAGS, storage
from airflow.sdk import dag, get_current_context, task

from triggers.landing import LandingSensor

_O = CONFIG.orchestration
_WAIT = timedelta(hours=_O.wait_timeout_hours)


@dag(
    dag_id="ingest",
    schedule="@continuous",
    tags=[*TAGS, "ingest"],
    doc_md=__doc__,
    **DAG_KWARGS,
)
def ingest():
    files = LandingSensor(
        task_id="wait_for_files",
        bucket=CONFIG.storage.bucket,
        prefix=CONFIG.storage.landing_prefix,
        aws_conn_id=_O.aws_conn_id,
        poll_interval=_O.poll_interval,
        idle_poll_interval=_O.idle_poll_interval,
        settle_seconds=_O.settle_seconds,
        max_settle_seconds=_O.max_settle_seconds,
        max_batch_files=_O.max_batch_files,
        wait_timeout=_WAIT,
        ignore_patterns=list(CONFIG.ingest.ignore_patterns),
        split_into=CONFIG.ingest.validate_tasks,
        execution_timeout=_WAIT + timedelta(minutes=10),
    )

    @task
    def validate(chunk: list[dict]) -> list[dict]:
        from retrain.steps.ingest import batch_id_for
        from retrain.steps.validate import validate_files

        batch_id = batch_id_for(get_current_context()["run_id"])
        verdicts = validate_files(storage(), CONFIG, chunk, batch_id=batch_id)
        return [v.as_dict() for v in verdicts]

    @task
    def route(verdicts: list[list[dict]]) -> dict:
        from retrain.steps.ingest import alert_quarantined, batch_id_for, route_batch

        context = get_current_context()
        flat = [v for chunk in verdicts for v in chunk]
        bucket = storage()
        result = route_batch(bucket, CONFIG, flat, batch_id=batch_id_for(context["run_id"]))
        ALERTING.send(alert_quarantined(ALERTING.incidents(), bucket, result), context)
        return result.as_dict()

    @task(outlets=[RAW])
    def publish_raw(batch: dict) -> None:
        from airflow.sdk.exceptions import AirflowSkipException

        if not batch["raw_keys"]:
            raise AirflowSkipException(
                f"batch {batch['batch_id']}: no valid file, nothing to train on "
                f"({len(batch['quarantined'])} quarantined)"
            )
        get_current_context()["outlet_events"][RAW].extra = {
            "batch_id": batch["batch_id"],
            "raw_keys": batch["raw_keys"],
        }

    publish_raw(route(validate.expand(chunk=files.output)))


ingest()
