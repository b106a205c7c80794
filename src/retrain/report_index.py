"""The reports index (``index.html``): what needs attention first, then short lists.

Split from :mod:`retrain.reports` (the other pages) so each stays readable; it renders with the
same templates, filters and link rules. The index answers "what needs a look?" at the top:
open incidents, the retrain streak, decisions held or flagged (:func:`retrain.decision.flags`)
since the last deploy, training sets rejected since the last that passed, and files quarantined
since the last accepted one. Below it every entry is one line: a decision is a summary linking
to its page (its full reason is there, once), an alert prints its reason only if its title does
not already say it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from retrain import reports
from retrain.reports import (
    _finite,
    _history_rows,
    _interval_text,
    _is_number,
    _mapping,
    _page_link,
    _publish,
    _short,
    decision_outcome,
    index_key,
)

if TYPE_CHECKING:
    from retrain.storage import S3Storage

ATTENTION_LIMIT = 5  # of each kind (decisions, rejected sets, quarantined files) under attention
INDEX_REASON = 120  # characters of a history or attention reason on the index (pages: all)
INDEX_HISTORY_ROWS = 10  # history rows on the index (the history pages hold the rest)


class _Champion(NamedTuple):
    version: str  # the evaluated version: the model's one identity
    serving: str | None  # its refit that serves (None: the pointer names the version itself)
    deployed_at: Any
    reason: Any
    metrics: Any


class _DecisionRow(NamedTuple):
    version: str
    serving: str | None  # a deploy's serving refit
    outcome: str
    badge: str
    rule: str
    summary: str  # one line: what decided, the numbers
    flags: tuple[str, ...]
    decided_at: Any
    drift: bool


class _Link(NamedTuple):
    target: str
    text: str


class _Attention(NamedTuple):
    what: str  # "failed run", "watchdog", "retrain streak", "held", "flagged", "quarantined", ...
    badge: str
    name: Any
    page: str | None  # relative to the root: the page that explains it
    since: Any
    runs: Any
    reason: Any
    links: list[_Link]


class _AlertRow(NamedTuple):
    at: Any
    status: str
    badge: str
    title: Any
    reason: Any  # "" when the title already says it
    links: list[_Link]


_ALERT_BADGE = {
    "failed": "bad",
    "still_failing": "bad",
    "warning": "warn",
    "recovered": "ok",
    "notice": "neutral",
}


def _flags(record: Mapping[str, Any]) -> tuple[str, ...]:
    from retrain.decision import flags  # numpy and the config: only when a page is rendered

    return flags(record)


def decision_summary(record: Mapping[str, Any]) -> str:
    """One line for a decision: the clause that decided and the numbers, e.g. ``better with
    confidence; auc 0.8120 vs 0.8070, +0.0050 [+0.0010, +0.0090]``. The full reason is on
    its page."""
    from retrain.decision import RULES

    rule = str(record.get("rule") or "")
    text = RULES.get(rule, rule or "no rule recorded").split(": ", 1)[-1]
    cmp = _mapping(record.get("comparison"))
    gate = _mapping(_mapping(record.get("policy")).get("gate"))
    metric = str(cmp.get("metric") or gate.get("metric") or "auc")
    challenger = _finite(_mapping(record.get("challenger_metrics")).get(metric))
    if challenger is None:
        challenger = _finite(cmp.get("challenger"))
    if challenger is not None:
        text += f"; {metric} {challenger:.4f}"
        champion = _finite(cmp.get("champion"))
        if champion is not None:
            text += f" vs {champion:.4f}"
    if rule == "below_floor":
        floor = _finite(_mapping(_mapping(record.get("conditions")).get("floor")).get("floor"))
        if floor is not None:
            text += f", floor {floor:.4f}"
    interval = _interval_text(cmp)
    if interval:
        text += f", {interval}"
    return text


def _links(links: Any) -> list[_Link]:
    """Named links: a page of the site by its file name, Airflow by name, a host by its name;
    an s3:// URI stays as text (the ``href`` filter keeps only relative and http(s) links), any
    other scheme is dropped."""
    out = []
    for link in links if isinstance(links, list | tuple) else ():
        if not isinstance(link, str) or not link:
            continue
        parts = urlsplit(link)
        if parts.scheme in ("http", "https"):
            text = "Airflow" if "/dags/" in parts.path else parts.netloc or link
        elif not parts.scheme:
            text = link.rstrip("/").rsplit("/", 1)[-1] or link
        elif parts.scheme == "s3":
            text = link
        else:  # javascript:, data:, ...: not even as text
            continue
        out.append(_Link(link, text))
    return out


def _incidents(
    incidents: Sequence[Mapping[str, Any]] | None, streak: Mapping[str, Any] | None
) -> list[_Attention]:
    out = []
    for incident in incidents or ():
        name = str(incident.get("name", "?"))
        what, badge = (
            ("failed run", "bad")
            if name.startswith("dag:")
            else ("watchdog", "warn")
            if name.startswith("watchdog:")
            else ("incident", "bad")
        )
        out.append(
            _Attention(
                what,
                badge,
                name,
                None,
                incident.get("since") or "",
                incident.get("runs") if name.startswith("dag:") else "",
                _short(str(incident.get("reason") or ""), INDEX_REASON),
                _links(incident.get("links")),
            )
        )
    if streak and _is_number(streak.get("runs")) and streak["runs"] > 0:
        out.append(
            _Attention(
                "retrain streak",
                "warn",
                f"{streak['runs']} run(s) in a row without a deploy",
                None,
                streak.get("since") or "",
                streak["runs"],
                _short(str(streak.get("reason") or ""), INDEX_REASON),
                [],
            )
        )
    return out


def _decisions_to_look_at(decisions: Sequence[Mapping[str, Any]]) -> list[_Attention]:
    """Holds since the last deploy, and flagged decisions down to and including it (a deploy
    flagged "worse" is the model in service)."""
    out = []
    for d in decisions:
        label, badge = decision_outcome(d)
        marks = _flags(d)
        version = str(d.get("version", "?"))
        if marks or badge in ("bad", "warn"):
            rule = str(d.get("rule") or "")
            what = f"held ({rule})" if rule and badge != "ok" else label
            out.append(
                _Attention(
                    f"flagged: {what}" if marks else what,
                    "bad" if marks else badge,
                    version,
                    _page_link("decisions", version),
                    d.get("decided_at") or "",
                    "",
                    "; ".join(marks) if marks else decision_summary(d),
                    [],
                )
            )
        if badge == "ok":
            break
    return out[:ATTENTION_LIMIT]


def _entry_attention(
    what: str, entry: Mapping[str, Any], link: str | None, reason: str
) -> _Attention:
    """A history entry (a rejected training set, a quarantined file) as a row to look at."""
    return _Attention(
        what, "bad", entry.get("name", "?"), link, entry.get("at") or "", "", reason, []
    )


def _history_to_look_at(latest: Sequence[Mapping[str, Any]]) -> list[_Attention]:
    """Training sets rejected since the last that passed; files quarantined since the last
    accepted one, its own batch included (newest first; beyond the limit, one line says how
    many more)."""
    rejected, quarantined = [], []
    set_passed = False
    accepted_in: object = None  # the batch (or time) of the newest accepted file
    for entry in latest:
        kind, status = entry.get("kind"), entry.get("status")
        link = entry.get("link") if isinstance(entry.get("link"), str) else None
        reason = _short(str(entry.get("reason") or ""), INDEX_REASON)
        if kind == "training set" and not set_passed:
            set_passed = status == "passed"
            if status == "rejected":
                rejected.append(_entry_attention("training set rejected", entry, link, reason))
        elif kind == "file":
            batch = entry.get("batch") or entry.get("at")
            if accepted_in is not None and batch != accepted_in:
                continue  # older than the batch of the last accepted file
            if status == "passed":
                accepted_in = batch  # its batch still counts: files in it have no order
            elif status == "quarantined":
                quarantined.append(_entry_attention("quarantined", entry, link, reason))
    if len(quarantined) > ATTENTION_LIMIT:
        more = len(quarantined) - ATTENTION_LIMIT
        summary = _Attention(
            "quarantined",
            "bad",
            f"and {more} more since the last accepted file",
            None,
            "",
            "",
            "see the history below",
            [],
        )
        quarantined = [*quarantined[:ATTENTION_LIMIT], summary]
    return rejected[:ATTENTION_LIMIT] + quarantined


def _attention(
    incidents: Sequence[Mapping[str, Any]] | None,
    streak: Mapping[str, Any] | None,
    decisions: Sequence[Mapping[str, Any]],
    latest: Sequence[Mapping[str, Any]],
) -> list[_Attention]:
    """What needs a look, worst first: open incidents (failed runs, watchdog findings), the
    retrain streak, held or flagged decisions since the last deploy, training sets rejected
    since the last one that passed, files quarantined since the last accepted one."""
    return (
        _incidents(incidents, streak)
        + _decisions_to_look_at(decisions)
        + (_history_to_look_at(latest))
    )


def _awaiting(awaiting: Sequence[Mapping[str, Any]]) -> list[_Attention]:
    """Deploys waiting for a person ([gate] approval), first: nothing moves until they answer."""
    return [
        _Attention(
            what="awaiting approval",
            badge="warn",
            name=str(a.get("serving_version") or a.get("version") or "?"),
            page=str(a["decision_page"]) if a.get("decision_page") else None,
            since=a.get("requested_at") or "",
            runs="",
            reason=_short(
                f"{a.get('why', '')}; who may answer: "
                f"{', '.join(a.get('approvers') or ()) or 'any user with access to the DAG'}; "
                f"by {a.get('timeout_at', '?')}, else {a.get('on_timeout', '?')} "
                f"(`retrain approve|reject {a.get('version', '?')}`)",
                INDEX_REASON * 2,
            ),
            links=[],
        )
        for a in awaiting
    ]


def _under(key: str, prefix: str) -> str:
    """A reports key relative to the reports root ("" when it is not under it)."""
    return key[len(prefix) :] if key.startswith(prefix) else ""


def _said(title: str, reason: str) -> bool:
    """Whether ``title`` already says ``reason`` (or the other way round)."""
    a, b = title.strip().lower(), reason.strip().lower()
    return bool(b) and (b in a or a in b)


def _alert_rows(alerts: Sequence[Mapping[str, Any]]) -> list[_AlertRow]:
    rows = []
    for a in alerts:
        title = str(a.get("title") or a.get("subject") or "")
        reason = str(a.get("reason") or "")
        if _said(title, reason):
            title, reason = (title if len(title) >= len(reason) else reason), ""
        rows.append(
            _AlertRow(
                at=a.get("at") or "",
                status=str(a.get("status") or "?"),
                badge=_ALERT_BADGE.get(str(a.get("status")), "neutral"),
                title=title,
                reason=_short(reason, INDEX_REASON),
                links=_links(a.get("links")),
            )
        )
    return rows


def _decision_row(d: Mapping[str, Any]) -> _DecisionRow:
    label, kind = decision_outcome(d)
    serving = d.get("serving_version")
    return _DecisionRow(
        version=str(d.get("version", "?")),
        serving=str(serving) if serving else None,
        outcome=label,
        badge=kind,
        rule=str(d.get("rule") or ""),
        summary=decision_summary(d),
        flags=_flags(d),
        decided_at=d.get("decided_at") or "",
        drift=bool(d.get("drift")),
    )


def render_index(
    *,
    champion: Mapping[str, Any] | None,
    latest_decisions: list[Mapping[str, Any]],
    latest: list[Mapping[str, Any]],
    history_page: str | None = None,
    incidents: Sequence[Mapping[str, Any]] | None = None,
    alerts: Sequence[Mapping[str, Any]] | None = None,
    streak: Mapping[str, Any] | None = None,
    published_at: str | None = None,
    awaiting: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The landing page. Decision entries: decision records (``version``, ``deploy``/
    ``promoted``/``outcome``, ``rule``, ``comparison``, ``decided_at``, ``serving_version``,
    ``drift``: truthy when a drift page exists), newest first, one per decision (not the refit's
    copy); ``latest``: the newest history entries (:mod:`retrain.history`), newest first;
    ``history_page``: the newest history page, relative to the root. ``champion``: the pointer,
    with ``decision_version`` when it is a refit: the index names the evaluated version, with
    the pointer's version as its serving model.

    ``incidents`` (open ones, :class:`retrain.alerts.Incident` as dicts), the retrain
    ``streak`` and ``alerts`` (``Incidents.history``): None leaves a section out. Links in them
    are kept if relative to the reports root or http(s)."""
    deployed = None
    if champion:
        pointer = str(champion.get("version", "?"))
        evaluated = str(champion.get("decision_version") or pointer)
        deployed = _Champion(
            version=evaluated,
            serving=pointer if pointer != evaluated else None,
            deployed_at=champion.get("deployed_at", "?"),
            reason=champion.get("reason"),
            metrics=champion.get("metrics"),
        )
    decisions = [_decision_row(d) for d in latest_decisions]
    history = [
        row._replace(reason=_short(str(row.reason), INDEX_REASON))
        for row in _history_rows(latest[:INDEX_HISTORY_ROWS])
    ]
    return reports.render_page(
        "index.html.j2",
        root="",
        champion=deployed,
        decisions=decisions,
        latest_decision=decisions[0] if decisions else None,
        attention=_awaiting(awaiting) + _attention(incidents, streak, latest_decisions, latest),
        checked_incidents=incidents is not None,
        n_incidents=len(incidents or ()),
        alerts=None if alerts is None else _alert_rows(alerts),
        latest=history,
        history_page=history_page,
        published_at=published_at,
    )


def publish_index(
    storage: S3Storage,
    reports_prefix: str,
    *,
    champion: Mapping[str, Any] | None,
    latest_decisions: list[Mapping[str, Any]],
    latest: list[Mapping[str, Any]],
    history_page: str | None = None,
    incidents: Sequence[Mapping[str, Any]] | None = None,
    alerts: Sequence[Mapping[str, Any]] | None = None,
    streak: Mapping[str, Any] | None = None,
    published_at: str | None = None,
    awaiting: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Write ``<reports_prefix>index.html``; return its key."""
    page = render_index(
        champion=champion,
        latest_decisions=latest_decisions,
        latest=latest,
        history_page=history_page,
        incidents=incidents,
        alerts=alerts,
        streak=streak,
        published_at=published_at,
        awaiting=[
            {**a, "decision_page": _under(str(a.get("decision_page") or ""), reports_prefix)}
            for a in awaiting
        ],
    )
    return _publish(storage, index_key(reports_prefix), page)
