"""Ingest: notice files in landing/, gate each with GX, route it.

How arrivals are noticed is ``[orchestration] arrival`` (README, "Event notifications"):

- ``poll`` (default): runs continuously, one run at a time; its first task waits in the
  triggerer for files in landing/ and takes the settled listing as the batch;
- ``events``: scheduled on the ``landing`` asset, whose watcher reads the bucket's S3 event
  notifications from SQS in the triggerer (one asset event per settled burst), or on the
  reconciler's slow timetable, whichever comes first. Its first task takes the notified keys
  still in landing/ plus anything older than the grace period (a lost notification), and skips
  the run when there is nothing (a redelivered notification).

Then the batch is validated by ``[ingest] validate_tasks`` parallel tasks, each given its share
of the files as an XCom of its own (reading, hashing, the raw GX checkpoint; nothing moves
there); files of ``[resources] large_file_mb`` or more go to ``validate_large`` instead, on the
heavy queue and pool. The shares are fixed tasks rather than a mapped one so that the landing
trigger can end its task itself with the shares as XComs: no worker process between the wait
and the validation. Then one task routes every file exactly once: valid files to
raw/, invalid, duplicate or unsafe ones to quarantine/ with a report. The raw asset is emitted
only when at least one valid file arrived, so a bad file never triggers training.
"""

from __future__ import annotations

from datetime import timedelta

from _shared.common import ALERTING, CONFIG, DAG_KWARGS, HEAVY, LARGE_FILE_BYTES, RAW, TAGS, storage
from airflow.sdk import dag, get_current_context, task

from retrain.batching import LARGE_KEY, chunk_key

_O = CONFIG.orchestration
_S = CONFIG.storage
_WAIT = timedelta(hours=_O.wait_timeout_hours)
EVENTS = _O.arrival == "events"

if EVENTS:
    from airflow.sdk import Asset, AssetOrTimeSchedule, AssetWatcher, DeltaTriggerTimetable

    from triggers.landing_events import LandingQueueTrigger

    # Watched by the triggerer: one event per settled burst of landing/ notifications.
    LANDING = Asset(
        name="landing",
        uri=f"s3://{_S.bucket}/{_S.landing_prefix}",
        watchers=[
            AssetWatcher(
                name="landing_notifications",
                trigger=LandingQueueTrigger(
                    queue_url=_O.queue_url,
                    aws_conn_id=_O.aws_conn_id,
                    bucket=_S.bucket,
                    prefix=_S.landing_prefix,
                    ignore_patterns=list(CONFIG.ingest.ignore_patterns),
                    poll_interval=_O.poll_interval,
                    settle_seconds=_O.settle_seconds,
                    max_settle_seconds=_O.max_settle_seconds,
                    max_batch_files=_O.max_batch_files,
                ),
            )
        ],
    )
    # The reconciler: the same DAG on a slow timer, so its runs queue behind event runs (one
    # run at a time) and route through the same tasks.
    SCHEDULE = AssetOrTimeSchedule(
        timetable=DeltaTriggerTimetable(timedelta(minutes=_O.reconcile_minutes)),
        assets=[LANDING],
    )
else:
    SCHEDULE = "@continuous"


@task
def take_batch() -> None:
    """Events mode: the notified keys still in landing/ and anything older than the grace
    period, split for the validate tasks (one XCom each); skips the run when there is nothing
    to take."""
    import logging
    from datetime import UTC, datetime

    from airflow.sdk.exceptions import AirflowSkipException

    from retrain.arrivals import notified_keys, select_batch
    from retrain.batching import chunk_xcoms
    from retrain.steps.ingest import landed_files

    context = get_current_context()
    try:
        events = list(context["triggering_asset_events"][LANDING])
    except KeyError:  # a reconciler run: no asset event
        events = []
    extras = [event.extra for event in events]
    batch, counts = select_batch(
        landed_files(storage(), CONFIG),
        notified_keys(extras),
        now=datetime.now(UTC),
        grace_seconds=_O.reconcile_grace_seconds,
        max_files=_O.max_batch_files,
    )
    why = (
        f"{len(extras)} notification event(s) naming {counts['notified']} key(s), "
        f"{counts['gone']} no longer in landing/ (already routed: a redelivery), "
        f"{counts['swept']} taken by the sweep (older than {_O.reconcile_grace_seconds:g} s)"
        + (f", {counts['left']} left for the next run" if counts["left"] else "")
    )
    if not batch:
        raise AirflowSkipException(f"nothing to ingest: {why}")
    logging.getLogger(__name__).info(
        "Batch of %d file(s): %s: %s", len(batch), why, [f["key"] for f in batch]
    )
    ti = context["ti"]
    for key, chunk in chunk_xcoms(batch, CONFIG.ingest.validate_tasks, LARGE_FILE_BYTES).items():
        ti.xcom_push(key=key, value=chunk)


@dag(
    dag_id="ingest",
    schedule=SCHEDULE,
    tags=[*TAGS, "ingest"],
    doc_md=__doc__,
    **DAG_KWARGS,
)
def ingest():
    if EVENTS:
        batch = take_batch()
    else:
        from triggers.landing import LandingSensor

        batch = LandingSensor(
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
            large_file_bytes=LARGE_FILE_BYTES,
            execution_timeout=_WAIT + timedelta(minutes=10),
        ).output

    @task
    def validate(chunk: list[dict] | str) -> list[dict]:
        from retrain.batching import chunk_of

        chunk = chunk_of(chunk)
        if not chunk:  # fewer files than validate tasks: nothing to import or read
            return []
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

    shares = [
        validate.override(task_id=f"validate_{i}")(chunk=batch[chunk_key(i)])
        for i in range(CONFIG.ingest.validate_tasks)
    ]
    # Files of [resources] large_file_mb or more: one task on the heavy queue and pool, first in
    # line for the pool's next free slot (a batch waits for one heavy task, never a whole retrain)
    large = validate.override(task_id="validate_large", priority_weight=10, **HEAVY)
    shares.append(large(chunk=batch[LARGE_KEY]))
    publish_raw(route(shares))


ingest()
