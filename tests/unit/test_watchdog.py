"""The watchdog's checks on constructed facts: each finding starts and clears at its limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retrain.config import WatchdogConfig
from retrain.watchdog import Facts, Finding, check

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LIMITS = WatchdogConfig(
    max_data_age_hours=48,
    max_champion_age_hours=168,
    max_landing_wait_minutes=15,
    max_failed_retrains=3,
)


def findings(**facts) -> dict[str, Finding]:
    return {f.incident: f for f in check(Facts(now=NOW, **facts), LIMITS)}


def active(**facts) -> set[str]:
    return {name for name, f in findings(**facts).items() if f.active}


def test_a_healthy_pipeline_has_no_finding() -> None:
    assert (
        active(
            last_accepted_at=NOW - timedelta(hours=1),
            champion_deployed_at=NOW - timedelta(hours=2),
            ingest_waiting=True,
            triggerer_healthy=True,
        )
        == set()
    )


def test_nothing_known_is_not_an_alarm() -> None:
    """A fresh deployment (no data, no champion, Airflow not asked) raises nothing."""
    assert active() == set()


def test_files_waiting_past_the_limit_name_the_oldest_and_the_suspects() -> None:
    found = findings(
        landing_count=2,
        oldest_landing_key="landing/a.csv",
        oldest_landing_at=NOW - timedelta(minutes=20),
        triggerer_healthy=False,
    )["watchdog:landing_wait"]
    assert found.active
    assert "landing/a.csv" in found.reason and "20 min" in found.reason
    assert "triggerer is down" in found.reason
    assert not findings(oldest_landing_at=NOW - timedelta(minutes=14))[
        "watchdog:landing_wait"
    ].active


def test_no_ingest_run_is_a_finding_only_when_airflow_said_so() -> None:
    assert "watchdog:ingest_not_waiting" in active(ingest_waiting=False)
    assert "watchdog:ingest_not_waiting" not in active(ingest_waiting=None)


def test_stale_data_and_champion() -> None:
    stale = active(
        last_accepted_at=NOW - timedelta(hours=49),
        last_accepted_key="raw/x.csv",
        champion_version="v1",
        champion_deployed_at=NOW - timedelta(days=8),
    )
    assert stale == {"watchdog:data_age", "watchdog:champion_age"}
    reason = findings(last_accepted_at=NOW - timedelta(hours=49), last_accepted_key="raw/x.csv")[
        "watchdog:data_age"
    ].reason
    assert "raw/x.csv" in reason and "2 days" in reason


def test_a_streak_of_failed_retrains_alerts_at_the_limit() -> None:
    assert "watchdog:retrain_streak" not in active(streak_runs=2)
    found = findings(streak_runs=3, streak_since="2026-11-30T08:00:00+00:00", streak_reason="x")
    assert found["watchdog:retrain_streak"].active
    assert "3 retrain runs in a row" in found["watchdog:retrain_streak"].reason
