"""The reports index, rebuilt by every stage that changes what it shows."""

from __future__ import annotations

from dataclasses import asdict

from retrain import reports
from retrain.config import Config
from retrain.registry import ModelRegistry
from retrain.storage import S3Storage


def publish_index(storage: S3Storage, cfg: Config) -> str:
    """Rebuild reports/index.html from what the bucket holds now."""
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    champion = registry.champion()
    decisions = [
        d
        for v in registry.list_versions()[-20:][::-1]
        if (d := registry.load_decision(v)) is not None
    ]
    return reports.publish_index(
        storage,
        cfg.storage.reports_prefix,
        champion=asdict(champion) if champion else None,
        latest_decisions=decisions,
        latest_validations=reports.latest_validation_entries(storage, cfg.storage.reports_prefix),
    )
