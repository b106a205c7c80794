"""``retrain status``: the one screen a person reads on a bad morning.

Everything is read from the bucket (champion, data freshness, landing/, quarantine reports,
incidents, the retrain streak, alert history, retract/replay records, the gate's last decision),
plus the pipeline's runs from Airflow's REST API when one is given; without it those parts say
"unknown" rather than guess. :func:`explain` turns the gathered facts into ONE line answering
"why did no retrain happen?", most actionable cause first. No Airflow imports here.
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from retrain import reports
from retrain.alerts import Incident, Incidents, first_line
from retrain.config import Config
from retrain.layout import REPORT_SUFFIX, Layout, format_last_modified
from retrain.ledger import Ledger
from retrain.registry import ModelRegistry
from retrain.report_links import WebLinks, run_url
from retrain.storage import ObjectNotFound, S3Storage

if TYPE_CHECKING:
    from retrain.airflow_api import AirflowApi, DagRun

PIPELINE = ("ingest", "features", "retrain")  # upstream first: the first failing one is the cause
CONSUMERS = ("score",)  # run on a deploy; shown, but never the answer to "why no retrain?"
QUARANTINE_LISTED = 10  # reports read (one GET each); the rest are only counted
ALERTS_LISTED = 5
ACTIONS_LISTED = 5
RUNS_PER_DAG = 3
DECISIONS_SEARCHED = 3  # the newest versions may not be decided yet (training, or failed)
ACTIVE = ("queued", "running")
TASK_DONE = ("success", "skipped", "failed", "upstream_failed", "removed")
WAITING_FOR_FILES = "waiting for files"
# The ingest DAG's steps in order, by task id ("validate" stands for validate_0..n and
# validate_large): an active run is at its first step with a task not done. Only the wait (poll
# mode: wait_for_files, deferred in the triggerer) means no batch is taken; @continuous keeps
# such a run there all the time.
INGEST_STEPS = (
    ("wait_for_files", WAITING_FOR_FILES),
    ("take_batch", "taking its batch"),
    ("validate", "validating its batch"),
    ("route", "routing its batch"),
    ("publish_raw", "publishing raw/"),
)
WIDTH = 100  # render clips lines here: one screen, no wrapping


# -- the facts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChampionView:
    version: str
    metric: str  # the gate's metric, e.g. "auc"
    value: float | None
    deployed_at: str
    age_s: float | None
    reason: str = ""


@dataclass(frozen=True)
class Accepted:
    """The newest accepted file (``ledger/last_accepted.json``): how fresh the data is."""

    raw_key: str
    landed_as: str
    batch_id: str
    at: str
    age_s: float | None


@dataclass(frozen=True)
class Pending:
    """Files in landing/ that ingest has not taken yet."""

    count: int = 0
    oldest_key: str = ""
    oldest_at: str = ""
    wait_s: float | None = None


@dataclass(frozen=True)
class Quarantined:
    key: str
    name: str  # as it landed, inside its partition
    reason: str
    at: str
    batch_id: str = ""
    retracted: bool = False  # put there by `retrain retract`, not rejected at ingest
    page: dict[str, str] = field(default_factory=dict)  # its batch's validation page (url, uri)


@dataclass(frozen=True)
class Run:
    run_id: str
    state: str
    started: str = ""
    ended: str = ""
    reason: str = ""  # failed runs: the incident's reason, else the failed task ids
    url: str = ""  # the run's reports in the Airflow UI (the plugin's run view)
    phase: str = ""  # active runs: what it is doing (run_phase); "" unknown or not started


@dataclass(frozen=True)
class DagView:
    dag_id: str
    runs: tuple[Run, ...]  # newest first
    paused: bool | None = None
    error: str = ""  # the API answered, but not about this DAG (not loaded? import error?)


@dataclass(frozen=True)
class LastDecision:
    """The gate's newest verdict (``models/<version>/decision.json``)."""

    version: str
    deploy: bool
    reason: str
    at: str
    page: dict[str, str] = field(default_factory=dict)  # the decision page (url, uri)


