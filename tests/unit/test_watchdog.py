"""The watchdog's checks on constructed facts: each finding starts and clears at its limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retrain.alerts import Alert
from retrain.config import WatchdogConfig
from retrain.watchdog import FLOOR_INCIDENT, Facts, Finding, champion_floor_reason, check

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


SEPTEMBER = {
    "version": "v9",
    "deploy": False,
    "rule": "below_floor",
    "decided_at": "2026-11-30T11:00:00+00:00",
    "champion_version": "v8-refit",
    "conditions": {"floor": {"challenger": 0.594, "floor": 0.6, "passed": False}},
    "comparison": {"metric": "auc", "challenger": 0.594, "champion": 0.58, "delta": 0.014},
    "policy": {"gate": {"metric": "auc", "min_metric": 0.6}},
}


def test_a_champion_below_the_floor_is_a_finding_until_another_model_serves() -> None:
    reason = champion_floor_reason(SEPTEMBER, "v8-refit")
    assert "v8-refit scored 0.5800" in reason and "floor 0.6000" in reason
    assert "0.5940" in reason and "v9" in reason
    found = findings(champion_below_floor=reason)[FLOOR_INCIDENT]
    assert found.active and found.reason == reason and found.title == "champion below the floor"
    assert FLOOR_INCIDENT not in active(champion_below_floor="")
    # another model serves (a deploy or a rollback since the decision): over
    assert champion_floor_reason(SEPTEMBER, "v10-refit") == ""
    assert champion_floor_reason(SEPTEMBER, None) == ""
    # the champion above the floor on the same rows, or a deploy: nothing wrong
    above = SEPTEMBER | {"comparison": {**SEPTEMBER["comparison"], "champion": 0.61}}
    assert champion_floor_reason(above, "v8-refit") == ""
    assert champion_floor_reason(SEPTEMBER | {"deploy": True, "rule": "better"}, "v8-refit") == ""
    assert champion_floor_reason(None, "v8-refit") == ""


def test_the_floor_finding_opens_and_clears_through_incidents() -> None:
    """apply() on the finding: one warning when it opens, none while open, one recovery."""
    from retrain.watchdog import apply

    class Memory:
        def __init__(self) -> None:
            self.open: set[str] = set()
            self.sent: list[tuple[str, str]] = []

        def warning(self, name, title, reason, *, links=()):
            if name in self.open:
                return None
            self.open.add(name)
            self.sent.append(("warning", title))
            return ("warning", title)

        def cleared(self, name, title, reason):
            if name not in self.open:
                return None
            self.open.discard(name)
            self.sent.append(("recovered", title))
            return ("recovered", title)

    incidents = Memory()
    reason = champion_floor_reason(SEPTEMBER, "v8-refit")
    for _ in range(2):
        apply(incidents, check(Facts(now=NOW, champion_below_floor=reason), LIMITS))  # type: ignore[arg-type]
    apply(incidents, check(Facts(now=NOW), LIMITS))  # type: ignore[arg-type]
    assert incidents.sent == [
        ("warning", "champion below the floor"),
        ("recovered", "champion below the floor: cleared"),
    ]


def test_a_cleared_finding_says_when_it_was_first_seen_not_failing() -> None:
    """A finding is not a run: its recovery says since when it was seen; a DAG's says failing."""
    since = "2026-11-30T08:00:00+00:00"
    finding = Alert(
        "watchdog:landing_wait", "recovered", "landing wait: cleared", "drained", (), since
    )
    assert finding.text().splitlines() == ["drained", f"first seen {since}"]
    dag = Alert("dag:retrain", "recovered", "retrain recovered", "r2 succeeded", (), since, 2)
    assert dag.text().splitlines() == ["r2 succeeded", f"was failing since {since}, 2 runs"]
