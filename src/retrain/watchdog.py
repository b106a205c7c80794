"""The watchdog's checks: what is stale or stuck, found without any pipeline run.

A pipeline that stops running raises no task failure, so it can only be seen from outside: the
watchdog DAG runs on a timer (monitoring, not retraining), gathers :class:`Facts` from the
bucket and from Airflow, and :func:`check` turns them into one :class:`Finding` per check,
active or not. :func:`apply` hands them to :class:`retrain.alerts.Incidents`: an active finding
alerts once when its incident opens, a finding that is no longer active sends one recovery.
One check looks at the newest decision: a challenger held on the floor while the champion it
was compared with, still serving, scored below that floor too (:func:`champion_floor_reason`).
No Airflow imports: the DAG passes in what only Airflow knows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from retrain.alerts import Alert, Incidents
from retrain.config import Config, WatchdogConfig
from retrain.layout import Layout
from retrain.registry import ModelRegistry
from retrain.storage import ObjectNotFound, S3Storage


@dataclass(frozen=True)
class Facts:
    """What the checks look at. ``None``: not known (nothing accepted yet, Airflow not asked)."""

    now: datetime
    last_accepted_at: datetime | None = None
    last_accepted_key: str | None = None
    champion_version: str | None = None
    champion_deployed_at: datetime | None = None
    landing_count: int = 0
    oldest_landing_key: str | None = None
    oldest_landing_at: datetime | None = None
    ingest_waiting: bool | None = None  # an ingest run is waiting for files or at work
    triggerer_healthy: bool | None = None
    streak_runs: int = 0  # retrain runs in a row without a deploy
    streak_since: str = ""
    streak_reason: str = ""
    open_incidents: int = 0
    # the newest decision held a challenger on the floor while the champion, still serving,
    # scored below that floor on the same rows: what is wrong ("" when nothing is)
    champion_below_floor: str = ""

    def hours_since(self, when: datetime | None) -> float | None:
        return None if when is None else (self.now - when).total_seconds() / 3600

    def as_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Finding:
    incident: str  # "watchdog:<check>"
    title: str
    active: bool
    reason: str  # what is wrong, or (inactive) what is fine


def check(facts: Facts, limits: WatchdogConfig) -> list[Finding]:
    """One finding per check, in a fixed order."""
    return [
        _landing_wait(facts, limits),
        _ingest_waiting(facts),
        _data_age(facts, limits),
        _champion_age(facts, limits),
        _retrain_streak(facts, limits),
        _champion_floor(facts),
    ]


def _landing_wait(f: Facts, limits: WatchdogConfig) -> Finding:
    waited = f.hours_since(f.oldest_landing_at)
    minutes = None if waited is None else waited * 60
    active = minutes is not None and minutes > limits.max_landing_wait_minutes
    if not active:
        return Finding(
            "watchdog:landing_wait", "files waiting in landing/", False, "landing/ drains"
        )
    suspects = []
    if f.triggerer_healthy is False:
        suspects.append("the triggerer is down (no heartbeat)")
    if f.ingest_waiting is False:
        suspects.append("no ingest run is waiting for files")
    cause = "; ".join(suspects) or "the landing trigger or the triggerer may be down"
    return Finding(
        "watchdog:landing_wait",
        "files waiting in landing/",
        True,
        f"{f.landing_count} file(s) waiting in landing/, the oldest ({f.oldest_landing_key}) for "
        f"{_age(minutes / 60)} (limit {limits.max_landing_wait_minutes:g} min): {cause}",
    )


def _ingest_waiting(f: Facts) -> Finding:
    active = f.ingest_waiting is False
    reason = (
        "no ingest run is waiting for files: the ingest DAG is paused, failing, or not scheduled"
        if active
        else "an ingest run is waiting for files"
    )
    return Finding("watchdog:ingest_not_waiting", "ingest is not waiting for files", active, reason)


def _data_age(f: Facts, limits: WatchdogConfig) -> Finding:
    hours = f.hours_since(f.last_accepted_at)
    active = hours is not None and hours > limits.max_data_age_hours
    reason = (
        f"no file accepted for {_age(hours)} (limit {limits.max_data_age_hours:g} h); the last "
        f"was {f.last_accepted_key} at {f.last_accepted_at:%Y-%m-%d %H:%M} UTC"
        if active and f.last_accepted_at is not None
        else "data arrives"
    )
    return Finding("watchdog:data_age", "no new data", active, reason)


def _champion_age(f: Facts, limits: WatchdogConfig) -> Finding:
    hours = f.hours_since(f.champion_deployed_at)
    active = hours is not None and hours > limits.max_champion_age_hours
    reason = (
        f"the champion {f.champion_version} was deployed {_age(hours)} ago "
        f"(limit {limits.max_champion_age_hours:g} h): the model in use is getting stale"
        if active
        else "the champion is fresh"
    )
    return Finding("watchdog:champion_age", "stale champion", active, reason)


def _retrain_streak(f: Facts, limits: WatchdogConfig) -> Finding:
    active = f.streak_runs >= limits.max_failed_retrains
    reason = (
        f"{f.streak_runs} retrain runs in a row failed or held the champion (since "
        f"{f.streak_since}); the latest: {f.streak_reason}"
        if active
        else "retrains deploy"
    )
    return Finding("watchdog:retrain_streak", "retrains keep failing", active, reason)


FLOOR_INCIDENT = "watchdog:champion_below_floor"


def _champion_floor(f: Facts) -> Finding:
    active = bool(f.champion_below_floor)
    reason = f.champion_below_floor if active else "the model serving clears the floor"
    return Finding(FLOOR_INCIDENT, "champion below the floor", active, reason)


def champion_floor_reason(record: dict[str, Any] | None, champion_version: str | None) -> str:
    """What :func:`_champion_floor` reports for the newest decision ``record``: non-empty while
    :data:`retrain.decision.FLAG_CHAMPION_BELOW_FLOOR` flags it and the champion it measured
    still serves (a deploy or a rollback since ends it)."""
    from retrain.decision import FLAG_CHAMPION_BELOW_FLOOR, champion_vs_floor, flags

    if not record or FLAG_CHAMPION_BELOW_FLOOR not in flags(record):
        return ""
    if champion_version is None or record.get("champion_version") != champion_version:
        return ""
    pair = champion_vs_floor(record)
    if pair is None:
        return ""
    champion, floor = pair
    challenger = (record.get("comparison") or {}).get("challenger")
    held = (
        f" (the challenger held on it scored {challenger:.4f})"
        if isinstance(challenger, int | float)
        else ""
    )
    return (
        f"the champion {champion_version} scored {champion:.4f} on the newest rows, below the "
        f"floor {floor:.4f}{held}; decision on {record.get('version')} at "
        f"{record.get('decided_at', '?')}: a model above the floor must serve (retrain, "
        "or lower [gate] min_metric deliberately)"
    )


def gather(
    storage: S3Storage,
    cfg: Config,
    *,
    now: datetime | None = None,
    ingest_waiting: bool | None = None,
    triggerer_healthy: bool | None = None,
) -> Facts:
    """The bucket's facts (a few small reads and one listing of landing/), plus Airflow's."""
    from retrain.steps.ingest import landed_files

    layout = Layout.of(cfg)
    now = now or datetime.now(UTC)
    try:
        last = storage.get_json(layout.last_accepted_key)
    except ObjectNotFound:
        last = {}
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    champion = registry.champion()
    floor = champion_floor_reason(
        registry.newest_decision(now=now), champion.version if champion else None
    )
    waiting = sorted(landed_files(storage, cfg), key=lambda f: f["last_modified"])
    incidents = Incidents(storage, layout)
    streak = incidents.streak()
    return Facts(
        now=now,
        last_accepted_at=_when(last.get("accepted_at")),
        last_accepted_key=last.get("raw_key"),
        champion_version=champion.version if champion else None,
        champion_deployed_at=_when(champion.deployed_at) if champion else None,
        landing_count=len(waiting),
        oldest_landing_key=waiting[0]["key"] if waiting else None,
        oldest_landing_at=_when(waiting[0]["last_modified"]) if waiting else None,
        ingest_waiting=ingest_waiting,
        triggerer_healthy=triggerer_healthy,
        streak_runs=streak.runs if streak else 0,
        streak_since=streak.since if streak else "",
        streak_reason=streak.reason if streak else "",
        open_incidents=len(incidents.open()),
        champion_below_floor=floor,
    )


def apply(
    incidents: Incidents, findings: list[Finding], *, links: tuple[str, ...] = ()
) -> list[Alert]:
    """Open what is newly wrong (one alert each), close what is fine again (one recovery each)."""
    alerts = []
    for finding in findings:
        if finding.active:
            alert = incidents.warning(finding.incident, finding.title, finding.reason, links=links)
        else:
            alert = incidents.cleared(finding.incident, f"{finding.title}: cleared", finding.reason)
        if alert is not None:
            alerts.append(alert)
    return alerts


def record_metrics(facts: Facts, cfg: Config) -> None:
    """The ages as StatsD gauges (when metrics are on), so dashboards see them between alerts."""
    from retrain import metrics as statsd

    waited = facts.hours_since(facts.oldest_landing_at)
    with statsd.Metrics.from_config(cfg.metrics) as m:
        statsd.record_health(
            m,
            data_age_hours=facts.hours_since(facts.last_accepted_at),
            champion_age_hours=facts.hours_since(facts.champion_deployed_at),
            landing_wait_minutes=None if waited is None else waited * 60,
            open_incidents=facts.open_incidents,
        )


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _age(hours: float | None) -> str:
    if hours is None:
        return "?"
    minutes = round(hours * 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // (24 * 60)} days"
