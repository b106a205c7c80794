"""The streamed training-set gate gives the whole-frame gate's verdict, counts and examples.

Real GX: each case writes feature files, then gates them twice: ``validate_training_set`` on
the concatenated frame (today) and ``validate_training_stream`` on the files with a sample far
smaller than the set, and the failures must agree.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain import trainset
from retrain.config import Config
from retrain.datagen import generate
from retrain.features import build_features
from validation.gates import GateResult, validate_training_set
from validation.training_stream import seeded_sample, validate_training_stream

SAMPLE = 300  # rows GX sees, out of 1800: fewer than training_min_rows (500)


def weeks(cfg: Config, n: int = 600, files: int = 3) -> list[pd.DataFrame]:
    return [
        build_features(
            generate(n, seed=60 + i, start=datetime(2025, 4, 7) + timedelta(days=7 * i)),
            cfg.dataset,
        )
        for i in range(files)
    ]


def write(frames: list[pd.DataFrame], folder: Path) -> list[Path]:
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"week-{i}.parquet"
        frame.to_parquet(path, index=False)
        paths.append(path)
    return paths


def both(paths: list[Path], cfg: Config, **kwargs) -> tuple[GateResult, GateResult]:
    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    whole = validate_training_set(frame, cfg, run_name="whole")
    index = trainset.build_row_index(paths, cfg.dataset)
    streamed = validate_training_stream(
        paths, index, cfg, run_name="streamed", sample_rows=SAMPLE, **kwargs
    )
    return whole, streamed


def failures(result: GateResult) -> list[tuple]:
    shown = []
    for f in result.failed:
        r = f.details.get("result") or {}
        examples = sorted(map(str, r.get("partial_unexpected_list") or []))
        shown.append((f.expectation_type, f.column, r.get("unexpected_count"), examples))
    return shown


def test_a_clean_set_passes_though_the_sample_is_below_the_minimum(config, tmp_path) -> None:
    whole, streamed = both(write(weeks(config), tmp_path), config)
    assert whole.success and streamed.success, streamed.summary()
    assert streamed.evaluated == whole.evaluated + 1  # + the time column never missing
    meta = streamed.result["meta"]
    assert meta["rows"] == 1800 and meta["sample"] == {"rows": SAMPLE, "seed": 0, "limit": SAMPLE}
    assert meta["responsible_files"] == []
    rows = next(
        r
        for r in streamed.result["results"]
        if r["expectation_config"]["type"] == "expect_table_row_count_to_be_between"
    )
    assert rows["result"]["observed_value"] == 1800  # exact, not the sample's 300
    mean = next(
        r
        for r in streamed.result["results"]
        if r["expectation_config"]["type"] == "expect_column_mean_to_be_between"
    )
    expected = pd.concat([pd.read_parquet(p) for p in tmp_path.glob("*.parquet")])["churned"]
    assert mean["result"]["observed_value"] == pytest.approx(expected.mean())


def test_each_defect_is_counted_over_every_row(config, tmp_path) -> None:
    frames = weeks(config)
    frames[2].loc[100, "customer_id"] = frames[0].loc[7, "customer_id"]  # across files
    frames[1].loc[[3, 4], "customer_id"] = "twice"
    frames[1].loc[50, "tenure_months"] = 999.0
    frames[0].loc[9, "monthly_charges"] = -1.0
    frames[2]["churned"] = frames[2]["churned"].astype("float64")
    frames[2].loc[[20, 21], "churned"] = [np.nan, 3.0]
    frames[2].loc[30, "event_time"] = pd.NaT
    paths = write(frames, tmp_path)
    whole, streamed = both(paths, config)
    assert not whole.success and not streamed.success
    time_missing = ("expect_column_values_to_not_be_null", "event_time", 1, ["None"])
    assert failures(streamed) == sorted([*failures(whole), time_missing], key=order(streamed))
    assert streamed.summary().startswith("6 of 18 expectations failed")
    assert "customer_id has duplicate values (4 rows" in streamed.summary()
    assert streamed.result["meta"]["responsible_files"] == [str(p) for p in paths]
    unique = next(f for f in streamed.failed if f.expectation_type.endswith("unique"))
    # row positions as in the concatenated table
    assert unique.details["result"]["partial_unexpected_index_list"] == [7, 603, 604, 1300]


def order(result: GateResult):
    keys = [(f.expectation_type, f.column) for f in result.failed]
    return lambda item: keys.index((item[0], item[1]))


def test_only_the_files_with_failing_rows_are_named(config, tmp_path) -> None:
    frames = weeks(config)
    frames[1].loc[5, "support_calls"] = 77.0
    paths = write(frames, tmp_path)
    _, streamed = both(paths, config)
    assert failures(streamed) == [
        ("expect_column_values_to_be_between", "support_calls", 1, ["77.0"])
    ]
    assert streamed.result["meta"]["responsible_files"] == [str(paths[1])]


def test_the_label_share_and_row_count_are_exact(config, tmp_path) -> None:
    frames = weeks(config, n=150)  # 450 rows: below training_min_rows
    for frame in frames:
        frame["churned"] = 0
    frames[0].loc[0, "churned"] = 1  # one positive in 450: below the minimum share
    whole, streamed = both(write(frames, tmp_path), config)
    assert failures(streamed) == failures(whole)
    assert {f.expectation_type for f in streamed.failed} == {
        "expect_column_mean_to_be_between",
        "expect_table_row_count_to_be_between",
    }
    assert "only 450 rows" in streamed.summary()


def test_a_hash_collision_is_not_a_duplicate(config, tmp_path) -> None:
    paths = write(weeks(config), tmp_path)
    index = trainset.build_row_index(paths, config.dataset)
    hashes = index.id_hash.copy()
    hashes[5] = hashes[1000]  # two different ids, one hash
    collided = dataclasses.replace(index, id_hash=hashes)
    result = validate_training_stream(paths, collided, config, run_name="c", sample_rows=SAMPLE)
    assert result.success, result.summary()


def test_after_an_upsert_the_kept_rows_are_gated(config, tmp_path) -> None:
    frames = weeks(config)
    again = frames[0].iloc[:40].copy()
    again["event_time"] = frames[2]["event_time"].max()  # the same ids, sent again later
    frames.append(again)
    paths = write(frames, tmp_path)
    index = trainset.build_row_index(paths, config.dataset)
    everything = validate_training_stream(paths, index, config, run_name="a", sample_rows=SAMPLE)
    assert failures(everything)[0][:3] == (
        "expect_column_values_to_be_unique",
        "customer_id",
        80,
    )
    kept = trainset.newest_per_id(index)
    result = validate_training_stream(
        paths, index, config, run_name="b", mask=kept, sample_rows=SAMPLE
    )
    assert result.success, result.summary()
    assert result.result["meta"]["rows"] == 1800


def test_a_column_missing_from_one_file_names_it(config, tmp_path) -> None:
    frames = weeks(config)
    frames[1] = frames[1].drop(columns=["data_usage_gb"])
    paths = write(frames, tmp_path)
    _, streamed = both(paths, config)
    (missing,) = [f for f in streamed.failed if f.expectation_type == "expect_column_to_exist"]
    assert missing.column == "data_usage_gb"
    assert missing.details["result"]["details"]["files_without_it"] == [str(paths[1])]


def test_the_sample_is_seeded_uniform_and_bounded() -> None:
    mask = np.zeros(5_000_000, dtype=bool)
    mask[::2] = True
    first = seeded_sample(mask, 10_000, seed=0)
    assert len(first) == 10_000 and (np.diff(first) > 0).all() and mask[first].all()
    np.testing.assert_array_equal(first, seeded_sample(mask, 10_000, seed=0))
    assert len(np.intersect1d(first, seeded_sample(mask, 10_000, seed=1))) < 100
    assert abs(np.median(first) - 2_500_000) < 100_000  # spread over the whole set
    assert len(seeded_sample(mask[:100], 10_000, seed=0)) == 50  # fewer rows: all of them
    assert len(seeded_sample(mask & False, 10, seed=0)) == 0