@dataclass(frozen=True)
class SentAlert:
    at: str
    status: str
    subject: str
    reason: str
    links: tuple[dict[str, str], ...] = ()  # each with its browser url beside its uri


@dataclass(frozen=True)
class Awaiting:
    """A deploy waiting for a person ([gate] approval)."""

    version: str
    serving_version: str
    since: str
    why: str
    who: str  # who may answer
    timeout_at: str
    on_timeout: str
    page: dict[str, str] = field(default_factory=dict)  # the decision page (url, uri)


@dataclass(frozen=True)
class Action:
    """A retract or replay record."""

    at: str
    action: str
    by: str
    what: str
    reason: str


@dataclass(frozen=True)
class Limits:
    """The watchdog's limits: when a fact becomes the answer to "why no retrain?"."""

    landing_wait_s: float = 15 * 60
    data_age_s: float = 48 * 3600
    held_runs: int = 2  # from this many held runs in a row, the streak is the answer
    arrival: str = "poll"  # [orchestration] arrival: what an idle ingest DAG means

    @classmethod
    def of(cls, cfg: Config) -> Limits:
        w = cfg.watchdog
        return cls(
            w.max_landing_wait_minutes * 60,
            w.max_data_age_hours * 3600,
            arrival=cfg.orchestration.arrival,
        )


@dataclass(frozen=True)
class Status:
    at: str  # when gathered (ISO 8601 UTC); every age is relative to it
    bucket: str
    champion: ChampionView | None
    last_accepted: Accepted | None
    pending: Pending
    quarantine_days: int
    quarantined: tuple[Quarantined, ...]  # newest first, at most QUARANTINE_LISTED
    quarantined_more: int  # quarantined in those days but not listed
    airflow: str  # where the runs came from, or why they are unknown
    dags: tuple[DagView, ...] | None  # None: unknown (no API, or it did not answer)
    health: dict[str, str] = field(default_factory=dict)  # component -> status, from the API
    incidents: tuple[Incident, ...] = ()
    streak: Incident | None = None
    alerts: tuple[SentAlert, ...] = ()
    actions: tuple[Action, ...] = ()
    last_decision: LastDecision | None = None
    limits: Limits = field(default_factory=Limits)
    awaiting: tuple[Awaiting, ...] = ()  # newest first; older ones were superseded
    reports: dict[str, str] = field(default_factory=dict)  # the index (url, uri)

    @property
    def why(self) -> str:
        return explain(self)

    def incident(self, name: str) -> Incident | None:
        return next((i for i in self.incidents if i.name == name), None)

    def dag(self, dag_id: str) -> DagView | None:
        return next((d for d in self.dags or () if d.dag_id == dag_id), None)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "why": self.why}


# -- gathering ---------------------------------------------------------------------------------


def gather(
    storage: S3Storage,
    cfg: Config,
    api: AirflowApi | None = None,
    now: datetime | None = None,
    days: int = 3,
    dag_ids: tuple[str, ...] = PIPELINE + CONSUMERS,
    web: WebLinks | None = None,
) -> Status:
    """Everything ``retrain status`` shows, read once. ``api`` None: the runs are unknown.
    ``web``: where reports open in a browser (else the Airflow URL ``api`` has, if any)."""
    now = _utc(now or datetime.now(UTC))
    layout = Layout.of(cfg)
    if web is None:
        airflow_url = cfg.alerts.airflow_url or (api.base_url if api else "")
        web = WebLinks(airflow_url, storage.bucket, cfg.storage.reports_prefix)
    incidents = Incidents(storage, layout)
    open_incidents = tuple(incidents.open())
    quarantined, more = _quarantined(storage, cfg, layout, now, days, web)
    airflow, dags, health = _airflow(api, dag_ids, open_incidents, web)
    return Status(
        at=_iso(now),
        bucket=storage.bucket,
        champion=_champion(storage, cfg, now),
        last_accepted=_last_accepted(storage, layout, now),
        pending=_pending(storage, cfg, now),
        quarantine_days=days,
        quarantined=quarantined,
        quarantined_more=more,
        airflow=airflow,
        dags=dags,
        health=health,
        incidents=open_incidents,
        streak=incidents.streak(),
        alerts=tuple(_alert(a, web) for a in incidents.history(ALERTS_LISTED)),
        actions=tuple(_action(a) for a in Ledger(storage, layout).actions(ACTIONS_LISTED)),
        last_decision=_last_decision(storage, cfg, web),
        limits=Limits.of(cfg),
        awaiting=_awaiting(storage, cfg, web),
        reports=web.link(storage.uri(reports.index_key(cfg.storage.reports_prefix))),
    )


