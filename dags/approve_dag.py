"""Approve: a person signs off a deploy ([gate] approval), in Airflow's Required Actions.

Scheduled on the pending_approval asset, which the retrain DAG's request_approval task emits
instead of deploying. find_pending takes the approval its asset event names, while it is still
pending (an older one was closed as superseded when a newer one asked). wait_for_approval is a
human-in-the-loop task: on Airflow 3.3 it waits in the awaiting_input state, holding no worker,
triggerer or pool slot, until a person answers in the UI or through the REST API (`retrain
approve|reject VERSION`), or until [gate] approval_timeout_hours pass (then [gate]
approval_on_timeout decides). settle deploys an approval exactly as the retrain DAG would
(compare-and-swap), or records the hold, and alerts. Runs are independent (a waiting approval
never blocks a newer one), and no run deadline applies: waiting for a person is the point.
"""

from __future__ import annotations

from datetime import timedelta

from _shared.common import (
    ALERTING,
    CONFIG,
    DAG_KWARGS,
    MODEL,
    PENDING_APPROVAL,
    TAGS,
    event_version,
    storage,
)
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, get_current_context, task

from retrain.approvals import APPROVE, REJECT

GATE = CONFIG.gate
APPROVAL_TASK = "wait_for_approval"


@dag(
    dag_id="approve",
    schedule=[PENDING_APPROVAL],
    tags=[*TAGS, "approval"],
    doc_md=__doc__,
    **{**DAG_KWARGS, "max_active_runs": 16},
)
def approve():
    @task
    def find_pending() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from retrain.report_links import url_of_uri
        from retrain.reports import report_keys
        from retrain.steps.approval import question, to_ask

        bucket = storage()
        asked_for = event_version(get_current_context(), PENDING_APPROVAL)
        approval = to_ask(bucket, CONFIG, asked_for)
        if approval is None:
            raise AirflowSkipException(
                f"{asked_for or 'no approval'} is not pending any more (answered or superseded)"
            )
        page = report_keys(CONFIG.storage.reports_prefix, approval.version).decision
        url = url_of_uri(
            ALERTING.airflow_url(), bucket.bucket, CONFIG.storage.reports_prefix, bucket.uri(page)
        )
        return {"version": approval.version, **question(bucket, CONFIG, approval, url)}

    pending = find_pending()
    wait = HITLOperator(
        task_id=APPROVAL_TASK,
        subject="{{ ti.xcom_pull(task_ids='find_pending')['subject'] }}",
        body="{{ ti.xcom_pull(task_ids='find_pending')['body'] }}",
        options=[APPROVE, REJECT],
        defaults=[APPROVE if GATE.approval_on_timeout == "deploy" else REJECT],
        params={"comment": Param("", type="string", description="why (kept in the record)")},
        response_timeout=timedelta(hours=GATE.approval_timeout_hours),
        assigned_users=[{"id": user, "name": user} for user in GATE.approvers] or None,
    )

    @task(outlets=[MODEL])
    def settle(pending: dict, response: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from retrain.steps.approval import settle

        context = get_current_context()
        done, alert = settle(
            storage(),
            CONFIG,
            pending["version"],
            response,
            ALERTING.incidents(),
            run=context["run_id"],
        )
        ALERTING.send(alert, context)
        if not done.deployed:
            raise AirflowSkipException(done.outcome)
        return done.as_dict()

    pending >> wait
    settle(pending, wait.output)


approve()
