"""The streamed training set (retrain.trainset, retrain.featurize) against the pandas path it
replaces: the same rows chosen, the same numbers LightGBM sees, the same models. Real
LightGBM and real Parquet files in a temporary folder."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retrain import trainset
from retrain.config import load_config
from retrain.datagen import generate, write_batch
from retrain.features import build_features, feature_names
from retrain.featurize import write_features
from retrain.tables import coerce_types, iter_table, read_table
from retrain.training import refit, split_by_time, split_holdout, train_model

CFG = load_config(Path(__file__).parents[2] / "retrain.toml", env={})
DS = CFG.dataset
T0 = pd.Timestamp("2025-03-01")


def weeks(folder: Path, rows: int, files: int, *, shuffle: bool = False) -> list[Path]:
    """``files`` weekly feature files of ``rows`` rows, oldest first (``shuffle``: rows in
    random order within each file and the files newest first, so no order is by time)."""
    paths = []
    for i in range(files):
        start = T0.to_pydatetime() + timedelta(days=7 * i)
        frame = build_features(generate(rows, seed=40 + i, start=start), DS)
        if shuffle:
            frame = frame.sample(frac=1.0, random_state=i).reset_index(drop=True)
        path = folder / f"week-{i}.parquet"
        frame.to_parquet(path, index=False, row_group_size=max(rows // 3, 1))
        paths.append(path)
    return paths[::-1] if shuffle else paths


def concat(paths: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def everything(index: trainset.RowIndex) -> np.ndarray:
    return np.ones(index.n_rows, dtype=bool)


def small_frame(ids, times, targets, **features) -> pd.DataFrame:
    """A feature frame with the given ids, times and targets (other features made up)."""
    n = len(ids)
    raw = generate(n, seed=1, start=T0.to_pydatetime())
    raw["customer_id"] = ids
    raw["event_time"] = pd.to_datetime(times, format="ISO8601")
    frame = build_features(raw, DS)
    frame["churned"] = targets
    for name, values in features.items():
        frame[name] = values
    return frame


# -- the row index ------------------------------------------------------------------------------


def test_row_index_known_answers(tmp_path: Path) -> None:
    a = small_frame(["x", "y", None], ["2025-01-01", None, "2025-01-03"], [0, 1, 1])
    b = small_frame(["y", "z"], ["2025-01-02 00:00:00.5", "2025-01-04"], [1, 0])
    b["churned"] = pd.array([pd.NA, 5], dtype="Int64")
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    a.to_parquet(paths[0], row_group_size=2)
    b.to_parquet(paths[1])
    index = trainset.build_row_index(paths, DS, batch_rows=1)
    assert index.offsets.tolist() == [0, 3, 5]
    assert index.file_of(np.arange(5)).tolist() == [0, 0, 0, 1, 1]
    assert index.row_in_file(np.arange(5)).tolist() == [0, 1, 2, 0, 1]
    assert index.time.tolist() == [
        pd.Timestamp("2025-01-01").value,
        trainset.NAT,
        pd.Timestamp("2025-01-03").value,
        pd.Timestamp("2025-01-02 00:00:00.5").value,
        pd.Timestamp("2025-01-04").value,
    ]
    assert index.target.tolist() == [0, 1, 1, trainset.TARGET_MISSING, trainset.TARGET_OTHER]
    h = index.id_hash
    assert h[1] == h[3] != h[0]  # "y" in both files
    assert h[2] == trainset.NULL_ID_HASH and (np.delete(h, 2) != trainset.NULL_ID_HASH).all()
    assert index.nbytes == 5 * 17 + 3 * 8
    with pytest.raises(ValueError, match="0/1"):
        index.labels(everything(index))
    assert index.labels(np.array([1, 1, 1, 0, 0], dtype=bool)).tolist() == [0, 1, 1]


def test_a_spilled_index_is_the_same_and_lets_its_pages_go(tmp_path: Path) -> None:
    paths = weeks(tmp_path, 3000, 3)
    spill = tmp_path / "spill"
    spill.mkdir()
    memory = trainset.build_row_index(paths, DS)
    spilled = trainset.build_row_index(paths, DS, spill_dir=spill)
    assert sorted(p.name for p in spill.iterdir()) == ["id_hash.npy", "time.npy"]
    for name in ("offsets", "time", "id_hash", "target"):
        np.testing.assert_array_equal(getattr(spilled, name), getattr(memory, name))
    assert isinstance(spilled.time, np.memmap) and not spilled.id_hash.flags.writeable
    spilled.release()  # the pages go, the values stay (read back from the file)
    memory.release()  # in memory: nothing to do
    np.testing.assert_array_equal(spilled.id_hash, memory.id_hash)
    every = everything(memory)
    np.testing.assert_array_equal(
        trainset.sample_rows(spilled, every, 2000, seed=1),
        trainset.sample_rows(memory, every, 2000, seed=1),
    )
    for index in (memory, spilled):
        older, newest = trainset.split_by_time(paths, index, every, 0.2, id_column=DS.id_column)
        assert newest.sum() == 1800 and not (older & newest).any()
    empty = tmp_path / "empty.parquet"
    pd.read_parquet(paths[0]).iloc[:0].to_parquet(empty)
    assert trainset.build_row_index([empty], DS, spill_dir=spill).n_rows == 0


def test_duplicated_hashes_by_ranges_agree_with_one_sort() -> None:
    """Hashes that share their low bits but not their top bits (different ranges) are not
    duplicates; equal hashes at the edges of the ranges are."""
    rng = np.random.default_rng(3)
    top = np.uint64(2**64 - 1)
    hashes = rng.integers(0, 2**64 - 1, size=50_000, dtype=np.uint64, endpoint=True)
    hashes[:2000] = hashes[rng.integers(2000, 50_000, 2000)]  # repeats, anywhere
    low = hashes[100:600] & np.uint64(2**40 - 1)
    hashes[50_000 - 500 :] = low | (np.uint64(5) << np.uint64(61))  # low bits of others
    edges = [0, 2**61 - 1, 2**61, 2**63 - 1, 2**63, 2**64 - 1]
    hashes = np.r_[hashes, np.array(edges * 2, dtype=np.uint64), top]
    mask = rng.random(len(hashes)) < 0.9
    mask[-13:] = True
    exact = trainset.duplicated_hashes(hashes, mask, bucket_rows=len(hashes))
    assert set(edges) <= set(exact.tolist())
    for bucket_rows in (100, 1000, 6000, 40_000):
        by_ranges = trainset.duplicated_hashes(hashes, mask, bucket_rows=bucket_rows)
        np.testing.assert_array_equal(by_ranges, exact)
    chosen = np.sort(hashes[mask])
    np.testing.assert_array_equal(exact, np.unique(chosen[1:][chosen[1:] == chosen[:-1]]))
    assert len(trainset.duplicated_hashes(hashes, mask & False, bucket_rows=10)) == 0


def test_id_hashes_are_pinned() -> None:
    """Hashes decide upserts and samples across runs: a changed key would silently change them."""
    hashes = trainset.hash_ids(pa.array(["C1-n0000001", None, "x"]))
    assert hashes.tolist() == [2703009705880821875, 0, 9393767540036616265]
    assert trainset.hash_ids(pa.array(["C1-n0000001"], pa.large_string()))[0] == hashes[0]
    assert trainset.hash_ids(pa.array(["C1-n0000001"]).dictionary_encode())[0] == hashes[0]
    # a numeric id hashes as the float64 coerce_types makes of it
    assert trainset.hash_ids(pa.array([7]))[0] == trainset.hash_ids(pa.array([7.0]))[0]


# -- which rows ---------------------------------------------------------------------------------


def pandas_upsert(frame: pd.DataFrame) -> pd.DataFrame:
    """The upsert as the pandas training set applied it: sort by time (stable, missing last),
    keep the last row per id, in the original order."""
    order = frame.sort_values(DS.time_column, kind="stable").index
    keep = ~frame.loc[order, DS.id_column].duplicated(keep="last")
    return frame.loc[order[keep.to_numpy()].sort_values()].reset_index(drop=True)


def test_newest_per_id_matches_the_pandas_upsert_on_ties(tmp_path: Path) -> None:
    day = "2025-01-05"
    older = small_frame(
        ["a", "b", "c", "d", "e", "f"], [day, day, "2025-01-09", day, None, day], [0] * 6
    )
    newer = small_frame(
        ["a", "b", "c", "d", "e", "f", "f"],
        [day, "2025-01-04", day, None, day, day, day],
        [1, 1, 1, 1, 1, 1, 0],
    )
    paths = [tmp_path / "1.parquet", tmp_path / "2.parquet"]
    older.to_parquet(paths[0])
    newer.to_parquet(paths[1])
    index = trainset.build_row_index(paths, DS)
    keep = trainset.newest_per_id(index)
    # a: a tie, the later file wins; b, c: the older file has the later time; d, e: a missing
    # time sorts last in pandas' upsert, so it wins; f: the later row of the later file
    assert np.flatnonzero(keep).tolist() == [1, 2, 4, 6, 9, 12]
    expected = pandas_upsert(concat(paths))
    pd.testing.assert_frame_equal(concat(paths)[keep].reset_index(drop=True), expected)
    assert index.n_rows - len(expected) == index.n_rows - keep.sum() == 7
    # within a mask: without the newer file, nothing is replaced
    only_older = np.r_[np.ones(6, dtype=bool), np.zeros(7, dtype=bool)]
    assert (trainset.newest_per_id(index, only_older) == only_older).all()


def test_split_by_time_matches_pandas_with_ties_at_the_cut(tmp_path: Path) -> None:
    """Ten rows share the cut's timestamp, spread over two files in no id order: the newest
    rows are the ones training.split_by_time picks, ties settled by id."""
    rng = np.random.default_rng(5)
    times = ["2025-01-01"] * 10 + ["2025-01-02"] * 10 + ["2025-01-03"] * 5
    ids = [f"id{i:03d}" for i in rng.permutation(25)]
    frame = small_frame(ids, times, np.arange(25) % 2)
    order = rng.permutation(25)
    paths = [tmp_path / "1.parquet", tmp_path / "2.parquet"]
    frame.iloc[order[:12]].reset_index(drop=True).to_parquet(paths[0])
    frame.iloc[order[12:]].reset_index(drop=True).to_parquet(paths[1])
    df = concat(paths)
    index = trainset.build_row_index(paths, DS)
    for fraction in (0.2, 0.3, 0.44, 0.5, 0.7):
        older, newest = trainset.split_by_time(
            paths, index, everything(index), fraction, id_column="customer_id"
        )
        expected_older, expected_newest = split_by_time(df, DS, fraction)
        assert set(df["customer_id"][newest]) == set(expected_newest["customer_id"]), fraction
        assert set(df["customer_id"][older]) == set(expected_older["customer_id"])
        assert not (older & newest).any() and (older | newest).all()
    # on a mask: the newest 3 of the rows of the first file only
    first = np.r_[np.ones(12, dtype=bool), np.zeros(13, dtype=bool)]
    newest = trainset.newest_rows(paths, index, first, 3, id_column="customer_id")
    expected = df[first].sort_values(["event_time", "customer_id"]).tail(3)
    assert np.flatnonzero(newest).tolist() == sorted(expected.index)
    with pytest.raises(ValueError, match="at least 2 rows"):
        trainset.split_by_time(paths, index, first & ~first, 0.2, id_column="customer_id")


def test_sample_rows_follows_ids_not_file_order(tmp_path: Path) -> None:
    paths = weeks(tmp_path, 4000, 3)
    index = trainset.build_row_index(paths, DS)
    reversed_index = trainset.build_row_index(paths[::-1], DS)
    chosen = trainset.sample_rows(index, everything(index), 3000, seed=42)
    again = trainset.sample_rows(reversed_index, everything(reversed_index), 3000, seed=42)
    ids = concat(paths)["customer_id"]
    assert set(ids[chosen]) == set(concat(paths[::-1])["customer_id"][again])
    assert 2700 < chosen.sum() < 3300  # each row kept with probability 1/4
    other = trainset.sample_rows(index, everything(index), 3000, seed=43)
    assert (chosen != other).any()
    assert (trainset.sample_rows(index, chosen, 10**6, seed=42) == chosen).all()


# -- what LightGBM sees -------------------------------------------------------------------------


def lightgbm_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The float64 matrix lgb.Dataset makes of a build_features frame."""
    from lightgbm.basic import _data_from_pandas

    return _data_from_pandas(frame[feature_names(DS)], "auto", "auto", None)[0]