def _champion(storage: S3Storage, cfg: Config, now: datetime) -> ChampionView | None:
    champion = ModelRegistry(storage, cfg.storage.models_prefix).champion()
    if champion is None:
        return None
    value = champion.metrics.get(cfg.gate.metric)
    return ChampionView(
        version=champion.version,
        metric=cfg.gate.metric,
        value=float(value) if isinstance(value, int | float) else None,
        deployed_at=champion.deployed_at,
        age_s=_age(champion.deployed_at, now),
        reason=champion.reason,
    )


def _awaiting(storage: S3Storage, cfg: Config, web: WebLinks) -> tuple[Awaiting, ...]:
    from retrain.approvals import Approvals

    return tuple(
        Awaiting(
            a.version,
            a.serving_version,
            a.requested_at,
            a.why,
            a.who_may_answer,
            a.timeout_at,
            a.on_timeout,
            web.link(storage.uri(a.decision_page)) if a.decision_page else {},
        )
        for a in Approvals(storage, cfg).pending()
    )


def _last_accepted(storage: S3Storage, layout: Layout, now: datetime) -> Accepted | None:
    try:
        doc = storage.get_json(layout.last_accepted_key)
    except ObjectNotFound:
        return None
    at = doc.get("accepted_at", "")
    return Accepted(
        doc.get("raw_key", ""), doc.get("landed_as", ""), doc.get("batch_id", ""), at, _age(at, now)
    )


def _pending(storage: S3Storage, cfg: Config, now: datetime) -> Pending:
    from retrain.steps.ingest import landed_files

    files = landed_files(storage, cfg)
    if not files:
        return Pending()
    oldest = min(files, key=lambda f: (f["last_modified"], f["key"]))
    at = oldest["last_modified"]
    return Pending(len(files), oldest["key"], at, _age(at, now))


def _quarantined(
    storage: S3Storage, cfg: Config, layout: Layout, now: datetime, days: int, web: WebLinks
) -> tuple[tuple[Quarantined, ...], int]:
    """Files quarantined on the last ``days`` ingest dates, newest first; only the listed ones'
    reports are read."""
    objects = [
        o
        for day in range(max(days, 0))
        for o in storage.iter_objects(
            f"{cfg.storage.quarantine_prefix}ingest_date={(now - timedelta(days=day)):%Y-%m-%d}/"
        )
        if not o.key.endswith(REPORT_SUFFIX)
    ]
    objects.sort(key=lambda o: (o.last_modified, o.key), reverse=True)
    listed = tuple(
        _quarantined_file(storage, layout, o.key, format_last_modified(o.last_modified), web)
        for o in objects[:QUARANTINE_LISTED]
    )
    return listed, len(objects) - len(listed)


def _quarantined_file(
    storage: S3Storage, layout: Layout, key: str, moved_at: str, web: WebLinks
) -> Quarantined:
    try:
        report = storage.get_json(layout.report_key(key))
    except ObjectNotFound:
        report = {"reason": "(no report beside the file)"}
    retracted = report.get("retracted") or {}
    batch_id = report.get("batch_id") or layout.batch_of(key) or ""
    page = {}  # the batch's validation page (a retraction has none)
    if batch_id and not retracted:
        summary = reports.validation_summary_key(layout.s.reports_prefix, batch_id)
        page = web.link(storage.uri(summary))
    return Quarantined(
        key=key,
        name=layout.name_in_partition(key),
        reason=first_line(report.get("reason", "")),
        at=report.get("decided_at") or retracted.get("at") or moved_at,
        batch_id=batch_id,
        retracted=bool(retracted),
        page=page,
    )


