"""The status screen on constructed facts: the "why no retrain?" line's cases and their order,
and a render that stays one screen."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from retrain.alerts import Incident
from retrain.status import (
    Accepted,
    Action,
    ChampionView,
    DagView,
    LastDecision,
    Limits,
    Pending,
    Quarantined,
    Run,
    SentAlert,
    Status,
    age,
    explain,
    render,
    run_phase,
)

NOW = "2026-10-01T09:00:00+00:00"
ACCEPTED = Accepted("raw/ingest_date=2026-10-01/batch=b1/a.csv", "landing/a.csv", "b1", "", 0)
DEPLOYED = LastDecision("v2", True, "deploy: challenger auc 0.81 vs champion 0.80", "")


def at(hours_ago: float) -> str:
    """An ISO stamp ``hours_ago`` before NOW, spelled with ``Z`` as Airflow does."""
    when = datetime.fromisoformat(NOW) - timedelta(hours=hours_ago)
    return f"{when:%Y-%m-%dT%H:%M:%S}Z"


def accepted(hours_ago: float) -> Accepted:
    return replace(ACCEPTED, at=at(hours_ago), age_s=hours_ago * 3600)


def decided(hours_ago: float, deploy: bool = True, reason: str = "") -> LastDecision:
    return replace(DEPLOYED, at=at(hours_ago), deploy=deploy, reason=reason or DEPLOYED.reason)


def quarantined(name: str, hours_ago: float, reason: str, retracted: bool = False) -> Quarantined:
    key = f"quarantine/ingest_date=2026-10-01/batch=b2/{name}"
    return Quarantined(key, name, reason, at(hours_ago), "b2", retracted)


def failing(dag_id: str, hours_ago: float, runs: int, reason: str) -> Incident:
    return Incident(f"dag:{dag_id}", reason, since=at(hours_ago), runs=runs, last_run="r9")


def dags(**states: str) -> tuple[DagView, ...]:
    """Airflow's view: each DAG's latest run in the given state (the rest succeeded)."""
    out = []
    for dag_id in ("ingest", "features", "retrain"):
        state = states.get(dag_id, "success")
        reason = "failed task(s): train" if state == "failed" else ""
        out.append(DagView(dag_id, (Run(f"{dag_id}-r9", state, at(0.5), "", reason),), False))
    return tuple(out)


def status(**changes) -> Status:
    """A healthy pipeline: fresh data, the last retrain after it deployed; nothing open."""
    base = Status(
        at=NOW,
        bucket="b",
        champion=ChampionView("v2", "auc", 0.81, at(1), 3600.0),
        last_accepted=accepted(2),
        pending=Pending(),
        quarantine_days=3,
        quarantined=(),
        quarantined_more=0,
        airflow="unknown (no Airflow API)",
        dags=None,
        last_decision=decided(1),
    )
    return replace(base, **changes)


# -- why no retrain? ---------------------------------------------------------------------------


def test_healthy_pipeline_says_what_the_last_retrain_did() -> None:
    assert explain(status()) == (
        "the last retrain ran 2026-10-01 08:00 (1h 0m ago) and deployed v2: "
        "deploy: challenger auc 0.81 vs champion 0.80"
    )


def test_a_single_hold_is_the_last_retrain_not_a_streak() -> None:
    held = decided(1, deploy=False, reason="hold: challenger auc 0.7900 vs champion 0.8100")
    streak = Incident("retrain", held.reason, since=at(1), runs=1)
    line = explain(status(last_decision=held, streak=streak))
    assert line.startswith("the last retrain ran 2026-10-01 08:00 (1h 0m ago) and held")
    assert "not v2" in line and "hold: challenger auc 0.7900" in line


def test_nothing_ever_ran() -> None:
    s = status(last_accepted=None, last_decision=None, champion=None)
    assert explain(s) == "no file has been accepted yet: drop data into landing/"


def test_a_failing_retrain_names_dag_since_and_reason() -> None:
    s = status(incidents=(failing("retrain", 3, 3, "train: only 120 rows"),))
    assert explain(s) == (
        "retrain failing since 2026-10-01 06:00 (3h 0m ago), 3 runs: train: only 120 rows"
    )


def test_the_upstream_failure_comes_first_and_names_the_others() -> None:
    s = status(
        incidents=(
            failing("retrain", 5, 2, "train: boom"),
            failing("ingest", 1, 1, "route: access denied"),
        )
    )
    line = explain(s)
    assert line.startswith("ingest failing since 2026-10-01 08:00 (1h 0m ago): route: access")
    assert line.endswith("; also failing: retrain")


def test_a_failed_run_without_incident_comes_from_airflow() -> None:
    """A task killed by SIGKILL runs no callback: no incident, but Airflow saw it fail."""
    line = explain(status(dags=dags(retrain="failed")))
    assert line == "retrain's last run retrain-r9 failed: failed task(s): train"


def test_a_failed_run_followed_by_a_running_one_is_not_the_answer() -> None:
    views = dags(ingest="running")
    ingest = replace(views[0], runs=(*views[0].runs, Run("ingest-r8", "failed", at(2))))
    assert explain(status(dags=(ingest, *views[1:]))).startswith("the last retrain ran")


def test_a_paused_dag_comes_before_everything() -> None:
    paused = tuple(replace(d, paused=d.dag_id == "ingest") for d in dags())
    s = status(dags=paused, incidents=(failing("retrain", 3, 3, "train: boom"),))
    assert explain(s).startswith("ingest paused in Airflow")


@pytest.mark.parametrize(
    ("health", "cause"),
    [
        ({}, "is the triggerer running, and the ingest DAG waiting?"),
        ({"triggerer": "unhealthy", "scheduler": "healthy"}, "Airflow's triggerer not healthy"),
    ],
)
def test_files_stuck_in_landing_past_the_limit(health, cause) -> None:
    pending = Pending(2, "landing/late.csv", at(0.4), 24 * 60)
    line = explain(status(pending=pending, health=health))
    assert line == f"2 file(s) waiting in landing/ for 24m (oldest landing/late.csv): {cause}"


def test_files_stuck_without_a_waiting_ingest_run() -> None:
    pending = Pending(1, "landing/late.csv", at(0.5), 30 * 60)
    s = status(pending=pending, dags=dags(ingest="success"), health={"triggerer": "healthy"})
    assert explain(s).endswith("(oldest landing/late.csv): no ingest run is waiting for files")


def test_files_stuck_with_event_arrival_point_at_the_notification() -> None:
    """With notifications no ingest run waits between batches: that is not the cause."""
    pending = Pending(1, "landing/late.csv", at(0.5), 30 * 60)
    s = status(
        pending=pending,
        dags=dags(ingest="success"),
        health={"triggerer": "healthy"},
        limits=Limits(arrival="events"),
    )
    line = explain(s)
    assert "no ingest run is waiting" not in line
    assert "notification to the landing queue" in line and "reconcile_minutes" in line


def test_files_just_landed_are_not_stuck() -> None:
    pending = Pending(1, "landing/new.csv", at(0.1), 6 * 60)
    assert explain(status(pending=pending)).startswith("the last retrain ran")


def test_a_failure_beats_files_waiting_and_quarantine() -> None:
    s = status(
        incidents=(failing("features", 1, 1, "featurize: bad parquet"),),
        pending=Pending(1, "landing/late.csv", at(1), 3600.0),
        quarantined=(quarantined("bad.csv", 0.5, "customer_id has duplicate values"),),
    )
    assert explain(s).startswith("features failing since")


def test_a_retrain_under_way() -> None:
    line = explain(status(dags=dags(ingest="running", retrain="running")))
    assert line == "retrain is running now: retrain-r9 (started 30m ago)"


def test_files_quarantined_since_the_last_accepted_one() -> None:
    s = status(
        quarantined=(
            quarantined("worse.csv", 0.5, "total_charges: 40% missing"),
            quarantined("bad.csv", 1, "customer_id has duplicate values"),
            quarantined("old.csv", 3, "before the accepted file"),
        ),
    )
    assert explain(s) == (
        "the last 2 file(s) were quarantined since the last accepted file "
        "(2026-10-01 07:00 (2h 0m ago)); newest worse.csv at 2026-10-01 08:30 (30m ago): "
        "total_charges: 40% missing"
    )


def test_retracted_files_are_not_a_rejected_upload() -> None:
    retracted = quarantined("a.csv", 0.5, "retracted by ann: wrong labels", retracted=True)
    assert explain(status(quarantined=(retracted,))).startswith("the last retrain ran")


def test_quarantine_with_nothing_ever_accepted_counts_the_unlisted() -> None:
    listed = tuple(quarantined(f"f{i}.csv", i, "empty file") for i in range(1, 4))
    s = status(last_accepted=None, quarantined=listed, quarantined_more=7)
    assert explain(s).startswith("the last 3+ file(s) were quarantined; newest f1.csv")


def test_no_new_data_past_the_limit() -> None:
    s = status(last_accepted=accepted(50), last_decision=decided(49))
    line = explain(s)
    assert line.startswith("no new data accepted since 2026-09-29 07:00 (2d 2h ago)")
    assert "(landing/a.csv)" in line


def test_data_accepted_after_the_last_decision_is_waiting_for_retrain() -> None:
    line = explain(status(last_accepted=accepted(1), last_decision=decided(2), dags=dags()))
    assert line.startswith("landing/a.csv was accepted 2026-10-01 08:00 (1h 0m ago) but the last")
    assert "no features or retrain run is under way" in line


def ingest_at(phase: str) -> tuple[DagView, ...]:
    """Airflow's view with the ingest run running at ``phase`` (the rest succeeded)."""
    views = dags(ingest="running")
    return (replace(views[0], runs=(replace(views[0].runs[0], phase=phase),)), *views[1:])