def test_sequence_rows_are_what_lightgbm_makes_of_the_frame(tmp_path: Path) -> None:
    frame = build_features(generate(3000, seed=3, start=T0.to_pydatetime()), DS)
    # categories stored in another order than configured, and a value the config lacks
    shuffled = frame.copy()
    shuffled["region"] = shuffled["region"].cat.reorder_categories(
        ["west", "east", "south", "north"]
    )
    shuffled["contract"] = shuffled["contract"].astype(object)  # plain text in this file
    shuffled.loc[6, "contract"] = "weekly"
    path = tmp_path / "f.parquet"
    shuffled.to_parquet(path, row_group_size=700)
    expected = lightgbm_matrix(frame)
    expected[6, feature_names(DS).index("contract")] = np.nan  # unknown: missing, as in pandas
    index = trainset.build_row_index([path], DS)
    selected = np.zeros(3000, dtype=bool)
    selected[::3] = True
    selected[700:1400] = False  # one whole row group never read
    layout = trainset.FeatureLayout.of(DS)
    seq = trainset.parquet_rows(path, index.file_mask(selected, 0), layout, batch_rows=256)
    want = expected[selected]
    assert len(seq) == len(want)
    np.testing.assert_array_equal(seq[0 : len(seq)], want)
    np.testing.assert_array_equal(seq[10], want[10])
    np.testing.assert_array_equal(seq[len(seq) - 1], want[-1])
    np.testing.assert_array_equal(seq[3], want[3])  # backwards: the reader starts over
    np.testing.assert_array_equal(seq[250:260], want[250:260])
    np.testing.assert_array_equal(seq[[1, 400]], want[[1, 400]])
    positions = np.array([0, 3, 255, 256, 257, 600, len(want) - 1])  # across read batches
    np.testing.assert_array_equal(seq.rows_at(positions), want[positions])
    with pytest.raises(IndexError):
        seq.rows_at(np.array([len(want)]))
    assert layout.pandas_categorical == [
        list(DS.column(c).categories) for c in ("contract", "payment_method", "region")
    ]
    frame_back = trainset.read_rows([path], index, selected, ds=DS)
    assert list(frame_back["region"].cat.categories) == list(DS.column("region").categories)
    np.testing.assert_array_equal(lightgbm_matrix(frame_back), want)


