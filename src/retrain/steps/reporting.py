"""The reports index, rebuilt by every stage that changes what it shows."""

from __future__ import annotations

from dataclasses import asdict

from retrain import reports
from retrain.config import Config
from retrain.history import History
from retrain.layout import Layout, history_page_name
from retrain.registry import ModelRegistry
from retrain.storage import S3Storage

INDEX_ENTRIES = 50  # the newest history entries on the front page


def publish_index(storage: S3Storage, cfg: Config) -> str:
    """Rebuild reports/index.html: a fixed amount of reading and writing, whatever the history."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    champion = registry.champion()
    decisions = [
        d
        for v in registry.list_versions()[-20:][::-1]
        if (d := registry.load_decision(v)) is not None
    ]
    history = History(storage, Layout.of(cfg))
    newest = history.newest_page()
    return reports.publish_index(
        storage,
        cfg.storage.reports_prefix,
        champion=asdict(champion) if champion else None,
        latest_decisions=decisions,
        latest=[asdict(e) for e in history.newest(INDEX_ENTRIES, page=newest)],
        history_page=f"history/{history_page_name(newest, 'html')}" if newest >= 0 else None,
    )
