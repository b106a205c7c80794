"""The config draft infers each column's rules from an in-memory sample, and its TOML loads."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, parse_config
from retrain.config_init import BOOL_SPELLINGS, Draft, DraftError, bucket_name, draft_config, slug

N = 40


def base(n: int = N) -> dict[str, Any]:
    """The three roles and one float feature: the smallest sample that drafts."""
    rng = np.random.default_rng(0)
    return {
        "row_id": [f"r{i:04d}" for i in range(n)],
        "event_time": pd.date_range("2024-01-01", periods=n, freq="h"),
        "amount": rng.uniform(5, 95, n).round(2),
        "label": (np.arange(n) % 3 == 0).astype("int64"),
    }


def draft(columns: dict[str, Any] | None = None, **extra: Any) -> Draft:
    data = base() if columns is None else columns
    return draft_config(pd.DataFrame({**data, **extra}), name="t", source_name="t.csv")


def spec(d: Draft, column: str) -> dict[str, Any]:
    return tomllib.loads(d.toml)["dataset"]["columns"][column]


def parsed(d: Draft) -> Config:
    return parse_config(tomllib.loads(d.toml), env={}, source="draft")


def comments_above(d: Draft, line_start: str) -> list[str]:
    """The comment lines right above the first line starting with ``line_start``."""
    lines = d.toml.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(line_start))
    above = []
    while index > 0 and lines[index - 1].startswith("# "):
        index -= 1
        above.insert(0, lines[index][2:])
    return above


# --- dtypes ----------------------------------------------------------------------------------


def test_integral_numbers_are_int_also_with_nulls():
    with_nulls = np.where(np.arange(N) % 10 == 0, np.nan, np.arange(N) % 7)
    d = draft(calls=np.arange(N) % 5, visits=with_nulls)
    assert spec(d, "calls")["dtype"] == "int"
    assert spec(d, "visits")["dtype"] == "int"
    assert isinstance(spec(d, "visits")["min"], int) and isinstance(spec(d, "visits")["max"], int)


def test_fractional_numbers_are_float():
    assert spec(draft(), "amount")["dtype"] == "float"


def test_text_that_parses_as_timestamps_is_datetime():
    stamps = pd.date_range("2024-03-01", periods=N, freq="37min")
    text = [
        t.isoformat() if i % 2 else t.strftime("%Y-%m-%d %H:%M:%S") for i, t in enumerate(stamps)
    ]
    d = draft(shipped_on=text)
    assert spec(d, "shipped_on")["dtype"] == "datetime"
    assert "shipped_on: a datetime besides the time column" in " ".join(d.notes)


@pytest.mark.parametrize(
    "values",
    [
        [f"{h % 24:02d}:{h % 60:02d}" for h in range(N)],  # times of day parse as today
        [str(2000 + i % 5) for i in range(N)],  # years as text parse as 1 January
        ["north", "south"] * (N // 2),
    ],
)
def test_text_that_is_no_event_time_stays_text(values):
    assert spec(draft(info=values), "info")["dtype"] in ("category", "string")


def test_low_cardinality_text_is_a_category_with_its_sorted_values():
    d = draft(plan=["pro", "basic", "team", "basic"] * (N // 4))
    assert spec(d, "plan")["dtype"] == "category"
    assert spec(d, "plan")["categories"] == ["basic", "pro", "team"]


def test_high_cardinality_text_is_a_string_with_a_note():
    words = [f"comment {i % 30}" for i in range(N)]  # 30 distinct of 40: above the share
    d = draft(remark=words)
    assert spec(d, "remark") == {"dtype": "string", "nullable": False}
    assert "remark: text with 30 distinct values: dtype string" in " ".join(d.notes)


def test_bool_column_is_a_category_of_the_spellings_pandas_reads():
    d = draft(is_premium=[True, False] * (N // 2))
    assert spec(d, "is_premium")["dtype"] == "category"
    assert spec(d, "is_premium")["categories"] == list(BOOL_SPELLINGS)
    assert any(n.startswith("is_premium: true/false") for n in d.notes)


def test_a_numeric_column_with_placeholder_text_gets_a_note():
    values = [str(i) if i % 8 else "n/a" for i in range(N)]
    d = draft(score=values)
    assert spec(d, "score")["dtype"] == "string"
    assert any(n.startswith("score: mostly numbers") for n in d.notes)


# --- missing values --------------------------------------------------------------------------


def test_nullable_false_only_without_nulls():
    some_missing = [None if i % 10 == 0 else "a" if i % 2 else "b" for i in range(N)]
    d = draft(full=["a", "b"] * (N // 2), gappy=some_missing)
    assert spec(d, "full")["nullable"] is False
    assert "nullable" not in spec(d, "gappy")
    assert parsed(d).dataset.column("gappy").nullable is True
    assert "max_missing_fraction" not in spec(d, "gappy")  # 10% + margin: the default holds


def test_missing_share_above_the_default_gets_its_own_limit_with_a_margin():
    values = np.where(np.arange(N) % 10 < 3, np.nan, np.arange(N) * 1.5)  # 30% missing
    d = draft(tip=values)
    assert spec(d, "tip")["max_missing_fraction"] == 0.35
    assert parsed(d).dataset.column("tip").max_missing_fraction == 0.35
    assert "tip: 30% missing in the sample" in comments_above(d, "tip")[0]


def test_a_column_always_missing_accepts_all_missing():
    d = draft(empty=[None] * N)
    assert spec(d, "empty")["max_missing_fraction"] == 1.0
    assert "is a guess" in " ".join(d.notes)


# --- ranges ----------------------------------------------------------------------------------


def test_range_widens_by_a_margin_and_rounds_outwards():
    d = draft(
        gain=np.linspace(-50, 50, N).round(),
        share=np.linspace(0.12, 0.58, N),
        visits=np.linspace(10, 110, N).round().astype("int64"),
    )
    assert (spec(d, "gain")["min"], spec(d, "gain")["max"]) == (-60, 60)
    assert (spec(d, "share")["min"], spec(d, "share")["max"]) == (0.07, 0.63)
    assert (spec(d, "visits")["min"], spec(d, "visits")["max"]) == (0, 120)


def test_a_non_negative_column_keeps_min_at_least_zero():
    d = draft(weight=np.linspace(2.0, 100.0, N))  # 2 - 9.8 would be negative
    assert spec(d, "weight")["min"] == 0
    assert spec(d, "weight")["max"] >= 100


def test_a_constant_column_still_gets_a_range_around_its_value():
    d = draft(fee=[250] * N)
    low, high = spec(d, "fee")["min"], spec(d, "fee")["max"]
    assert low < 250 < high


def test_a_0_1_feature_keeps_0_1():
    d = draft(promo=(np.arange(N) % 2).astype("int64"), label=(np.arange(N) % 3 == 0).astype(int))
    assert (spec(d, "promo")["min"], spec(d, "promo")["max"]) == (0, 1)


def test_target_range_is_0_1_and_the_id_has_none():
    d = draft()
    assert spec(d, "label") == {"dtype": "int", "min": 0, "max": 1, "nullable": False}
    assert spec(d, "row_id") == {"dtype": "string", "nullable": False}
    assert spec(d, "event_time") == {"dtype": "datetime", "nullable": False}


def test_calendar_parts_get_their_natural_range_not_the_samples():
    d = draft(month=[3] * N, dep_hour=np.arange(N) % 12, DayOfWeek=np.arange(N) % 7)
    assert (spec(d, "month")["min"], spec(d, "month")["max"]) == (1, 12)
    assert (spec(d, "dep_hour")["min"], spec(d, "dep_hour")["max"]) == (0, 23)
    assert (spec(d, "DayOfWeek")["min"], spec(d, "DayOfWeek")["max"]) == (0, 7)


# --- roles -----------------------------------------------------------------------------------


def test_id_is_a_unique_never_missing_column_preferring_id_names():
    d = draft(seq=np.arange(N), customer_id=[f"C{i}" for i in range(N)])
    assert d.id_column == "row_id"  # *_id, then column order
    assert spec(d, "row_id") == {"dtype": "string", "nullable": False}
    uncertain = [n for n in d.notes if n.startswith("uncertain: id_column")]
    assert uncertain == ["uncertain: id_column = row_id (best by name); also fit: customer_id, seq"]
    assert uncertain[0] in comments_above(d, "id_column =")


def test_a_column_named_id_beats_other_id_names():
    data = base()
    data["id"] = np.arange(N) + 1000
    d = draft(data)
    assert d.id_column == "id"
    assert spec(d, "id") == {"dtype": "string", "nullable": False}


def test_an_id_without_an_id_name_is_found_by_uniqueness():
    data = base()
    data["ref"] = data.pop("row_id")
    d = draft(data)
    assert d.id_column == "ref"


def test_time_column_prefers_time_names_and_says_it_was_uncertain():
    data = base()
    data = {"opened": data["event_time"] - pd.Timedelta("1D"), **data}
    d = draft(data)
    assert d.time_column == "event_time"
    assert "uncertain: time_column = event_time (best by name); also fit: opened" in d.notes
    assert spec(d, "opened")["dtype"] == "datetime"


def test_target_prefers_target_names_and_names_the_alternatives():
    data = base()
    data["churned"] = data.pop("label")
    d = draft(data, promo=(np.arange(N) % 2).astype("int64"))
    assert d.target == "churned"
    assert "uncertain: target = churned (best by name); also fit: promo" in d.notes
    assert any(
        n.startswith("target = churned: 0/1, never missing, 35.0% positive") for n in d.notes
    )


def test_a_target_with_too_few_positives_for_training_is_flagged():
    data = base()
    data["label"] = np.zeros(N, dtype="int64")
    d = draft(data)
    assert d.target == "label"
    assert "training needs 1%..60%" in " ".join(d.notes)


def test_no_datetime_column_is_a_draft_error_saying_why():
    data = base()
    data["ts"] = np.arange(N) * 3600 + 1_700_000_000
    del data["event_time"]
    with pytest.raises(DraftError, match="no datetime column: the pipeline orders rows") as err:
        draft(data)
    assert "ts holds numbers" in str(err.value)


def test_a_time_column_with_missing_values_is_named_in_the_error():
    data = base()
    data["event_time"] = data["event_time"].where(np.arange(N) % 5 > 0)
    with pytest.raises(DraftError, match="event_time parses as timestamps but has missing"):
        draft(data)


@pytest.mark.parametrize(
    ("label", "hint"),
    [
        (np.arange(N) % 3, None),
        ([True, False] * (N // 2), "label holds true/false: convert it to 1/0"),
        (["yes", "no"] * (N // 2), "label holds no/yes: convert it to 1/0"),
        (np.where(np.arange(N) % 5 == 0, np.nan, np.arange(N) % 2), "label is 0/1 but has missing"),
    ],
)
def test_no_0_1_target_is_a_draft_error_saying_why(label, hint):
    data = {**base(), "label": label}
    with pytest.raises(DraftError, match="no 0/1 column for the target") as err:
        draft(data)
    if hint:
        assert hint in str(err.value)


def test_no_unique_column_is_a_draft_error():
    data = base()
    data["row_id"] = ["same"] * N
    with pytest.raises(DraftError, match="no id column"):
        draft(data)


def test_no_feature_column_is_a_draft_error():
    data = base()
    del data["amount"]
    with pytest.raises(DraftError, match="no feature columns"):
        draft(data)


def test_repeated_column_names_are_a_draft_error():
    df = pd.DataFrame(base())
    df.columns = ["row_id", "event_time", "label", "label"]
    with pytest.raises(DraftError, match=r"column names repeat: \['label'\]"):
        draft_config(df, name="t", source_name="t.csv")


def test_an_empty_sample_is_a_draft_error():
    with pytest.raises(DraftError, match="no rows"):
        draft_config(pd.DataFrame(base()).iloc[:0], name="t", source_name="t.csv")


# --- drift -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "values", "reason"),
    [
        (
            "month",
            np.arange(N) % 12 + 1,
            "calendar part: its distribution follows the calendar, not the data",
        ),
        (
            "dep_hour",
            np.arange(N) % 24,
            "calendar part: its distribution follows the calendar, not the data",
        ),
        (
            "day_of_week",
            np.arange(N) % 7 + 1,
            "calendar part: its distribution follows the calendar, not the data",
        ),
        ("sale_year", 2000 + np.arange(N) % 20, "calendar part: grows every year by design"),
        ("built", 1950 + np.arange(N) % 60, "values all look like years (1900..2100)"),
        ("ticket_no", np.arange(N) * 7 + 3, "id-like: unique per row"),
        ("email", [f"u{i}@x.org" for i in range(N)], "id-like: unique per row"),
    ],
)
def test_columns_that_move_by_design_are_kept_out_of_the_drift_rule(column, values, reason):
    d = draft(**{column: values})
    assert spec(d, column)["drift"] is False
    assert parsed(d).dataset.column(column).drift is False
    note = next(n for n in d.notes if n.startswith(f"{column}: drift = false"))
    assert reason in note and note in comments_above(d, column)


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("tenure_months", np.arange(N) % 12),  # a plural: a count, not a calendar part
        ("holiday", np.arange(N) % 9),
        ("price", np.arange(N) % 9 + 10),
    ],
)
def test_ordinary_numbers_stay_in_the_drift_rule(column, values):
    assert "drift" not in spec(draft(**{column: values}), column)


# --- TOML --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["unit price ($)", 'say "hi"', "back\\slash", "größe", "tab\tand\nnewline", "del\x7f", "1st"],
)
def test_column_names_that_are_no_bare_keys_are_quoted(name):
    data = base()
    data[name] = data.pop("amount")
    d = draft(data)
    assert spec(d, name)["dtype"] == "float"
    assert list(tomllib.loads(d.toml)["dataset"]["columns"]) == list(data)
    assert parsed(d).dataset.column(name).dtype == "float"


def test_roles_with_names_needing_quotes_round_trip():
    data = base()
    data = {'order "no"': data.pop("row_id"), "when (UTC)": data.pop("event_time"), **data}
    d = draft(data)
    ds = parsed(d).dataset
    assert (ds.id_column, ds.time_column) == ('order "no"', "when (UTC)")


def test_every_note_is_one_comment_line_in_the_toml():
    d = draft(month=np.arange(N) % 12 + 1, plan=["a\nb", "c"] * (N // 2), seq=np.arange(N))
    comments = {line[2:] for line in d.toml.splitlines() if line.startswith("# ")}
    assert d.notes and all("\n" not in n and n in comments for n in d.notes)


@pytest.mark.parametrize(
    ("name", "bucket"),
    [
        ("flights", "retrain-flights"),
        ("telco_churn", "retrain-telco-churn"),
        ("My Data!! 2024", "retrain-my-data-2024"),
        ("___", "retrain-dataset"),
        ("x" * 80, "retrain-" + "x" * 55),
    ],
)
def test_bucket_name_is_a_valid_s3_bucket(name, bucket):
    assert bucket_name(name) == bucket
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", bucket)


def test_the_draft_has_the_bucket_and_the_default_prefixes():
    d = draft_config(pd.DataFrame(base()), name="big_flights", source_name="f.parquet")
    storage = parsed(d).storage
    assert storage.bucket == "retrain-big-flights"
    assert storage.landing_prefix == "landing/" and storage.ledger_prefix == "ledger/"
    assert parsed(d).dataset.file_formats == ("parquet", "csv")
    assert parsed(draft()).dataset.file_formats == ("csv", "parquet")


def test_header_says_where_from_what_to_do_and_where_the_reference_is():
    header = draft().toml.split("[dataset]")[0]
    assert "from t.csv (40 rows)" in header
    assert "retrain config check --sample t.csv" in header
    assert 'README.md, "Bring your own dataset"' in header


def test_slug():
    assert slug("Flights 2024-Q1") == "flights_2024_q1"
    assert slug("ü") == "dataset"


def _shapes() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 300
    demo = pd.DataFrame(
        {
            "customer_id": [f"C-{i:05d}" for i in range(n)],
            "event_time": pd.date_range("2024-01-01", periods=n, freq="17min").astype(str),
            "tenure_months": rng.integers(0, 72, n),
            "total_charges": np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0, 9000, n)),
            "contract": rng.choice(["month-to-month", "one-year"], n),
            "churned": (rng.random(n) < 0.2).astype("int64"),
        }
    )
    typed = pd.DataFrame(
        {
            "Key": pd.array(range(n), dtype="Int64"),
            "LoadedAt": pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Paris"),
            "Region": pd.Categorical(rng.choice(["N", "S"], n)),
            "Name": pd.array([f"name {i}" for i in range(n)], dtype="string"),
            "Score": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 9, n)), "Int64"),
            "Active": pd.array(rng.random(n) < 0.5, dtype="boolean"),
            "Outcome": rng.integers(0, 2, n),
        }
    )
    odd = pd.DataFrame(
        {
            "Événement ID": [f"é{i}" for i in range(n)],
            "date de vente": pd.date_range("2023-06-01", periods=n, freq="D").strftime("%d %b %Y"),
            "nothing": [None] * n,
            "ratio": rng.uniform(-1e-4, 1e-4, n),
            "big": rng.integers(10**12, 10**13, n),
            "y": rng.integers(0, 2, n),
        }
    )
    return {"demo": demo, "typed": typed, "odd": odd}


@pytest.mark.parametrize("shape", ["demo", "typed", "odd"])
def test_the_draft_loads_for_several_shapes_of_data(shape):
    d = draft_config(_shapes()[shape], name=shape, source_name=f"{shape}.csv")
    cfg = parse_config(tomllib.loads(d.toml), env={}, source="draft")
    assert cfg.dataset.name == shape
    assert cfg.dataset.column_names == tuple(_shapes()[shape].columns)
    assert (d.id_column, d.time_column, d.target) == (
        cfg.dataset.id_column,
        cfg.dataset.time_column,
        cfg.dataset.target,
    )
    assert d.rows == 300