def _last_decision(storage: S3Storage, cfg: Config, web: WebLinks) -> LastDecision | None:
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    for version in reversed(registry.list_versions()[-DECISIONS_SEARCHED:]):
        if (doc := registry.load_decision(version)) is not None:
            evaluated = str(doc.get("version") or version)  # a refit's copy names it
            page = reports.report_keys(cfg.storage.reports_prefix, evaluated).decision
            return LastDecision(
                version,
                bool(doc.get("deploy")),
                doc.get("reason", ""),
                doc.get("decided_at", ""),
                web.link(storage.uri(page)),
            )
    return None


def _alert(doc: dict[str, Any], web: WebLinks) -> SentAlert:
    return SentAlert(
        doc.get("at", ""),
        doc.get("status", ""),
        doc.get("subject", ""),
        doc.get("reason", ""),
        tuple(web.link(link) for link in doc.get("links") or ()),
    )


def _action(doc: dict[str, Any]) -> Action:
    what = ", ".join(doc.get("raw_keys") or [doc.get("quarantine_key", "?")])
    return Action(
        doc.get("at", ""), doc.get("action", ""), doc.get("by", "?"), what, doc.get("reason", "")
    )


# -- Airflow (optional) --------------------------------------------------------------------------


def _airflow(
    api: AirflowApi | None,
    dag_ids: tuple[str, ...],
    incidents: tuple[Incident, ...],
    web: WebLinks,
) -> tuple[str, tuple[DagView, ...] | None, dict[str, str]]:
    """The runs, or why they are unknown: a status command must not fail on a down api-server."""
    from retrain.airflow_api import AirflowApiError

    if api is None:
        return "unknown (no Airflow API: pass --airflow-url or set RETRAIN_AIRFLOW_URL)", None, {}
    try:
        health = _health(api)
    except AirflowApiError as exc:
        why = f"unknown (Airflow at {api.base_url} did not answer: {first_line(exc, 120)})"
        return why, None, {}
    views = tuple(_dag_view(api, dag_id, incidents, web) for dag_id in dag_ids)
    return api.base_url, views, health


def _health(api: AirflowApi) -> dict[str, str]:
    """Component -> "healthy" or not: a triggerer down explains files stuck in landing/."""
    return {part: str(v.get("status")) for part, v in api.health().items() if isinstance(v, dict)}


def _dag_view(
    api: AirflowApi, dag_id: str, incidents: tuple[Incident, ...], web: WebLinks
) -> DagView:
    from retrain.airflow_api import AirflowApiError

    incident = next((i for i in incidents if i.name == f"dag:{dag_id}"), None)
    try:
        paused = api.get_json(f"/api/v2/dags/{dag_id}").get("is_paused")
        runs = tuple(
            replace(_run(api, r, incident), url=run_url(web.airflow_url, dag_id, r.run_id))
            for r in api.dag_runs(dag_id, limit=RUNS_PER_DAG)
        )
    except AirflowApiError as exc:
        return DagView(dag_id, (), None, first_line(exc, 120))
    return DagView(dag_id, runs, paused if isinstance(paused, bool) else None)


def _run(api: AirflowApi, run: DagRun, incident: Incident | None) -> Run:
    started = run.start_date or run.queued_at or ""
    reason = ""
    if run.state == "failed":
        reason = _failed_reason(api, run, incident, started)
    phase = _phase(api, run) if run.state in ACTIVE else ""
    return Run(run.run_id, run.state, started, run.end_date or "", reason, phase=phase)


