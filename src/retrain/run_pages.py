"""One DAG run's reports, as the Airflow plugin shows them beside the run in the UI.

An ingest run's batch page and a retrain run's training-set check are named after the run
(:func:`retrain.layout.run_token`); the decision a retrain run made, what a score run wrote and
what a watchdog run found are in the run's task results (XComs), which the plugin reads from
Airflow and hands over here. Pure: the caller says which of the pages exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from retrain.layout import run_token
from retrain.reports import render_page, report_keys, validation_summary_key

PIPELINE_DAGS = ("ingest", "features", "retrain", "score", "approve", "watchdog")
_NOTE_LIMIT = 300


@dataclass(frozen=True)
class RunLink:
    label: str
    path: str  # relative to the reports root
    note: str = ""
    present: bool = True


@dataclass(frozen=True)
class RunView:
    """What the run's page shows; ``redirect`` names the one page to open instead, if any."""

    dag_id: str
    run_id: str
    headline: str
    links: tuple[RunLink, ...] = ()
    items_title: str = ""
    items: tuple[str, ...] = ()
    facts_title: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def redirect(self) -> str | None:
        """A run with exactly one page that exists and nothing else to say opens that page."""
        present = [link for link in self.links if link.present]
        if len(self.links) == 1 and present and not self.items and not self.facts:
            return present[0].path
        return None


def _short(text: Any, limit: int = _NOTE_LIMIT) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def pages_of(dag_id: str, run_id: str, results: Mapping[str, Any]) -> tuple[RunLink, ...]:
    """The report pages a run may have written, ``present`` not yet known (all True)."""
    token = run_token(run_id)
    if dag_id == "ingest":
        routed = results.get("route") if isinstance(results.get("route"), Mapping) else {}
        note = "each file's verdict and its GX result"
        if routed:
            accepted = len(routed.get("raw_keys") or ())
            note = f"{accepted} accepted, {len(routed.get('quarantined') or ())} quarantined"
        return (RunLink("batch validation", validation_summary_key("", token), note),)
    if dag_id == "retrain":
        links = [
            RunLink(
                "training-set check",
                f"training/{token}.html",
                "the GX gate on the training set, and the files to blame if it failed",
            )
        ]
        decision = results.get("evaluate_and_decide")
        if isinstance(decision, Mapping) and decision.get("version"):
            pages = report_keys("", str(decision["version"]))  # relative to the reports root
            verdict = "deploy" if decision.get("deploy") else "hold"
            reason = _short(decision.get("reason"))
            note = reason if reason.startswith(f"{verdict}:") else f"{verdict}: {reason}"
            links.append(RunLink("decision", pages.decision, note))
            links.append(
                RunLink("drift", pages.drift, "each feature against the champion's reference")
            )
        return tuple(links)
    return ()


def view(
    dag_id: str,
    run_id: str,
    state: str,
    results: Mapping[str, Any],
    exists: Callable[[str], bool],
) -> RunView:
    """The run's page: its report pages (checked with ``exists``, a path relative to the reports
    root), plus what its task results say where they are the report (scoring, watchdog)."""
    links = tuple(
        RunLink(link.label, link.path, link.note, exists(link.path))
        for link in pages_of(dag_id, run_id, results)
    )
    headline = f"State: {state or 'unknown'}."
    if dag_id == "retrain" and not results.get("evaluate_and_decide"):
        headline += " No decision recorded for this run (it failed before, or is still running)."
    if dag_id == "score":
        scored = results.get("score_newest")
        if not isinstance(scored, Mapping):
            return RunView(
                dag_id, run_id, headline + " Nothing scored (no new data, or no result yet).", links
            )
        manifest = results.get("manifest") if isinstance(results.get("manifest"), Mapping) else {}
        facts = {
            "model version": scored.get("version"),
            "rows scored": scored.get("rows"),
            "feature files": len(scored.get("feature_keys") or ()),
            "manifest": scored.get("manifest_key"),
            **{f"manifest: {k}": v for k, v in manifest.items() if not isinstance(v, list)},
        }
        items = tuple(str(k) for k in (scored.get("prediction_keys") or ())[:50])
        return RunView(
            dag_id,
            run_id,
            headline,
            links,
            "prediction files (first 50)",
            items,
            "predictions manifest",
            facts,
        )
    if dag_id == "watchdog":
        health = results.get("check_health")
        if not isinstance(health, Mapping):
            return RunView(dag_id, run_id, headline + " No findings recorded (yet).", links)
        active = tuple(str(a) for a in health.get("active") or ())
        alerts = tuple(str(a) for a in health.get("alerts") or ())
        headline += (
            f" {len(active)} finding(s) active"
            + (f", alerts sent: {'; '.join(alerts)}" if alerts else ", no alert sent")
            + "."
        )
        facts = health.get("facts") if isinstance(health.get("facts"), Mapping) else {}
        return RunView(
            dag_id,
            run_id,
            headline,
            links,
            "active findings",
            active or ("none",),
            "what the watchdog saw",
            facts,
        )
    return RunView(dag_id, run_id, headline, links)


def render_run(run: RunView) -> str:
    """The run's page (the reports' layout and styles, no JavaScript)."""
    return render_page(
        "run.html.j2",
        root="../../",
        dag_id=run.dag_id,
        run_id=run.run_id,
        headline=run.headline,
        links=run.links,
        items_title=run.items_title,
        items=run.items,
        facts_title=run.facts_title,
        facts=dict(run.facts),
    )
