"""The pinned feature files of a retrain, staged on local disk with a narrow row index.

Every retrain task (gate, train, evaluate, refit) stages the same keys the same way, so they see
the same rows: the files are streamed from the bucket into a temporary directory, indexed
(:func:`retrain.trainset.build_row_index`, 17 bytes a row, of which the time and id hash are
kept in files beside the staged ones and paged in only by the scans that need them) and,
under ``duplicate_ids = "upsert"``, reduced to the newest row per id. Nothing holds the table
in pandas: the tasks read rows batch by batch, or a seeded sample of bounded size where a frame
is needed (drift).
"""

from __future__ import annotations

import logging
import resource
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.storage import S3Storage
from retrain.trainset import RowIndex, build_row_index, newest_per_id, read_rows, sample_rows

log = logging.getLogger(__name__)

# The rows a drift reference or a drift comparison profiles: a seeded sample of the rows above
# this many. Drift is an effect size on binned shares and quantiles, steady well below this
# (its noise floor at 250k rows is far under every threshold), and the frame stays ~50 MB.
DRIFT_SAMPLE_ROWS = 250_000


@dataclass(frozen=True, eq=False)
class StagedSet:
    """The feature files ``keys`` (oldest first) as local ``paths``, with their ETags as read,
    their :class:`RowIndex`, and ``rows``: a mask over the index of the rows in the training set
    (every row, or after an upsert the newest row per id)."""

    keys: tuple[str, ...]
    paths: tuple[Path, ...]
    etags: tuple[str, ...]
    index: RowIndex
    rows: np.ndarray
    replaced_rows: int  # rows an upsert replaced by a newer row with the same id

    @property
    def n_rows(self) -> int:
        return int(np.count_nonzero(self.rows))

    def key_of(self, path: str | Path) -> str:
        return self.keys[self.paths.index(Path(path))]

    def rows_of(self, keys: tuple[str, ...] | list[str]) -> np.ndarray:
        """The training set's rows that come from the files ``keys``."""
        wanted = set(keys)
        out = np.zeros(self.index.n_rows, dtype=bool)
        for f, key in enumerate(self.keys):
            if key in wanted:
                lo, hi = self.index.offsets[f], self.index.offsets[f + 1]
                out[lo:hi] = self.rows[lo:hi]
        return out

    def sources(self, mask: np.ndarray) -> list[str]:
        """The keys of the files holding the rows of ``mask`` (sorted)."""
        files = np.unique(self.index.file_of(np.flatnonzero(mask)))
        return sorted(self.keys[int(f)] for f in files)

    def frame(self, mask: np.ndarray, cfg: Config) -> pd.DataFrame:
        """The rows of ``mask`` as a frame typed like ``pd.read_parquet`` of a feature file: for
        a bounded number of rows only (a sample, the rows a test looks at)."""
        return read_rows(self.paths, self.index, mask, ds=cfg.dataset)

    def sample_frame(
        self, mask: np.ndarray, cfg: Config, rows: int = DRIFT_SAMPLE_ROWS
    ) -> pd.DataFrame:
        """The rows of ``mask``, or about ``rows`` of them chosen by seeded id hash when there
        are more (the same rows in every task and run)."""
        return self.frame(sample_rows(self.index, mask, rows, cfg.training.seed), cfg)


@contextmanager
def staged_training_set(
    storage: S3Storage, cfg: Config, keys: tuple[str, ...] | list[str]
) -> Iterator[StagedSet]:
    """Stage ``keys`` (see the module docstring); the files are removed on exit."""
    keys = tuple(keys)
    with tempfile.TemporaryDirectory(prefix="retrain-trainset-") as tmp:
        paths = tuple(Path(tmp) / f"{n:06d}.parquet" for n in range(len(keys)))
        etags = tuple(
            storage.download(key, path).etag.strip('"')
            for key, path in zip(keys, paths, strict=True)
        )
        index = build_row_index(paths, cfg.dataset, spill_dir=tmp)
        rows = np.ones(index.n_rows, dtype=bool)
        if cfg.ingest.duplicate_ids == "upsert" and index.n_rows:
            rows = newest_per_id(index)
        replaced = index.n_rows - int(np.count_nonzero(rows))
        if replaced:
            log.info("upsert: %d row(s) replaced by newer rows with the same id", replaced)
        log.info(
            "staged %d feature file(s), %d rows (index %.1f MB)",
            len(keys),
            index.n_rows,
            index.nbytes / 2**20,
        )
        yield StagedSet(
            keys=keys, paths=paths, etags=etags, index=index, rows=rows, replaced_rows=replaced
        )


@dataclass(frozen=True)
class MemoryUse:
    """A task's peak resident memory against ``[training] memory_budget_mb``."""

    peak_rss_mb: int
    budget_mb: int

    @property
    def within_budget(self) -> bool:
        return self.peak_rss_mb <= self.budget_mb

    def as_dict(self) -> dict[str, Any]:
        return {
            "peak_rss_mb": self.peak_rss_mb,
            "budget_mb": self.budget_mb,
            "within_budget": self.within_budget,
        }


def memory_use(cfg: Config, step: str) -> MemoryUse:
    """This process's peak RSS so far, logged against the budget (a warning above it)."""
    use = MemoryUse(peak_rss_mb=peak_rss_mb(), budget_mb=cfg.training.memory_budget_mb)
    level = logging.INFO if use.within_budget else logging.WARNING
    log.log(
        level, "%s: peak RSS %d MB of a %d MB memory budget", step, use.peak_rss_mb, use.budget_mb
    )
    return use


def peak_rss_mb() -> int:
    """The process's peak resident set (Linux: VmHWM, which starts afresh at exec, where
    ``ru_maxrss`` keeps the peak of the process that exec'd; elsewhere ``ru_maxrss``)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak / 2**20 if sys.platform == "darwin" else peak / 1024)  # bytes vs KiB