def test_an_ingest_run_still_publishing_is_under_way_not_a_lost_event() -> None:
    s = status(
        last_accepted=accepted(0.1), last_decision=decided(2), dags=ingest_at("publishing raw/")
    )
    assert explain(s) == (
        "landing/a.csv was accepted 2026-10-01 08:54 (6m ago) but the last decision was "
        "2026-10-01 07:00 (2h 0m ago): ingest run ingest-r9 is still under way (publishing raw/, "
        "started 30m ago); features -> retrain follow once it has published raw/"
    )


@pytest.mark.parametrize("phase", ["waiting for files", ""])
def test_an_ingest_run_waiting_for_files_is_not_under_way(phase: str) -> None:
    """@continuous: a run always waits in the triggerer; it is no excuse for a missing event."""
    s = status(last_accepted=accepted(0.1), last_decision=decided(2), dags=ingest_at(phase))
    assert explain(s).endswith("was the raw/features asset event emitted?")


def test_files_stuck_while_an_ingest_run_validates_its_batch() -> None:
    pending = Pending(1, "landing/late.csv", at(0.5), 30 * 60)
    s = status(pending=pending, dags=ingest_at("validating its batch"), health={})
    assert explain(s).endswith(
        "(oldest landing/late.csv): ingest run ingest-r9 has taken a batch and is still "
        "validating its batch (started 30m ago)"
    )


