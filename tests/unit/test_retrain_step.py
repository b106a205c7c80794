"""The pure parts of the retrain step: which rows judge the models, which files train them."""

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import load_config
from retrain.datagen import generate
from retrain.features import build_features
from retrain.steps.retrain import holdout_rows, new_feature_keys, training_window
from retrain.steps.training_set import StagedSet
from retrain.trainset import build_row_index

CFG = load_config(Path(__file__).parents[2] / "retrain.toml", env={})
DS = CFG.dataset


def _staged(tmp: Path, frames: dict[str, pd.DataFrame]) -> StagedSet:
    """What staged_training_set gives for these feature files, from local files."""
    paths = tuple(tmp / f"{n}.parquet" for n in range(len(frames)))
    for path, frame in zip(paths, frames.values(), strict=True):
        frame.to_parquet(path)
    index = build_row_index(paths, DS)
    rows = np.ones(index.n_rows, dtype=bool)
    return StagedSet(tuple(frames), paths, ("e",) * len(paths), index, rows, replaced_rows=0)


def test_the_holdout_is_the_newest_part_of_what_the_champion_never_saw(tmp_path: Path):
    old = build_features(generate(3000, seed=1, start=datetime(2025, 1, 1)), DS)
    new = build_features(generate(1000, seed=2, start=datetime(2025, 1, 8)), DS)
    ts = _staged(tmp_path, {"f/old.parquet": old, "f/new.parquet": new})
    keys = new_feature_keys(ts.keys, ["f/old.parquet"])
    assert keys == ("f/new.parquet",)
    mask = holdout_rows(ts, CFG, keys)
    assert mask is not None and mask.sum() == round(1000 * CFG.training.new_data_holdout_fraction)
    frame = pd.concat([old, new], ignore_index=True)
    from_new = ts.rows_of(keys)
    held, rest = frame[mask], frame[~mask & from_new]
    # only new rows, and the newest of them: the challenger trains on the older rest
    assert ts.sources(mask) == ["f/new.parquet"] and len(rest) == 1000 - mask.sum()
    assert held[DS.time_column].min() >= rest[DS.time_column].max()
    # exactly the rows the pandas time order puts last among the new ones (ties by id)
    ordered = frame[from_new].sort_values([DS.time_column, DS.id_column], kind="stable")
    assert set(np.flatnonzero(mask)) == set(ordered.index[len(ordered) - mask.sum() :])
    # no champion, or too few new rows: the time holdout
    assert new_feature_keys(ts.keys, None) == () and holdout_rows(ts, CFG, ()) is None
    (tmp_path / "few").mkdir()
    few = _staged(tmp_path / "few", {"f/old.parquet": old, "f/new.parquet": new.iloc[:150]})
    assert holdout_rows(few, CFG, ("f/new.parquet",)) is None


def _key(day: str, name: str) -> str:
    return f"features/ingest_date={day}/batch=b{name}/{name}.csv.parquet"


KEYS = (
    _key("2026-11-01", "a"),
    _key("2026-11-20", "b"),
    _key("2026-11-29", "c"),
    _key("2026-11-30", "d"),
    _key("2026-11-30", "e"),
)
ROWS = {KEYS[0]: 5000, KEYS[1]: 300, KEYS[2]: 200, KEYS[3]: 100, KEYS[4]: 50}


@pytest.mark.parametrize(
    ("days", "rows", "expected"),
    [
        (0, 0, KEYS),  # no window: all history
        (1, 0, KEYS[3:]),  # the newest arrival day
        (2, 0, KEYS[2:]),  # and the day before it
        (29, 0, KEYS[1:]),  # 11-02 to 11-30: 2026-11-01 is out
        (30, 0, KEYS),  # 11-01 to 11-30
        (0, 150, KEYS[3:]),  # newest files until at least 150 rows: 50 + 100
        (0, 151, KEYS[2:]),
        (0, 10**9, KEYS),  # more than there is: everything
        (2, 10**9, KEYS[2:]),  # both: the rows window never reaches past the day window
    ],
)
def test_the_training_window_takes_the_newest_files(days, rows, expected):
    asked: list[str] = []

    def rows_of(key: str) -> int:
        asked.append(key)
        return ROWS[key]

    assert training_window(KEYS, days=days, rows=rows, rows_of=rows_of) == expected
    # row counts are read only for the files the window takes (plus none beyond): cost
    # follows the window, not history
    assert set(asked) <= set(expected)


def test_the_refit_records_the_sample_it_learns_from(tmp_path: Path):
    """Above the memory budget's row cap the serving refit learns from a seeded sample: its
    record says how many rows, counted the way refit_streamed takes them, not every row."""
    from dataclasses import replace

    from retrain.steps.retrain import refit_sample
    from retrain.trainset import _within_budget, budget_of

    frame = build_features(generate(40_000, seed=3, start=datetime(2025, 1, 1)), DS)
    ts = _staged(tmp_path, {"f/all.parquet": frame})
    tight = replace(CFG, training=replace(CFG.training, memory_budget_mb=330))
    n_train, sampled_from = refit_sample(ts, tight)
    assert sampled_from == 40_000 and 10_000 < n_train < 40_000
    rows, total = _within_budget(
        ts.index, ts.rows, budget_of(tight, None, ts.index), tight.training.seed
    )
    assert (n_train, sampled_from) == (int(rows.sum()), total)
    assert refit_sample(ts, CFG) == (40_000, 0), "within the budget: every row, no sample"
