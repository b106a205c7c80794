"""Alerts and the incidents behind them, kept in the bucket so that nothing fails silently and
nothing alerts twice for one thing.

An *incident* is one thing that is wrong: a DAG failing (``dag:retrain``), a watchdog finding
(``watchdog:landing_wait``), a streak of held decisions. Its record under
``ledger/incidents/`` says since when and for how many runs. The rules:

- a failing run opens the incident and alerts once ("FAILED"), however many of its tasks fail;
- the next run failing for the same reason (numbers aside) alerts "still failing since ...,
  N runs": one message per run, one incident; another reason opens a new incident;
- a watchdog finding alerts once when it opens, never while it stays open;
- when it clears (a run succeeds, the finding is gone) one "RECOVERED" message closes it;
- a *notice* (files quarantined, a decision held) alerts each time and opens nothing.

Every alert is also written to ``reports/alerts/`` (what ``retrain status`` shows). Sending is
the caller's: the DAGs send through an Airflow notifier (``triggers/alerting.py``).
No Airflow imports here.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from retrain.layout import Layout
from retrain.report_links import WebLinks
from retrain.storage import ObjectNotFound, PreconditionFailed, S3Storage

Status = Literal["failed", "still_failing", "warning", "recovered", "notice"]
_SUBJECT_LIMIT = 100  # SNS subjects: at most 100 printable ASCII characters, one line
_URI = re.compile(r"s3://[^\s;,)]+")


@dataclass(frozen=True)
class Alert:
    """One message: what (subject), why (the first line of the reason), where to look."""

    incident: str
    status: Status
    title: str  # e.g. "retrain failed", "files waiting in landing/"
    reason: str
    links: tuple[str, ...] = ()
    since: str = ""  # when the incident opened
    runs: int = 0  # failing runs so far (failures only)
    at: str = ""

    @property
    def subject(self) -> str:
        label = {
            "failed": "FAILED",
            "still_failing": "STILL FAILING",
            "warning": "WARNING",
            "recovered": "RECOVERED",
            "notice": "NOTICE",
        }[self.status]
        text = f"[retrain] {label}: {self.title}"
        text = text.encode("ascii", "replace").decode().replace("\n", " ")
        return text[: _SUBJECT_LIMIT - 3] + "..." if len(text) > _SUBJECT_LIMIT else text

    def text(self, web: WebLinks | None = None) -> str:
        """The message body (the subject travels beside it). With ``web``, a report link opens
        in a browser (the Airflow plugin's URL) and keeps its ``s3://`` URI beside it."""
        lines = [self.reason]
        if self.status == "still_failing":
            lines.append(f"still failing since {self.since}, {self.runs} runs")
        elif self.status == "recovered" and self.since and self.incident.startswith("watchdog:"):
            lines.append(f"first seen {self.since}")  # a finding, not a run: nothing "failed"
        elif self.status == "recovered" and self.since:
            lines.append(
                f"was failing since {self.since}" + (f", {self.runs} runs" if self.runs else "")
            )
        lines += [f"look: {web.look(link) if web else link}" for link in self.links]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "subject": self.subject, "text": self.text()}


@dataclass(frozen=True)
class Incident:
    """An open incident as recorded in the bucket."""

    name: str
    reason: str
    since: str
    runs: int = 1
    last_run: str = ""
    last_at: str = ""
    links: tuple[str, ...] = ()

    @classmethod
    def of(cls, data: dict[str, Any]) -> Incident:
        return cls(**{**data, "links": tuple(data.get("links") or ())})


def first_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of a reason or exception message, shortened."""
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def report_uris(text: str) -> tuple[str, ...]:
    """The s3:// URIs a reason names (reports, quarantined files), in order, once each."""
    return tuple(dict.fromkeys(_URI.findall(str(text))))


def same_reason(a: str, b: str) -> bool:
    """Two reasons are the same if they differ only in numbers, ids in brackets or URIs: "only
    120 rows" and "only 240 rows" are one problem going on."""

    def shape(text: str) -> str:
        text = _URI.sub("<uri>", text)
        text = re.sub(r"\[[^\]]*\]|'[^']*'", "<v>", text)
        return re.sub(r"\d+(?:\.\d+)?", "#", text).strip()

    return shape(a) == shape(b)


HISTORY_WINDOWS_DAYS = (1, 7, 31, 366)  # how far back Incidents.history looks, step by step


