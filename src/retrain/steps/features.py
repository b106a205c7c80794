"""Features: each accepted raw file becomes one Parquet feature file (features are row-wise)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from retrain.config import Config
from retrain.features import build_features
from retrain.layout import Layout
from retrain.storage import S3Storage
from retrain.tables import coerce_types, read_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureBuild:
    written: tuple[str, ...]
    rows: int
    already_built: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "written": list(self.written),
            "rows": self.rows,
            "already_built": self.already_built,
        }


def build_features_for_new_raw(storage: S3Storage, cfg: Config) -> FeatureBuild:
    """Featurize each raw file that has no feature file yet, so a rebuild is incremental."""
    layout = Layout.of(cfg)
    existing = {o.key for o in storage.list_objects(cfg.storage.features_prefix)}
    written, rows, already = [], 0, 0
    for obj in storage.list_objects(cfg.storage.raw_prefix):
        target = layout.feature_key(obj.key)
        if target in existing:
            already += 1
            continue
        typed = coerce_types(
            read_table(storage.get_bytes(obj.key), obj.key, cfg.dataset), cfg.dataset
        )
        table = build_features(typed, cfg.dataset)
        storage.write_parquet(target, table)
        written.append(target)
        rows += len(table)
        log.info("features: %s -> %s (%d rows)", obj.key, target, len(table))
    return FeatureBuild(written=tuple(written), rows=rows, already_built=already)
