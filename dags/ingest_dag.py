"""Ingest: wait in the triggerer for files in landing/, gate each with GX, route it.

Valid files move to raw/, invalid ones to quarantine/ with their validation report. The raw asset
is emitted only when at least one valid file arrived, so a bad file never triggers training.
Runs continuously, one run at a time: each run is one settled batch.
"""

from __future__ import annotations

from datetime import timedelta

from _shared.common import CONFIG, DAG_KWARGS, RAW, TAGS, storage
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
        settle_seconds=_O.settle_seconds,
        wait_timeout=_WAIT,
        execution_timeout=_WAIT + timedelta(minutes=10),
    )

    @task
    def validate_and_route(files: list[dict]) -> dict:
        from retrain.pipeline import batch_id_for, ingest_batch

        run_id = get_current_context()["run_id"]
        return ingest_batch(storage(), CONFIG, files, batch_id=batch_id_for(run_id)).as_dict()

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

    publish_raw(validate_and_route(files.output))


ingest()
