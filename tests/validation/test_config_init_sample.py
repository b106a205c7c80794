"""A drafted config accepts the file it was drafted from at the real raw checkpoint, and its
ranges and categories still reject what does not belong.

Real files (CSV, CSV.gz, Parquet) in tmp_path, real GX: the draft -> load_config -> read_table
-> validate_raw_file path a user takes with `retrain init` and `retrain config check --sample`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, load_config
from retrain.config_init import Draft, DraftError, draft_from_file
from retrain.datagen import generate, write_batch
from retrain.tables import read_table
from validation.gates import GateResult, validate_raw_file

CARRIERS = ("AA", "AS", "B6", "DL", "UA", "WN")
AIRPORTS = ("ATL", "BOS", "DEN", "DFW", "JFK", "LAX", "ORD", "SEA", "SFO")


def flights(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A month of flights: one unique id, a time, categories, numbers with nulls, calendar parts
    and a 0/1 target."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, 30 * 86400, n))
    dep = pd.Timestamp("2024-03-01") + pd.to_timedelta(seconds, unit="s")
    delay = rng.normal(8, 25, n).round()
    delay[rng.random(n) < 0.06] = np.nan
    return pd.DataFrame(
        {
            "flight_id": np.arange(500_000, 500_000 + n) + seed * n,
            "dep_time": dep.strftime("%Y-%m-%d %H:%M:%S"),
            "carrier": rng.choice(CARRIERS, n),
            "origin": rng.choice(AIRPORTS, n),
            "dest": rng.choice(AIRPORTS, n),
            "distance": rng.uniform(120, 2700, n).round(1),
            "dep_delay_min": pd.array(delay, dtype="Int64"),
            "month": dep.month,
            "day_of_week": dep.dayofweek + 1,
            "is_delayed": (rng.random(n) < 0.2).astype("int64"),
        }
    )


def write(df: pd.DataFrame, path: Path) -> Path:
    if path.name.endswith(".parquet"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def load(draft: Draft, folder: Path) -> Config:
    path = folder / "retrain.toml"
    path.write_text(draft.toml)
    return load_config(path, env={})


def check(path: Path, cfg: Config) -> GateResult:
    return validate_raw_file(read_table(path, path.name, cfg.dataset), cfg, run_name="t")


def assert_accepted(path: Path, cfg: Config) -> None:
    result = check(path, cfg)
    if not result.success:
        pytest.fail(f"{path.name} rejected by its own draft: {result.summary()}")


@pytest.mark.parametrize("name", ["flights.csv", "flights.parquet", "flights.csv.gz"])
def test_the_flights_draft_accepts_its_sample(tmp_path: Path, name: str):
    path = write(flights(), tmp_path / name)
    draft = draft_from_file(path)
    cfg = load(draft, tmp_path)
    assert (draft.dataset, draft.rows) == ("flights", 2000)
    assert (draft.id_column, draft.time_column, draft.target) == (
        "flight_id",
        "dep_time",
        "is_delayed",
    )
    ds = cfg.dataset
    assert ds.file_formats[0] == ("parquet" if name.endswith(".parquet") else "csv")
    assert ds.column("carrier").categories == CARRIERS
    assert ds.column("dep_delay_min").nullable and not ds.column("distance").nullable
    assert not ds.column("month").drift and not ds.column("day_of_week").drift
    assert_accepted(path, cfg)


def test_the_csv_draft_accepts_the_same_data_as_parquet_and_another_sample(tmp_path: Path):
    cfg = load(draft_from_file(write(flights(), tmp_path / "flights.csv")), tmp_path)
    assert_accepted(write(flights(), tmp_path / "same.parquet"), cfg)
    assert_accepted(write(flights(seed=1), tmp_path / "next.csv"), cfg)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("carrier", "ZZ", "carrier has unknown values"),
        ("origin", "XXX", "origin has unknown values"),
        ("distance", 50_000.0, "distance out of range"),
        ("dep_delay_min", -5_000, "dep_delay_min out of range"),
        ("month", 13, "month out of range"),
    ],
)
def test_the_draft_rejects_a_new_category_or_a_far_value(
    tmp_path: Path, column: str, value: object, reason: str
):
    cfg = load(draft_from_file(write(flights(), tmp_path / "flights.csv")), tmp_path)
    bad = flights(seed=2)
    bad[column] = bad[column].astype(object)
    bad.loc[17, column] = value
    result = check(write(bad, tmp_path / "bad.csv"), cfg)
    assert not result.success
    assert reason in result.summary()


def test_the_demo_data_drafts_the_demo_roles_and_passes(tmp_path: Path):
    demo = generate(2000, seed=1, scenario="normal", start=datetime(2024, 1, 1))
    path = tmp_path / "telco batch.csv"
    path.write_bytes(write_batch(demo, "csv"))
    draft = draft_from_file(path)
    assert draft.dataset == "telco_batch"
    assert (draft.id_column, draft.time_column, draft.target) == (
        "customer_id",
        "event_time",
        "churned",
    )
    cfg = load(draft, tmp_path)
    assert cfg.dataset.column("contract").categories == ("month-to-month", "one-year", "two-year")
    assert cfg.dataset.column("tenure_months").dtype == "int"
    assert cfg.dataset.column("total_charges").nullable
    assert_accepted(path, cfg)
    later = tmp_path / "later.csv"
    later.write_bytes(write_batch(generate(500, seed=2, start=datetime(2024, 2, 1)), "csv"))
    assert_accepted(later, cfg)


def test_true_false_values_pass_as_a_category(tmp_path: Path):
    df = flights(300)
    df["is_international"] = np.arange(300) % 4 == 0  # Parquet: booleans, pandas' CSV: True
    df["wifi"] = np.where(np.arange(300) % 2 == 0, "true", "false")  # pandas reads booleans
    df["meal"] = np.where(np.arange(300) % 3 == 0, "yes", "no")
    for name in ("flags.csv", "flags.parquet"):
        path = write(df, tmp_path / name)
        cfg = load(draft_from_file(path), tmp_path)
        assert cfg.dataset.column("is_international").dtype == "category"
        assert cfg.dataset.column("meal").categories == ("no", "yes")
        assert_accepted(path, cfg)


def test_a_long_file_is_sampled_and_the_cut_is_said(tmp_path: Path):
    path = write(flights(), tmp_path / "Big Flights.parquet")
    draft = draft_from_file(path, max_rows=500)
    assert draft.rows == 500 and draft.dataset == "big_flights"
    assert "sample: the first 500 rows" in draft.toml.split("[dataset]")[0]
    assert any(n.startswith("sample: the first 500 rows") for n in draft.notes)
    assert "(2,000 rows)" not in draft.toml
    full = draft_from_file(path, name="all", max_rows=2000)
    assert full.rows == 2000 and "the first" not in full.toml


def test_max_rows_must_be_positive(tmp_path: Path):
    with pytest.raises(ValueError, match="max_rows"):
        draft_from_file(write(flights(50), tmp_path / "f.csv"), max_rows=0)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.csv", b"", "file is empty"),
        ("fake.csv", b"PAR1" + bytes(64), "looks like"),
        ("headers.csv", b"a,b,c\n", "no rows"),
        ("notes.txt", b"a,b\n1,2\n", "unsupported file type"),
    ],
)
def test_an_unreadable_or_empty_file_is_a_draft_error(
    tmp_path: Path, name: str, content: bytes, reason: str
):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DraftError, match=reason):
        draft_from_file(path)