# -- training -----------------------------------------------------------------------------------


def quick(cfg=CFG, rounds: int = 60):
    return replace(cfg, training=replace(cfg.training, num_boost_round=rounds))


def streamed(paths: list[Path], cfg, **kwargs):
    index = trainset.build_row_index(paths, DS)
    train, holdout = trainset.split_by_time(
        paths, index, everything(index), cfg.training.holdout_fraction, id_column="customer_id"
    )
    return index, trainset.train_streamed(paths, index, train, holdout, cfg, **kwargs)


def test_time_ordered_files_train_the_same_model(tmp_path: Path) -> None:
    """120k rows a file: above LightGBM's 200k-row bin sample, so the sample must be the
    same rows too (from the seed, which the Python package leaves out for Sequences)."""
    cfg = quick(rounds=40)
    paths = weeks(tmp_path, 120_000, 3)
    expected = train_model(concat(paths), cfg)
    index, got = streamed(paths, cfg)
    assert got.model.to_text() == expected.model.to_text()
    assert got.metrics == expected.metrics
    assert (got.best_iteration, got.n_train, got.n_holdout, got.holdout_start) == (
        expected.best_iteration,
        expected.n_train,
        expected.n_holdout,
        expected.holdout_start,
    )
    assert got.sampled_from == 0
    # the serving refit on every row, and the streamed scores of any rows
    model = trainset.refit_streamed(paths, index, everything(index), cfg, 25)
    assert model.to_text() == refit(concat(paths), cfg, 25).to_text()
    some = np.zeros(index.n_rows, dtype=bool)
    some[::7] = True
    scores = trainset.predict_streamed(model, paths, index, some, DS, batch_rows=5000)
    np.testing.assert_array_equal(scores, model.predict_proba(concat(paths)[some]))