def _phase(api: AirflowApi, run: DagRun) -> str:
    """What an active run is doing, from its task instances; "" if Airflow does not say."""
    from retrain.airflow_api import AirflowApiError

    try:
        tasks = api.task_instances(run.dag_id, run.run_id)
    except AirflowApiError:
        return ""
    return run_phase(run.dag_id, [(t.task_id, t.state) for t in tasks])


def run_phase(dag_id: str, tasks: list[tuple[str, str | None]]) -> str:
    """An active run's phase from its ``(task_id, state)`` pairs. Ingest: its first step with a
    task not done (:data:`INGEST_STEPS`), so a run waiting for files is told from one working
    on a batch; other DAGs: their tasks under way. Every task done: "finishing" (the run is
    not marked done yet); no task yet: ""."""
    if not tasks:
        return ""
    if dag_id == "ingest":
        for step, words in INGEST_STEPS:
            states = [s for t, s in tasks if t == step or t.startswith(f"{step}_")]
            if any(s not in TASK_DONE for s in states):
                return words
    under_way = [f"{t} {s}" for t, s in tasks if s is not None and s not in TASK_DONE]
    if under_way:
        return ", ".join(under_way)
    return "between tasks" if any(s is None for _, s in tasks) else "finishing"


def _failed_reason(api: AirflowApi, run: DagRun, incident: Incident | None, started: str) -> str:
    """The open incident's reason when the run belongs to it, else the failed task ids."""
    if incident is not None and (
        incident.last_run == run.run_id or not _later(incident.since, started)
    ):
        return incident.reason
    failed = [t.task_id for t in api.task_instances(run.dag_id, run.run_id) if t.state == "failed"]
    return f"failed task(s): {', '.join(failed)}" if failed else "no task failed (timed out?)"


# -- why no retrain? -----------------------------------------------------------------------------


def explain(s: Status) -> str:
    """ONE line: why no (new) model came out. The first check that applies answers, in order of
    what a person can act on first: a paused or failing DAG, files stuck in landing/, a retrain
    under way, files quarantined, no data, the gate holding; else what the last retrain did."""
    for check in (
        _paused,
        _failing,
        _stuck_in_landing,
        _retraining_now,
        _awaiting_approval,
        _all_quarantined,
        _no_new_data,
        _not_retrained_yet,
        _held,
    ):
        if line := check(s):
            return line
    return _last_retrain(s)


def _awaiting_approval(s: Status) -> str:
    if not s.awaiting:
        return ""
    a = s.awaiting[0]
    return (
        f"{a.serving_version} (challenger {a.version}) awaits approval since "
        f"{_when(a.since, s.at)}: {a.why}; who may answer: {a.who} (`retrain approve "
        f"{a.version}` or `retrain reject {a.version}`, or Required Actions in Airflow)"
    )


def _paused(s: Status) -> str:
    paused = [d.dag_id for d in s.dags or () if d.paused]
    if not paused:
        return ""
    return f"{', '.join(paused)} paused in Airflow: unpause to resume the pipeline"


def _failing(s: Status) -> str:
    failing = [(dag_id, _failure(s, dag_id)) for dag_id in PIPELINE]
    failing = [(dag_id, text) for dag_id, text in failing if text]
    if not failing:
        return ""
    others = [dag_id for dag_id, _ in failing[1:]]
    return failing[0][1] + (f"; also failing: {', '.join(others)}" if others else "")


def _failure(s: Status, dag_id: str) -> str:
    if incident := s.incident(f"dag:{dag_id}"):
        runs = f", {incident.runs} runs" if incident.runs > 1 else ""
        return f"{dag_id} failing since {_when(incident.since, s.at)}{runs}: {incident.reason}"
    dag = s.dag(dag_id)  # no incident: the failure callback did not run (task killed?)
    if dag and dag.runs and dag.runs[0].state == "failed":
        run = dag.runs[0]
        return f"{dag_id}'s last run {run.run_id} failed: {run.reason or 'see its task logs'}"
    return ""