@pytest.mark.parametrize(
    ("dag_id", "tasks", "phase"),
    [
        (
            "ingest",
            [("wait_for_files", "deferred"), ("validate_0", None), ("route", None)],
            "waiting for files",
        ),
        (
            "ingest",
            [
                ("wait_for_files", "success"),
                ("validate_0", "success"),
                ("validate_1", "running"),
                ("validate_large", "success"),
                ("route", None),
                ("publish_raw", None),
            ],
            "validating its batch",
        ),
        (
            "ingest",
            [("wait_for_files", "success"), ("validate_0", "skipped"), ("route", "queued")],
            "routing its batch",
        ),
        (
            "ingest",
            [("take_batch", "success"), ("route", "success"), ("publish_raw", "running")],
            "publishing raw/",
        ),
        ("ingest", [("wait_for_files", "success"), ("publish_raw", "success")], "finishing"),
        (
            "retrain",
            [("check", "success"), ("train", "running"), ("deploy", None)],
            "train running",
        ),
        ("retrain", [("check", "success"), ("train", None)], "between tasks"),
        ("ingest", [], ""),
    ],
)
def test_the_phase_of_an_active_run(dag_id: str, tasks: list, phase: str) -> None:
    assert run_phase(dag_id, tasks) == phase


def test_the_gate_holding_several_runs() -> None:
    hold = "hold: challenger auc 0.5500 < floor 0.6000"
    s = status(
        last_decision=decided(1, deploy=False, reason=hold),
        streak=Incident("retrain", hold, since=at(6), runs=4),
    )
    assert explain(s) == (
        f"the gate held the champion 4 runs in a row since 2026-10-01 03:00 (6h 0m ago): {hold}"
    )