def test_a_large_min_data_in_leaf_filters_the_same_features(tmp_path: Path) -> None:
    """min_data_in_leaf also decides which features LightGBM drops before training (here the
    missing-value count, almost always 0): the Sequence path must drop the same."""
    cfg = quick(rounds=20)
    cfg = replace(cfg, training=replace(cfg.training, min_data_in_leaf=3000))
    paths = weeks(tmp_path, 4000, 3)
    expected = train_model(concat(paths), cfg)
    assert "none" in expected.model.to_text().split("feature_infos=")[1].splitlines()[0]
    _, got = streamed(paths, cfg)
    assert got.model.to_text() == expected.model.to_text()


def test_rows_in_no_time_order_train_a_model_as_good(tmp_path: Path) -> None:
    """LightGBM's bin sample then holds other rows: other trees, the same quality. Tolerance:
    holdout AUC within 0.005 (measured: ~1e-4 at 300k rows)."""
    cfg = quick(rounds=80)
    paths = weeks(tmp_path, 100_000, 3, shuffle=True)
    df = concat(paths)
    expected = train_model(df, cfg)
    _, got = streamed(paths, cfg)
    assert got.model.to_text() != expected.model.to_text()
    assert abs(got.metrics.auc - expected.metrics.auc) < 0.005
    assert abs(got.metrics.logloss - expected.metrics.logloss) < 0.005
    assert (got.n_train, got.n_holdout, got.holdout_start) == (
        expected.n_train,
        expected.n_holdout,
        expected.holdout_start,
    )
    _, holdout = split_holdout(df, DS, cfg.training.holdout_fraction, None)
    assert got.metrics.n_rows == len(holdout)
    assert got.metrics.positive_rate == pytest.approx(holdout["churned"].mean())


