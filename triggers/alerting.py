"""Alerts from the DAGs and the triggerer, sent through an Airflow notifier chosen in the config.

Here, in the installed ``triggers`` package, because the triggerer imports deadline callbacks by
their path and does not have the DAG folder on its ``sys.path``. ``dags/_shared/common.py``
builds one :class:`Alerting` and wires it into every DAG:

- :class:`PipelineFailureNotifier` is every task's ``on_failure_callback``: Airflow calls it
  once, after the last retry, in the worker. :class:`retrain.alerts.Incidents` decides
  "FAILED", "still failing" or nothing (a run alerts once), then the alert is sent.
- :meth:`Alerting.dag_succeeded` is every pipeline DAG's ``on_success_callback``: it closes the
  DAG's incident with one "RECOVERED" message.
- :meth:`Alerting.send`: the task log always, plus the configured notifier (``[alerts]
  notifier``; ``sns`` is the amazon provider's ``SnsNotifier``). Sending never fails the
  pipeline: a notifier error is logged, and the alert stays in the bucket's history.

- :func:`run_overdue` is the callback of the features and retrain DAGs' DeadlineAlert
  (:meth:`Alerting.deadline`): a run still unfinished after ``[watchdog] max_run_minutes``.

A task killed with SIGKILL (or by the OOM killer) runs no callback: the watchdog DAG's streak
and staleness checks are the net for that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from retrain.alerts import Alert, Incidents
    from retrain.config import Config
    from retrain.report_links import WebLinks
    from retrain.storage import S3Storage

log = logging.getLogger("retrain.alerts")


class Alerting:
    """The config's alert channel and the bucket's incidents, for callbacks and tasks."""

    def __init__(self, cfg: Config, storage: Callable[[], S3Storage]) -> None:
        self.cfg, self.storage = cfg, storage

    def incidents(self) -> Incidents:
        from retrain.alerts import Incidents
        from retrain.layout import Layout

        return Incidents(self.storage(), Layout.of(self.cfg))

    def airflow_url(self) -> str:
        """The Airflow UI for links: ``[alerts] airflow_url``, else ``[api] base_url``."""
        if self.cfg.alerts.airflow_url:
            return self.cfg.alerts.airflow_url.rstrip("/")
        from airflow.configuration import conf

        return (conf.get("api", "base_url", fallback="") or "").rstrip("/")

    def web(self) -> WebLinks:
        """How reports open in a browser: through the plugin, under the Airflow UI's URL."""
        from retrain.report_links import WebLinks

        storage = self.cfg.storage
        return WebLinks(self.airflow_url(), storage.bucket, storage.reports_prefix)

    def run_url(self, dag_id: str, run_id: str, task_id: str | None = None) -> str:
        url = f"{self.airflow_url()}/dags/{dag_id}/runs/{quote(run_id, safe='')}"
        return f"{url}/tasks/{task_id}" if task_id else url

    def send(self, alert: Alert | None, context: Any = None) -> None:
        """The task log, then the configured notifier; a failure to notify fails nothing."""
        if alert is None:
            return
        text = alert.text(self.web())
        log.warning("ALERT %s | %s", alert.subject, text.replace("\n", " | "))
        if self.cfg.alerts.notifier != "sns":
            return
        from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

        try:
            SnsNotifier(
                aws_conn_id=self.cfg.orchestration.aws_conn_id,
                target_arn=self.cfg.alerts.sns_topic_arn,
                subject=alert.subject,
                message=text,
                region_name=self.cfg.storage.region,
            ).notify(context or {})
        except Exception:  # the alert is in the bucket's history; the run's outcome stands
            log.exception("could not send the alert to %s", self.cfg.alerts.sns_topic_arn)

    def task_failed(self, context: Any) -> None:
        from retrain.alerts import Alert, first_line, report_uris

        ti = context["ti"]
        error = context.get("exception")
        message = str(error) if error is not None else "failed without an error (killed?)"
        reason = f"{ti.task_id}: {first_line(message)}"
        links = (self.run_url(ti.dag_id, ti.run_id, ti.task_id), *report_uris(message))
        title = f"{ti.dag_id} failed"
        try:
            incidents = self.incidents()
            alert = incidents.failed(f"dag:{ti.dag_id}", title, reason, run=ti.run_id, links=links)
            if ti.dag_id == "retrain":
                incidents.bump_streak(ti.run_id, reason)
        except Exception:  # the bucket unreachable: still say it, in the log and the notifier
            log.exception("could not record the incident in the bucket")
            alert = Alert(f"dag:{ti.dag_id}", "failed", title, reason, links)
        self.send(alert, context)
        self.republish_index()

    def republish_index(self) -> None:
        """The reports index lists open incidents: show a failure (or its recovery) now, not at
        the next batch. Best effort: the alert has gone out either way."""
        from retrain.steps.reporting import publish_index

        try:
            publish_index(self.storage(), self.cfg)
        except Exception:
            log.exception("could not republish the reports index")

    def dag_succeeded(self, context: Any) -> None:
        """``on_success_callback`` of every pipeline DAG: a failing DAG has recovered."""
        dag_run = context["dag_run"]
        url = self.run_url(dag_run.dag_id, dag_run.run_id)
        try:
            alert = self.incidents().cleared(
                f"dag:{dag_run.dag_id}",
                f"{dag_run.dag_id} recovered",
                f"run {dag_run.run_id} succeeded: {url}",
            )
        except Exception:
            log.exception("could not close the incident of %s", dag_run.dag_id)
            return
        self.send(alert, context)
        if alert is not None:
            self.republish_index()

    def run_overdue(self, dag_run: dict[str, Any], minutes: float) -> None:
        """A deadline missed: the run exists but has not finished in time (stuck in a queue, a
        task hanging). One notice per run: Airflow fires a deadline once."""
        dag_id, run_id = dag_run.get("dag_id", "?"), dag_run.get("dag_run_id", "?")
        state = dag_run.get("state", "?")
        alert = self.incidents().notice(
            f"deadline:{dag_id}",
            f"{dag_id} run not finished after {minutes:g} min",
            f"run {run_id} queued at {dag_run.get('queued_at', '?')} is still {state}",
            links=(self.run_url(dag_id, run_id),),
        )
        self.send(alert)

    def deadline(self, minutes: float) -> Any:
        """The DeadlineAlert for a pipeline DAG: a run not finished ``minutes`` after it was
        queued calls :func:`run_overdue` in the triggerer."""
        from datetime import timedelta

        from airflow.sdk.definitions.callback import AsyncCallback
        from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

        return DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(minutes=minutes),
            callback=AsyncCallback(f"{__name__}.run_overdue", kwargs={"minutes": minutes}),
        )

    def failure_notifier(self) -> PipelineFailureNotifier:
        return PipelineFailureNotifier(self)


class PipelineFailureNotifier(BaseNotifier):
    """``on_failure_callback`` of every pipeline task: one alert per failing run, with the
    first line of the error, the task's URL in the Airflow UI and any report the error names."""

    template_fields = ()

    def __init__(self, alerting: Alerting) -> None:
        super().__init__()
        self.alerting = alerting

    def notify(self, context: Any) -> None:
        self.alerting.task_failed(context)


def bucket(cfg: Config) -> S3Storage:
    """The bucket, through the Airflow connection: the hook owns the client."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from retrain.storage import S3Storage

    client = S3Hook(aws_conn_id=cfg.orchestration.aws_conn_id).get_conn()
    return S3Storage(client, cfg.storage.bucket)


async def run_overdue(context: dict, minutes: float, **_: object) -> None:
    """The deadline callback. Airflow runs it in the triggerer, with the DAG run as ``context``;
    the config comes from the environment as everywhere, the blocking S3 and SNS calls run in a
    thread."""
    import asyncio
    import functools

    from retrain.config import load_config

    cfg = load_config()
    alerting = Alerting(cfg, functools.partial(bucket, cfg))
    await asyncio.to_thread(alerting.run_overdue, context.get("dag_run") or {}, minutes)
