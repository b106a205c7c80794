"""The reports index, rebuilt by every stage that changes what it shows, and the champion's past
that a decision page draws."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from retrain import report_index
from retrain.alerts import Incidents
from retrain.approvals import Approvals
from retrain.config import Config
from retrain.history import History
from retrain.layout import Layout, history_page_name
from retrain.registry import ModelRegistry
from retrain.storage import S3Storage

INDEX_ENTRIES = 50  # the newest history entries on the front page
INDEX_VERSIONS = 20  # the newest model versions whose decisions the front page lists
INDEX_ALERTS = 10  # the newest alerts on the front page
CHAMPION_HISTORY = 10  # the champion's moves a decision page draws


def _relative(links: Any, storage: S3Storage, reports_prefix: str) -> list[str]:
    """s3:// URIs of report pages as links relative to the reports root; others unchanged
    (the page keeps http(s) links and shows anything else as text)."""
    root = storage.uri(reports_prefix)
    out = []
    for link in links if isinstance(links, list | tuple) else ():
        text = str(link)
        out.append(text[len(root) :] if text.startswith(root) and len(text) > len(root) else text)
    return out


def _decision_records(
    registry: ModelRegistry, limit: int = INDEX_VERSIONS
) -> dict[str, dict[str, Any]]:
    """The decision records of the newest ``limit`` versions, newest first, keyed by version.

    A deploy's serving model (the refit) carries its evaluated version's record (with
    ``serving_version`` set): both stay keyed here, :func:`publish_index` lists it once."""
    records = {}
    for version in registry.list_versions()[-limit:][::-1]:
        record = registry.load_decision(version)
        if record is not None:
            records[version] = record
    return records


def one_per_decision(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per decision, newest first: a deploy is one entry (the evaluated version,
    ``serving_version`` naming its refit). The refit's copy is newer and complete, so it stands
    for both; a lone evaluated record (the refit not saved yet) stands for itself."""
    out, seen = [], set()
    for version, record in records.items():
        evaluated = str(record.get("version") or version)
        if evaluated not in seen:
            seen.add(evaluated)
            out.append(record)
    return out


def publish_index(storage: S3Storage, cfg: Config) -> str:
    """Rebuild reports/index.html: a fixed amount of reading and writing, whatever the history:
    the newest versions' decisions, the open incidents (their prefix holds only open ones), the
    retrain streak, the newest alerts and history entries."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    champion = registry.champion()
    records = _decision_records(registry)
    decisions = one_per_decision(records)
    pointer = None
    if champion:
        record = (
            records[champion.version]
            if champion.version in records
            else registry.load_decision(champion.version)
        )
        # the champion is a refit: the decision (and the model's name) is the evaluated version's
        pointer = asdict(champion) | {
            "decision_version": (record or {}).get("version") or champion.version
        }
    layout = Layout.of(cfg)
    rp = cfg.storage.reports_prefix
    incidents = Incidents(storage, layout)
    opened = [asdict(i) | {"links": _relative(i.links, storage, rp)} for i in incidents.open()]
    alerts = [
        a | {"links": _relative(a.get("links"), storage, rp)}
        for a in incidents.history(limit=INDEX_ALERTS)
    ]
    streak = incidents.streak()
    history = History(storage, layout)
    newest = history.newest_page()
    return report_index.publish_index(
        storage,
        rp,
        champion=pointer,
        latest_decisions=decisions,
        latest=[asdict(e) for e in history.newest(INDEX_ENTRIES, page=newest)],
        history_page=f"history/{history_page_name(newest, 'html')}" if newest >= 0 else None,
        incidents=opened,
        alerts=alerts,
        streak=asdict(streak) if streak else None,
        published_at=datetime.now(UTC).isoformat(timespec="seconds"),
        awaiting=[a.as_dict() for a in Approvals(storage, cfg).pending()],
    )


def champion_history(
    registry: ModelRegistry, metric: str, limit: int = CHAMPION_HISTORY
) -> list[dict[str, Any]]:
    """The champion's last ``limit`` moves, oldest first, for a decision page
    (``reports.render_decision(champion_history=...)``): ``version``, ``at``, ``kind`` ("deploy"
    or "rollback") and ``metric``, the model's ``metric`` as recorded when it was promoted (its
    decision's holdout). One listing of the promotions and ``limit`` reads."""
    return [
        {"version": p.version, "at": p.at, "metric": p.metrics.get(metric), "kind": p.kind}
        for p in reversed(registry.promotions(limit=limit))
    ]