def _stuck_in_landing(s: Status) -> str:
    p = s.pending
    if not p.count or p.wait_s is None or p.wait_s < s.limits.landing_wait_s:
        return ""
    return (
        f"{p.count} file(s) waiting in landing/ for {age(p.wait_s)} (oldest {p.oldest_key}): "
        + _landing_cause(s)
    )


def _landing_cause(s: Status) -> str:
    if incident := s.incident("watchdog:ingest_not_waiting"):
        return incident.reason
    down = [p for p in ("triggerer", "scheduler") if s.health.get(p, "healthy") != "healthy"]
    if down:
        return f"Airflow's {' and '.join(down)} not healthy"
    if run := _ingest_under_way(s):
        return (
            f"ingest run {run.run_id} has taken a batch and is still {run.phase} "
            f"(started {_ago(run.started, s.at)})"
        )
    if s.limits.arrival == "events":
        # no run between batches is normal here: the notifications, or the reconciler's sweep
        return (
            "no notification reached the ingest DAG: is the bucket's notification to the "
            "landing queue in place, and the triggerer running? (the reconciler sweeps "
            "landing/ every [orchestration] reconcile_minutes)"
        )
    ingest = s.dag("ingest")
    if ingest is not None and not any(r.state in ACTIVE for r in ingest.runs[:1]):
        return "no ingest run is waiting for files"
    return "is the triggerer running, and the ingest DAG waiting?"


def _ingest_under_way(s: Status) -> Run | None:
    """The ingest run working on a batch (validating, routing, publishing): not one waiting for
    files, which with @continuous is always there, nor one Airflow told nothing about."""
    ingest = s.dag("ingest")
    run = ingest.runs[0] if ingest is not None and ingest.runs else None
    if run is None or run.state not in ACTIVE or run.phase in ("", WAITING_FOR_FILES):
        return None
    return run


def _retraining_now(s: Status) -> str:
    for dag_id in ("retrain", "features"):
        dag = s.dag(dag_id)
        if dag and dag.runs and dag.runs[0].state in ACTIVE:
            run = dag.runs[0]
            return f"{dag_id} is {run.state} now: {run.run_id} (started {_ago(run.started, s.at)})"
    return ""


def _all_quarantined(s: Status) -> str:
    """Files rejected at ingest since the last accepted one: nothing new reached training."""
    since = s.last_accepted.at if s.last_accepted else ""
    bad = [q for q in s.quarantined if not q.retracted and _later(q.at, since)]
    if not bad:
        return ""
    count = f"{len(bad)}+" if len(bad) == len(s.quarantined) and s.quarantined_more else len(bad)
    after = f" since the last accepted file ({_when(since, s.at)})" if since else ""
    newest = bad[0]
    return (
        f"the last {count} file(s) were quarantined{after}; newest {newest.name} "
        f"at {_when(newest.at, s.at)}: {newest.reason}"
    )


def _no_new_data(s: Status) -> str:
    p, a = s.pending, s.last_accepted
    waiting = f"; {p.count} file(s) in landing/ for {age(p.wait_s)}" if p.count else ""
    if a is None:
        return "no file has been accepted yet" + (waiting or ": drop data into landing/")
    if a.age_s is None or a.age_s < s.limits.data_age_s:
        return ""
    return f"no new data accepted since {_when(a.at, s.at)} ({a.landed_as}){waiting}"


def _not_retrained_yet(s: Status) -> str:
    """Data accepted after the last decision, and no run under way (as far as we know)."""
    a, d = s.last_accepted, s.last_decision
    if a is None or (d is not None and not _later(a.at, d.at)):
        return ""
    last = f"the last decision was {_when(d.at, s.at)}" if d else "no retrain has decided yet"
    if run := _ingest_under_way(s):  # publishing raw/ is what starts features -> retrain
        return (
            f"{a.landed_as} was accepted {_when(a.at, s.at)} but {last}: ingest run "
            f"{run.run_id} is still under way ({run.phase}, started {_ago(run.started, s.at)}); "
            "features -> retrain follow once it has published raw/"
        )
    return (
        f"{a.landed_as} was accepted {_when(a.at, s.at)} but {last}: "
        "features -> retrain should follow (runs unknown without the Airflow API)"
        if s.dags is None
        else f"{a.landed_as} was accepted {_when(a.at, s.at)} but {last}, and no features or "
        "retrain run is under way: was the raw/features asset event emitted?"
    )


