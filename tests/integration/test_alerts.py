"""Incidents and alerts on a real bucket: one alert per failing run, "still failing" for the
same reason, a new incident for another, once per watchdog finding, one recovery."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from retrain import watchdog
from retrain.alerts import Incidents, report_uris, same_reason
from retrain.config import Config
from retrain.layout import Layout
from retrain.storage import S3Storage

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def incidents(config: Config, storage: S3Storage) -> Incidents:
    cfg = replace(config, storage=replace(config.storage, bucket=storage.bucket))
    return Incidents(storage, Layout.of(cfg))


def test_a_failing_dag_alerts_once_per_run_then_still_failing(incidents: Incidents) -> None:
    reason = "check_training_set: training set rejected (120 rows): only 120 rows"
    first = incidents.failed("dag:retrain", "retrain failed", reason, run="r1", now=T0)
    assert first is not None and first.status == "failed" and first.runs == 1
    again = incidents.failed("dag:retrain", "retrain failed", reason, run="r1", now=T0)
    assert again is None, "a second failing task of the same run alerts nothing"
    later = T0 + timedelta(minutes=5)
    second = incidents.failed(
        "dag:retrain", "retrain failed", reason.replace("120", "240"), run="r2", now=later
    )
    third = incidents.failed("dag:retrain", "retrain failed", reason, run="r3", now=later)
    assert second is not None and second.status == "still_failing" and second.runs == 2
    assert third is not None and third.runs == 3 and third.since == first.since
    assert "still failing since 2026-11-30T08:00:00+00:00, 3 runs" in third.text()
    (open_,) = incidents.open()
    assert open_.name == "dag:retrain" and open_.runs == 3


def test_another_reason_opens_a_new_incident(incidents: Incidents) -> None:
    incidents.failed("dag:ingest", "ingest failed", "route: S3 down", run="a", now=T0)
    other = incidents.failed("dag:ingest", "ingest failed", "validate: boom", run="b", now=T0)
    assert other is not None and other.status == "failed" and other.runs == 1


def test_recovery_closes_the_incident_once(incidents: Incidents) -> None:
    incidents.failed("dag:retrain", "retrain failed", "x: y", run="r1", now=T0)
    recovered = incidents.cleared("dag:retrain", "retrain recovered", "run r2 succeeded")
    assert recovered is not None and recovered.status == "recovered" and recovered.runs == 1
    assert "RECOVERED" in recovered.subject and "was failing since" in recovered.text()
    assert incidents.cleared("dag:retrain", "retrain recovered", "again") is None
    assert incidents.open() == []


def test_a_warning_alerts_when_it_opens_only(incidents: Incidents) -> None:
    assert incidents.warning("watchdog:data_age", "no new data", "none for 3 days") is not None
    assert incidents.warning("watchdog:data_age", "no new data", "none for 4 days") is None
    history = incidents.history()
    assert [a["status"] for a in history] == ["warning"]
    assert history[0]["subject"] == "[retrain] WARNING: no new data"


def test_the_streak_counts_runs_without_a_deploy(incidents: Incidents) -> None:
    assert incidents.streak() is None
    incidents.bump_streak("r1", "held: drift")
    incidents.bump_streak("r1", "held: drift")  # one run counts once
    streak = incidents.bump_streak("r2", "failed: rejected")
    assert streak.runs == 2 and streak.reason == "failed: rejected"
    incidents.reset_streak()
    assert incidents.streak() is None


def test_the_watchdog_opens_and_clears_findings(
    config: Config, storage: S3Storage, incidents: Incidents
) -> None:
    cfg = replace(config, storage=replace(config.storage, bucket=storage.bucket))
    storage.put_bytes(f"{cfg.storage.landing_prefix}waiting.csv", b"a,b\n1,2\n")
    later = datetime.now(UTC) + timedelta(minutes=cfg.watchdog.max_landing_wait_minutes + 1)
    facts = watchdog.gather(storage, cfg, now=later, triggerer_healthy=False)
    assert facts.landing_count == 1 and facts.oldest_landing_key.endswith("waiting.csv")
    alerts = watchdog.apply(incidents, watchdog.check(facts, cfg.watchdog))
    assert [a.incident for a in alerts] == ["watchdog:landing_wait"]
    assert "triggerer is down" in alerts[0].reason
    assert watchdog.apply(incidents, watchdog.check(facts, cfg.watchdog)) == []  # once
    storage.delete(f"{cfg.storage.landing_prefix}waiting.csv")
    drained = watchdog.gather(storage, cfg, now=later)
    (recovery,) = watchdog.apply(incidents, watchdog.check(drained, cfg.watchdog))
    assert recovery.status == "recovered" and recovery.incident == "watchdog:landing_wait"
    assert "first seen " in recovery.text() and "failing" not in recovery.text()


def test_reasons_and_links() -> None:
    assert same_reason("only 120 rows (at least 500)", "only 240 rows (at least 500)")
    assert not same_reason("only 120 rows", "customer_id has duplicate values")
    text = "rejected -- report: s3://b/reports/training/x.json; the champion keeps serving"
    assert report_uris(text) == ("s3://b/reports/training/x.json",)


def test_decisions_worth_a_look_send_a_notice(
    config: Config, storage: S3Storage, incidents: Incidents
) -> None:
    from retrain.steps.retrain import DeployResult, record_outcome

    cfg = replace(config, storage=replace(config.storage, bucket=storage.bucket))

    def outcome(deployed: bool, reason: str, run: str, rule: str, gate=None):
        """The policy's record (``gate``: what it decided, if not ``deployed``) and the deploy."""
        record = {"version": "v2", "deploy": deployed if gate is None else gate, "rule": rule}
        result = DeployResult("v2-serving", deployed, reason, "v1")
        return record_outcome(incidents, storage, cfg, record, result, run=run)

    assert outcome(True, "deploy: first model, auc 0.78 >= floor 0.60", "r1", "first_model") is None
    assert outcome(True, "deploy: better with confidence", "r1b", "better") is None
    drifted = outcome(
        True,
        "deploy: data drifted: contract (PSI 0.50), and the challenger is non-inferior",
        "r2",
        "non_inferior_after_change",
    )
    assert drifted is not None and "deployed v2-serving after a change" in drifted.subject
    assert drifted.links == (f"s3://{storage.bucket}/reports/decisions/v2.html",)
    assert outcome(False, "hold: not better with confidence", "r3", "not_better") is None
    held = outcome(False, "hold: challenger auc 0.55 < floor 0.60", "r4", "below_floor")
    assert held is not None and "2 run(s) in a row without a deploy" in held.subject
    assert incidents.streak().runs == 2
    inferior = outcome(
        False, "hold: data drifted, not non-inferior", "r4b", "inferior_after_change"
    )
    assert inferior is not None and "3 run(s) in a row" in inferior.subject
    raced = outcome(
        False, "champion changed from v1 to v3 after the decision", "r5", "better", gate=True
    )
    assert raced is not None and "4 run(s) in a row" in raced.subject