class Incidents:
    """The incident records and the alert history in the bucket."""

    def __init__(self, storage: S3Storage, layout: Layout) -> None:
        self.storage, self.layout = storage, layout

    # -- reading --------------------------------------------------------------------------------

    def get(self, name: str) -> Incident | None:
        try:
            return Incident.of(self.storage.get_json(self.layout.incident_key(name)))
        except ObjectNotFound:
            return None

    def open(self) -> list[Incident]:
        prefix = self.layout.incidents_prefix
        found = []
        for obj in self.storage.list_objects(prefix):
            try:
                found.append(Incident.of(self.storage.get_json(obj.key)))
            except ObjectNotFound:  # closed meanwhile
                continue
        return sorted(found, key=lambda i: i.since)

    def history(self, limit: int = 20, *, now: datetime | None = None) -> list[dict[str, Any]]:
        """The most recent alerts, newest first.

        Alert keys sort by time, so the listing starts at a point in time and widens (a day, a
        week, a month, a year, then everything) until it holds ``limit`` alerts: reading the
        latest alerts costs the same after a year of them as on the first day.
        """
        now = now or datetime.now(UTC)
        prefix = self.layout.alerts_prefix
        keys: list[str] = []
        for days in HISTORY_WINDOWS_DAYS:
            since = self.layout.alert_key(now - timedelta(days=days), "").rsplit("-", 1)[0]
            keys = [o.key for o in self.storage.list_objects(prefix, start_after=since)]
            if len(keys) >= limit:
                break
        else:
            keys = [o.key for o in self.storage.list_objects(prefix)]
        keys.sort()
        out = []
        for key in reversed(keys[-limit:]):
            try:
                out.append(self.storage.get_json(key))
            except ObjectNotFound:
                continue
        return out

    # -- changes --------------------------------------------------------------------------------

    def failed(
        self,
        name: str,
        title: str,
        reason: str,
        *,
        run: str,
        links: tuple[str, ...] = (),
        now: datetime | None = None,
    ) -> Alert | None:
        """A run failed. None if this run already alerted (another of its tasks failed)."""
        at = _stamp(now)
        reason = first_line(reason)
        current = self.get(name)
        if current is not None and current.last_run == run:
            return None
        if current is not None and same_reason(current.reason, reason):
            incident = replace(
                current, runs=current.runs + 1, last_run=run, last_at=at, reason=reason, links=links
            )
            status: Status = "still_failing"
        else:
            incident = Incident(name, reason, since=at, last_run=run, last_at=at, links=links)
            status = "failed"
        self._put(incident)
        alert = Alert(name, status, title, reason, links, incident.since, incident.runs, at)
        return self.record(alert)

    def warning(
        self,
        name: str,
        title: str,
        reason: str,
        *,
        links: tuple[str, ...] = (),
        now: datetime | None = None,
    ) -> Alert | None:
        """A watchdog finding: alerts when the incident opens, None while it stays open. The
        create-only write makes two watchdogs racing alert once."""
        if self.get(name) is not None:
            return None
        at = _stamp(now)
        incident = Incident(name, first_line(reason), since=at, last_at=at, links=links)
        try:
            self._put(incident, create_only=True)
        except PreconditionFailed:
            return None
        return self.record(Alert(name, "warning", title, incident.reason, links, at, 0, at))

    def cleared(
        self, name: str, title: str, reason: str, *, now: datetime | None = None
    ) -> Alert | None:
        """The incident is over: one recovery message, None if nothing was open."""
        current = self.get(name)
        if current is None:
            return None
        self.storage.delete(self.layout.incident_key(name))
        runs = current.runs if name.startswith("dag:") else 0
        alert = Alert(name, "recovered", title, first_line(reason), (), current.since, runs)
        return self.record(replace(alert, at=_stamp(now)))

    def notice(
        self, name: str, title: str, reason: str, *, links: tuple[str, ...] = (), now=None
    ) -> Alert:
        """Worth a look each time (files quarantined, a decision held); opens no incident."""
        at = _stamp(now)
        return self.record(Alert(name, "notice", title, first_line(reason), links, "", 0, at))

    # -- the retrain streak: runs in a row that failed or held the champion ---------------------

    def streak(self) -> Incident | None:
        """Retrain runs in a row that did not deploy (failed, or the gate held): ``runs``,
        ``since``, the latest ``reason``. None after a deploy."""
        try:
            return Incident.of(self.storage.get_json(self.layout.streak_key))
        except ObjectNotFound:
            return None

    def bump_streak(self, run: str, reason: str, *, now: datetime | None = None) -> Incident:
        """One more run without a deploy (a run counts once, however many tasks report it)."""
        at, current = _stamp(now), self.streak()
        if current is not None and current.last_run == run:
            return current
        if current is None:
            streak = Incident("retrain", first_line(reason), since=at, last_run=run, last_at=at)
        else:
            streak = replace(
                current, runs=current.runs + 1, reason=first_line(reason), last_run=run, last_at=at
            )
        self.storage.put_json(self.layout.streak_key, asdict(streak))
        return streak

    def reset_streak(self) -> None:
        """A deploy ends the streak."""
        self.storage.delete(self.layout.streak_key)

    def record(self, alert: Alert) -> Alert:
        """Keep the alert in the bucket's history (what ``retrain status`` lists)."""
        at = alert.at or _stamp(None)
        alert = replace(alert, at=at)
        self.storage.put_bytes(
            self.layout.alert_key(datetime.now(UTC), alert.incident),
            json.dumps(alert.as_dict(), indent=2).encode(),
        )
        return alert

    def _put(self, incident: Incident, *, create_only: bool = False) -> None:
        self.storage.put_json(
            self.layout.incident_key(incident.name), asdict(incident), if_none_match=create_only
        )


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