def _held(s: Status) -> str:
    k = s.streak
    if k is None or k.runs < s.limits.held_runs:
        return ""
    what = "the gate held the champion" if k.reason.startswith("hold") else "no deploy"
    return f"{what} {k.runs} runs in a row since {_when(k.since, s.at)}: {k.reason}"


def _last_retrain(s: Status) -> str:
    d = s.last_decision
    if d is None:
        return "no retrain has run yet"
    verdict = f"deployed {d.version}" if d.deploy else f"held the champion (not {d.version})"
    return f"the last retrain ran {_when(d.at, s.at)} and {verdict}: {d.reason}"


# -- rendering ---------------------------------------------------------------------------------


def render(s: Status) -> str:
    """Plain text, one screen (~30 lines), every line at most WIDTH characters."""
    why = textwrap.wrap(
        f"WHY no retrain? {s.why}", WIDTH, subsequent_indent="    ", max_lines=4, placeholder=" ..."
    )
    lines = [
        f"retrain status at {_clock(s.at)} UTC, bucket {s.bucket}",
        *why,
        "",
        *_reports_line(s),
        *_facts(s),
        *_quarantine_lines(s),
        *_run_lines(s),
        *_incident_lines(s),
        *_alert_lines(s),
        *_action_lines(s),
    ]
    return "\n".join(_clip(line) for line in lines)


def _facts(s: Status) -> list[str]:
    c, a, p, d, k = s.champion, s.last_accepted, s.pending, s.last_decision, s.streak
    champion = "none deployed"
    if c is not None:
        value = f"{c.metric} {c.value:.3f}" if c.value is not None else f"{c.metric} ?"
        champion = f"{c.version}  {value}  deployed {_when(c.deployed_at, s.at)}"
    accepted = f"{_when(a.at, s.at)}  {a.landed_as} -> {a.raw_key}" if a else "none yet"
    landing = "empty"
    if p.count:
        landing = f"{p.count} file(s) waiting, oldest {p.oldest_key} for {age(p.wait_s)}"
    lines = [
        f"champion    {champion}",
        f"accepted    {accepted}",
        f"landing/    {landing}",
    ]
    if d is not None:
        verdict = "deploy" if d.deploy else "hold"
        lines.append(f"decision    {verdict} {d.version}, {_when(d.at, s.at)}: {d.reason}")
        if page := _shown(d.page):
            lines.append(f"            {page}")
    for w in s.awaiting[:1]:
        lines.append(
            f"approval    awaiting approval since {_when(w.since, s.at)}: deploy "
            f"{w.serving_version}? who may answer: {w.who}; at {_clock(w.timeout_at)} "
            f"without an answer: {w.on_timeout}"
        )
        if page := _shown(w.page):
            lines.append(f"            {page}")
    if k is not None:
        lines.append(f"streak      {_runs(k.runs)} without a deploy since {_clock(k.since)}")
    return lines


def _shown(link: dict[str, str]) -> str:
    """A link as a person opens it: the URL, else the ``s3://`` URI."""
    return link.get("url") or link.get("uri", "") if link else ""


def _reports_line(s: Status) -> list[str]:
    where = _shown(s.reports)
    if s.reports and not s.reports.get("url"):
        where += "  (no browser URL: set [alerts] airflow_url or pass --airflow-url)"
    return [f"reports     {where}"] if where else []