def test_the_latest_alerts_are_read_without_listing_all_of_them(
    incidents: Incidents, storage: S3Storage
) -> None:
    layout = incidents.layout
    for days_ago in (400, 40, 3, 0.5):
        when = T0 - timedelta(days=days_ago)
        storage.put_json(layout.alert_key(when, f"dag:{days_ago}"), {"at": when.isoformat()})
    listed: list[str] = []
    list_objects = storage.list_objects
    storage.list_objects = lambda prefix, **kw: (
        listed.append(kw.get("start_after", "")) or (list_objects(prefix, **kw))
    )
    newest = incidents.history(limit=2, now=T0)
    assert [a["at"] for a in newest] == [(T0 - timedelta(days=d)).isoformat() for d in (0.5, 3)]
    assert len(listed) == 2 and all(listed), "a day, then a week: never the whole history"
    assert len(incidents.history(limit=10, now=T0)) == 4


def test_a_batch_with_quarantined_files_sends_one_notice(
    config: Config, storage: S3Storage, incidents: Incidents
) -> None:
    from retrain.steps.ingest import FileOutcome, IngestResult, alert_quarantined

    bad = [
        FileOutcome(
            f"landing/b{i}.csv", f"quarantine/b{i}.csv", False, f"reason {i}", f"q/b{i}.json"
        )
        for i in range(5)
    ]
    bad[0] = replace(bad[0], result_key="reports/validations/batch1/o0.json")
    good = FileOutcome("landing/a.csv", "raw/a.csv", True, "passed")
    result = IngestResult("batch1", (good, *bad), (), "reports/validations/batch1.html")
    alert = alert_quarantined(incidents, storage, result)
    assert (
        alert is not None
        and alert.subject == "[retrain] NOTICE: 5 file(s) quarantined in batch batch1"
    )
    assert alert.reason.startswith("b0.csv: reason 0; b1.csv: reason 1; b2.csv: reason 2")
    assert alert.reason.endswith("and 2 more")
    assert alert.links[0].endswith("reports/validations/batch1.html") and len(alert.links) == 5
    # a file's GX result page (it opens in a browser), then its quarantine report (for scripts)
    assert alert.links[1].endswith("reports/validations/batch1/o0.html")
    assert alert.links[2].endswith("q/b0.json") and alert.links[3].endswith("q/b1.json")
    assert alert_quarantined(incidents, storage, IngestResult("b2", (good,), (), None)) is None