def test_the_newest_rows_as_the_holdout(tmp_path: Path) -> None:
    """With a champion the holdout is given (the rows it never saw): as train_model(newest=)."""
    cfg = quick(rounds=30)
    paths = weeks(tmp_path, 5000, 3)
    df = concat(paths)
    index = trainset.build_row_index(paths, DS)
    newest = np.zeros(index.n_rows, dtype=bool)
    newest[12_000:] = True  # part of the last file
    expected = train_model(df, cfg, newest=newest)
    got = trainset.train_streamed(paths, index, ~newest, newest, cfg)
    assert got.model.to_text() == expected.model.to_text()
    assert got.metrics == expected.metrics
    with pytest.raises(ValueError, match="overlap"):
        trainset.train_streamed(paths, index, everything(index), newest, cfg)


def test_a_budget_too_small_for_the_rows_trains_on_a_seeded_sample(tmp_path, monkeypatch):
    cfg = quick(rounds=30)
    paths = weeks(tmp_path, 5000, 3)
    small = trainset.Budget(budget_mb=300, batch_rows=1000, max_rows=4000)
    monkeypatch.setattr(trainset, "budget_of", lambda cfg, mb, index: small)
    _, got = streamed(paths, cfg)
    assert got.sampled_from == 12_000
    assert 3500 < got.n_train < 4500
    _, again = streamed(paths, cfg)
    assert again.model.to_text() == got.model.to_text()  # seeded
    assert got.metrics.auc > 0.7


