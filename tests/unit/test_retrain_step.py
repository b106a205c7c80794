"""The pure parts of the retrain step: which rows judge the models, which files train them."""

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import load_config
from retrain.datagen import generate
from retrain.features import build_features
from retrain.steps.retrain import TrainingSet, holdout_rows, new_feature_keys, training_window

CFG = load_config(Path(__file__).parents[2] / "retrain.toml", env={})
DS = CFG.dataset


def _training_set(frames: dict[str, pd.DataFrame]):
    frame = pd.concat(frames.values(), ignore_index=True)
    sources = pd.Series(np.repeat(list(frames), [len(f) for f in frames.values()]))
    return TrainingSet(frame=frame, sources=sources, replaced_rows=0)


def test_the_holdout_is_the_newest_part_of_what_the_champion_never_saw():
    old = build_features(generate(3000, seed=1, start=datetime(2025, 1, 1)), DS)
    new = build_features(generate(1000, seed=2, start=datetime(2025, 1, 8)), DS)
    ts = _training_set({"f/old.parquet": old, "f/new.parquet": new})
    keys = new_feature_keys(ts, ["f/old.parquet"])
    assert keys == ("f/new.parquet",)
    mask = holdout_rows(ts, CFG, keys)
    assert mask is not None and mask.sum() == round(1000 * CFG.training.new_data_holdout_fraction)
    held, rest = ts.frame[mask], ts.frame[~mask & (ts.sources == "f/new.parquet").to_numpy()]
    # only new rows, and the newest of them: the challenger trains on the older rest
    assert set(ts.sources[mask]) == {"f/new.parquet"} and len(rest) == 1000 - mask.sum()
    assert held[DS.time_column].min() >= rest[DS.time_column].max()
    # no champion, or too few new rows: the time holdout
    assert new_feature_keys(ts, None) == () and holdout_rows(ts, CFG, ()) is None
    few = _training_set({"f/old.parquet": old, "f/new.parquet": new.iloc[:150]})
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
