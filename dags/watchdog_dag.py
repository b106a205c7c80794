"""Watchdog: on a timer, checks what no pipeline run can report because none is running.

Files waiting in landing/ longer than a bound (the landing trigger or the triggerer is down),
no ingest run waiting for files (polling only), no accepted data for too long, a champion too
old, retrains failing or held too many times in a row, and a champion measured below the gate's
floor on the newest rows. Each finding alerts once when it
starts and once when it clears (retrain.watchdog, retrain.alerts). A timer is right here: this is
monitoring, not retraining; the pipeline itself is started by data only.
"""

from __future__ import annotations

from datetime import timedelta

from _shared.common import ALERTING, CONFIG, DAG_KWARGS, TAGS, storage
from airflow.sdk import dag, get_current_context, task

# An ingest run ends and the next one starts within seconds: look again for this long before
# calling "no ingest run" a finding.
INGEST_GAP_S = 30.0
# [orchestration] arrival = "events": an ingest run exists only while a batch is at work
EVENTS = CONFIG.orchestration.arrival == "events"


@dag(
    dag_id="watchdog",
    schedule=timedelta(minutes=CONFIG.watchdog.interval_minutes),
    tags=[*TAGS, "monitoring"],
    doc_md=__doc__,
    **DAG_KWARGS,
)
def watchdog():
    @task(retries=0)  # the next tick is the retry
    def check_health() -> dict:
        from retrain import watchdog

        context = get_current_context()
        facts = watchdog.gather(
            storage(),
            CONFIG,
            # with notifications, no ingest run between batches is normal: nothing to check
            ingest_waiting=None if EVENTS else ingest_waiting(context["ti"]),
            triggerer_healthy=triggerer_healthy(),
        )
        watchdog.record_metrics(facts, CONFIG)
        findings = watchdog.check(facts, CONFIG.watchdog)
        alerts = watchdog.apply(ALERTING.incidents(), findings, links=(ALERTING.airflow_url(),))
        for alert in alerts:
            ALERTING.send(alert, context)
        active = [f.incident for f in findings if f.active]
        return {"facts": facts.as_dict(), "active": active, "alerts": [a.subject for a in alerts]}

    check_health()


def ingest_waiting(ti) -> bool:
    """Whether an ingest run exists (its sensor waiting in the triggerer, or a batch at work),
    asked of Airflow through the task's own API; looked at again over INGEST_GAP_S."""
    import time

    deadline = time.monotonic() + INGEST_GAP_S
    while True:
        if ti.get_dr_count(dag_id="ingest", states=["running", "queued"]) > 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(2.0)


def triggerer_healthy() -> bool | None:
    """The api-server's health answer for the triggerer (None if it cannot be asked)."""
    import json
    import urllib.request

    url = f"{ALERTING.airflow_url()}/api/v2/monitor/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            health = json.load(resp)
    except (OSError, ValueError):
        return None
    return (health.get("triggerer") or {}).get("status") == "healthy"


watchdog()