# -- ages and the screen -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "?"),
        (-5, "0s"),
        (45, "45s"),
        (12 * 60 + 5, "12m"),
        (3 * 3600 + 12 * 60, "3h 12m"),
        (2 * 86400 + 4 * 3600 + 59, "2d 4h"),
    ],
)
def test_age(seconds, text) -> None:
    assert age(seconds) == text


def busy() -> Status:
    """Everything at once: more than fits, to check the screen stays one screen."""
    long = "x" * 300
    return status(
        pending=Pending(3, "landing/late.csv", at(1), 3600.0),
        quarantined=tuple(quarantined(f"f{i}.csv", i / 10, long) for i in range(1, 11)),
        quarantined_more=4,
        dags=dags(retrain="failed"),
        health={"triggerer": "unhealthy"},
        incidents=(
            failing("retrain", 3, 3, "train: boom"),
            Incident("watchdog:landing_wait", "3 files wait", since=at(1)),
        ),
        streak=Incident("retrain", "train: boom", since=at(3), runs=3),
        alerts=tuple(SentAlert(at(i), "failed", f"[retrain] FAILED: {i}", "r") for i in range(5)),
        actions=tuple(Action(at(i), "retract", "ann", "raw/a.csv", long) for i in range(5)),
    )


def test_render_stays_one_screen() -> None:
    text = render(busy())
    lines = text.splitlines()
    assert len(lines) <= 32, text
    assert max(len(line) for line in lines) <= 100
    assert lines[1].startswith("WHY no retrain? retrain failing since")
    assert "  ... and 9 more (--json lists 10)" in lines
    assert "  retrain   failed   retrain-r9 (started 30m ago): failed task(s): train" in lines
    assert "Airflow not healthy: {'triggerer': 'unhealthy'}" in text


def test_a_long_why_line_wraps_instead_of_losing_its_end() -> None:
    reason = "validate: " + " ".join(f"column_{i} out of range" for i in range(12)) + " END"
    lines = render(status(incidents=(failing("ingest", 1, 2, reason),))).splitlines()
    why = [lines[1]] + [line for line in lines[2:5] if line.startswith("    ")]
    assert len(why) > 1 and max(len(line) for line in why) <= 100
    assert " ".join(w.strip() for w in why).endswith("column_11 out of range END")


def test_render_of_a_quiet_status_says_none_and_unknown() -> None:
    text = render(status(champion=None, last_decision=None, last_accepted=None))
    assert "champion    none deployed" in text
    assert "accepted    none yet" in text
    assert "quarantined (last 3 days): none" in text
    assert "runs        unknown (no Airflow API)" in text
    assert "incidents   none open" in text


def test_as_dict_is_json_with_the_why_line() -> None:
    data = json.loads(json.dumps(busy().as_dict()))
    assert data["why"].startswith("retrain failing since")
    assert data["incidents"][0]["name"] == "dag:retrain"
    assert len(data["quarantined"]) == 10 and data["quarantined_more"] == 4
