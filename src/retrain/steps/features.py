"""Features: each accepted raw file becomes one Parquet feature file (features are row-wise),
featurized chunk by chunk into row groups (:mod:`retrain.featurize`), so memory is bounded by
the chunk, not the file."""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrain.config import Config
from retrain.featurize import ROW_GROUP_ROWS, write_features
from retrain.layout import Layout
from retrain.storage import S3Storage
from retrain.tables import iter_table

log = logging.getLogger(__name__)

# S3 user metadata on each feature file: its row count, so a training window by rows reads
# one HEAD per file in the window instead of every file
ROWS_METADATA = "rows"


def feature_rows(storage: S3Storage, key: str) -> int:
    """The row count of a feature file: its metadata, or (written before it existed) the
    Parquet footer of the file."""
    rows = storage.head_metadata(key).get(ROWS_METADATA)
    if rows is not None:
        return int(rows)
    import pyarrow.parquet as pq

    return pq.ParquetFile(io.BytesIO(storage.get_bytes(key))).metadata.num_rows


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
        with tempfile.TemporaryDirectory(prefix="retrain-features-") as tmp:
            local = Path(tmp) / "features.parquet"
            raw = Path(tmp) / "raw"
            storage.download(obj.key, raw)  # streamed to disk: memory follows the chunk
            chunks = iter_table(
                raw,
                obj.key,
                cfg.dataset,
                ROW_GROUP_ROWS,
                max_cell_bytes=cfg.validation.max_cell_bytes,  # as at ingest: raw/ passed it
            )
            n = write_features(chunks, cfg.dataset, local)
            storage.upload(target, local, metadata={ROWS_METADATA: str(n)})
        written.append(target)
        rows += n
        log.info("features: %s -> %s (%d rows)", obj.key, target, n)
    return FeatureBuild(written=tuple(written), rows=rows, already_built=already)