def _quarantine_lines(s: Status) -> list[str]:
    total = len(s.quarantined) + s.quarantined_more
    head = f"quarantined (last {s.quarantine_days} days): {total or 'none'}"
    shown = s.quarantined[:5]
    lines = [head] + [f"  {_clock(q.at)}  {q.name}: {q.reason}" for q in shown]
    if rest := total - len(shown):
        lines.append(f"  ... and {rest} more (--json lists {len(s.quarantined)})")
    return lines


def _run_lines(s: Status) -> list[str]:
    if s.dags is None:
        return [f"runs        {s.airflow}"]
    down = {part: v for part, v in s.health.items() if v != "healthy"}
    head = "runs" + (f"        Airflow not healthy: {down}" if down else "")
    return [head] + [f"  {d.dag_id:9} {_dag_line(d, s.at)}" for d in s.dags]


def _dag_line(d: DagView, now: str) -> str:
    if d.error:
        return f"unknown: {d.error}"
    if not d.runs:
        return "no runs" + (" (PAUSED)" if d.paused else "")
    latest, earlier = d.runs[0], d.runs[1:]
    phase = f"[{latest.phase}] " if latest.phase else ""  # before the long run id: not clipped
    text = f"{latest.state:8} {phase}{latest.run_id} (started {_ago(latest.started, now)})"
    if latest.reason:
        text += f": {latest.reason}"
    if earlier:
        text += f" | before: {', '.join(r.state for r in earlier)}"
    return ("PAUSED " if d.paused else "") + text


def _incident_lines(s: Status) -> list[str]:
    if not s.incidents:
        return ["incidents   none open"]
    lines = [f"incidents   {len(s.incidents)} open"]
    for i in s.incidents:
        runs = f", {_runs(i.runs)}" if i.name.startswith("dag:") else ""
        lines.append(f"  {i.name} since {_clock(i.since)}{runs}: {i.reason}")
    return lines


def _alert_lines(s: Status) -> list[str]:
    if not s.alerts:
        return ["alerts      none sent"]
    shown = s.alerts[:ALERTS_LISTED]
    lines = [f"alerts      {len(shown)} most recent"]
    for a in shown:
        lines.append(f"  {_clock(a.at)}  {a.subject}")
        report = next(
            (link for link in a.links if "/retrain-reports/" in link.get("url", "")), None
        )
        if report:
            lines.append(f"      {report['url']}")
    return lines


def _action_lines(s: Status) -> list[str]:
    if not s.actions:
        return ["retract/replay: none"]
    shown = s.actions[:3]
    return [f"retract/replay: {len(shown)} most recent"] + [
        f"  {_clock(a.at)}  {a.action} by {a.by}: {a.what} -- {a.reason}" for a in shown
    ]


# -- times -------------------------------------------------------------------------------------


def age(seconds: float | None) -> str:
    """``3h 12m``: two units at most, the precision a person acts on."""
    if seconds is None:
        return "?"
    s = max(int(seconds), 0)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m" if m else f"{s}s"


def _parse(stamp: str) -> datetime | None:
    try:
        return _utc(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
    except (TypeError, ValueError):
        return None


def _later(a: str, b: str) -> bool:
    """``a`` is after ``b`` (ISO stamps spelled differently: ``Z``, ``+00:00``, fractions);
    nothing to compare with (``b`` unknown) counts as after."""
    at, ref = _parse(a), _parse(b)
    return ref is None or (at is not None and at > ref)


def _age(stamp: str, now: datetime) -> float | None:
    at = _parse(stamp)
    return None if at is None else (now - at).total_seconds()


def _clock(stamp: str) -> str:
    at = _parse(stamp)
    return f"{at:%Y-%m-%d %H:%M}" if at else (stamp or "?")


def _when(stamp: str, now: str) -> str:
    """``2026-10-01 06:00 (3h 12m ago)``."""
    at = _parse(stamp)
    return f"{_clock(stamp)} ({_ago(stamp, now)})" if at else (stamp or "?")


def _ago(stamp: str, now: str) -> str:
    at, ref = _parse(stamp), _parse(now)
    return f"{age((ref - at).total_seconds())} ago" if at and ref else "?"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _clip(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."