def test_plan_budget() -> None:
    small = trainset.plan_budget(1024, 20, 1_000_000)
    large = trainset.plan_budget(1024, 20, 20_000_000)
    assert large.max_rows < small.max_rows  # the index takes its share first
    assert trainset.MIN_BATCH_ROWS <= large.batch_rows <= small.batch_rows
    assert trainset.plan_budget(2048, 20, 20_000_000).max_rows > 2 * large.max_rows
    # the model in numbers: what is left after the fixed part, the bin sample and the index (23
    # bytes a row with the masks), 90% of it for LightGBM's rows of 16 + 4 x 20 bytes
    free = 1024 - trainset.BASE_MB - 200_000 * (16 * 20 + 120) / 2**20 - 1e6 * 23 / 2**20
    assert small.max_rows * 96 / 2**20 == pytest.approx(free * 0.9, rel=0.02)
    with pytest.raises(ValueError, match="memory_budget_mb"):
        trainset.plan_budget(512, 20, 20_000_000)


# -- featurizing in chunks ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_chunked_featurization_equals_build_features_of_the_whole_file(fmt: str) -> None:
    raw = generate(2500, seed=8, start=datetime(2025, 2, 1))
    raw.loc[3, "region"] = None
    raw.loc[[10, 1200], "total_charges"] = np.nan
    data = write_batch(raw, fmt)
    name = f"batch.{fmt}"
    expected = build_features(coerce_types(read_table(data, name, DS), DS), DS)
    sink = io.BytesIO()
    rows = write_features(iter_table(data, name, DS, 900), DS, sink, row_group_rows=400)
    assert rows == 2500
    parquet = pq.ParquetFile(io.BytesIO(sink.getvalue()))
    assert parquet.metadata.num_row_groups == 8  # 400 + 400 + 100 per chunk, the last 400 + 300
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(sink.getvalue())), expected)


def test_chunked_featurization_keeps_every_category_and_writes_an_empty_file(tmp_path) -> None:
    raw = generate(300, seed=9, start=datetime(2025, 2, 1))
    raw["contract"] = "one-year"  # one category seen: the file still has all three
    path = tmp_path / "f.parquet"
    write_features(iter_table(write_batch(raw, "csv"), "b.csv", DS, 100), DS, path)
    back = pd.read_parquet(path)
    assert list(back["contract"].cat.categories) == list(DS.column("contract").categories)
    assert (back["contract"].cat.codes == 1).all()
    header = write_batch(raw.iloc[:0], "csv")
    empty = tmp_path / "empty.parquet"
    assert write_features(iter_table(header, "e.csv", DS, 100), DS, empty) == 0
    assert list(pd.read_parquet(empty).columns) == list(back.columns)
    with pytest.raises(ValueError, match="no chunks"):
        write_features(iter([]), DS, tmp_path / "none.parquet")


def test_a_lightgbm_dataset_of_the_files_has_the_frames_bins(tmp_path: Path) -> None:
    """Bin boundaries straight from LightGBM: the Sequence-built Dataset and the frame-built
    one describe every feature the same way (categorical ones included)."""
    paths = weeks(tmp_path, 3000, 2)
    df = concat(paths)
    index = trainset.build_row_index(paths, DS)
    params = {"seed": 42, "verbose": -1}
    layout = trainset.FeatureLayout.of(DS)
    ours = trainset.lgb_dataset(paths, index, everything(index), layout, params, batch_rows=500)
    theirs = lgb.Dataset(df[feature_names(DS)], df["churned"], params=params)
    ours.construct()
    theirs.construct()
    for i in range(len(layout.names)):
        assert ours.feature_num_bin(i) == theirs.feature_num_bin(i)
    assert ours.get_feature_name() == theirs.get_feature_name()
    np.testing.assert_array_equal(ours.get_label(), theirs.get_label())
    assert ours.pandas_categorical == theirs.pandas_categorical
