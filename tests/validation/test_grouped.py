"""Small files validated together get, file by file, the verdict each gets alone.

Real GX on in-memory frames: every case of :mod:`raw_cases` plus defects only a per-file view
can see (too few rows, a missing share over the limit in one file but not in the group, an id
repeated inside one file) is validated alone (``validate_raw_file``) and in one group with
clean files (``validate_raw_group``), and the two must agree.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from raw_cases import CASES, frame, put, to_csv

import validation.grouped as grouped
from retrain.config import Config
from retrain.tables import read_table
from validation.gates import GateResult, validate_raw_file
from validation.grouped import validate_raw_group


def landed(cfg: Config, df: pd.DataFrame, offset: int = 0) -> pd.DataFrame:
    """The frame ingest hands over: written as CSV, read back; ids shifted to be distinct."""
    df = df.copy()
    ids = pd.to_numeric(df["customer_id"], errors="coerce")
    df["customer_id"] = [
        f"{int(i) + offset:07d}" if pd.notna(i) else v
        for i, v in zip(ids, df["customer_id"], strict=True)
    ]
    return read_table(to_csv(df), "file.csv", cfg.dataset)


def failures(result: GateResult) -> list[tuple[str, str | None, int | None]]:
    return sorted(
        (f.expectation_type, f.column, (f.details.get("result") or {}).get("unexpected_count"))
        for f in result.failed
    )


def per_file_cases() -> dict[str, tuple[pd.DataFrame, str]]:
    """Defects only a per-file view sees: concatenated with clean files, each would pass."""
    few = frame(5)
    share = put(frame(), range(0, 60), "payment_method", np.nan)  # 24% here, ~5% in the group
    repeated = put(frame(), [7], "customer_id", "0000003")
    return {
        "too few rows": (few, "only 5 rows (at least 20 required)"),
        "missing share over the limit in this file only": (
            share,
            "payment_method has 60 missing values (24%, at most 20% allowed)",
        ),
        "an id repeated inside the file": (
            repeated,
            "customer_id has duplicate values (2 rows, e.g. '0000003')",
        ),
    }


def all_cases() -> dict[str, tuple[pd.DataFrame, str | None]]:
    return {**{k: (build(), reason) for k, (build, reason) in CASES.items()}, **per_file_cases()}


def test_each_file_of_a_group_gets_its_own_verdict(config: Config) -> None:
    cases = all_cases()
    names = [*cases, "clean 2", "clean 3"]
    frames = [landed(config, df, 1000 * i) for i, (df, _) in enumerate(cases.values())]
    frames += [landed(config, frame(), 100_000), landed(config, frame(), 200_000)]
    got = validate_raw_group(frames, config, run_name="group")
    assert len(got) == len(frames)
    for name, df, validation in zip(names, frames, got, strict=True):
        alone = validate_raw_file(df, config, run_name="alone")
        reason = cases.get(name, (None, None))[1]
        assert validation.result.success == alone.success, (name, validation.result.summary())
        assert failures(validation.result) == failures(alone), name
        if not alone.success:
            assert reason is not None, name  # ids are shifted: the examples differ
            assert reason.split(" (")[0] in validation.result.summary(), name
            assert validation.result.summary() == alone.summary(), name
            assert validation.group == (), name  # validated alone: its own, exact report
        assert validation.rows == len(df)
        assert validation.ids.tolist() == df["customer_id"].astype(str).tolist()
        json.dumps(validation.result.to_dict())
    passed = [i for i, v in enumerate(got) if v.result.success]
    shared = {id(got[i].result) for i in passed}
    assert len(passed) >= 4 and len(shared) == 1  # the clean ones: one run over all of them
    result = got[passed[0]].result
    assert all(got[i].group == tuple(passed) for i in passed)
    assert result.result["meta"]["files"] == len(passed)
    assert result.result["meta"]["rows"] == sum(len(frames[i]) for i in passed)
    assert result.evaluated == len(result.result["results"]) > 0
    for item in result.result["results"]:
        assert "unexpected_index_list" not in (item.get("result") or {})


def test_ids_repeated_across_files_are_not_a_per_file_defect(config: Config) -> None:
    """Uniqueness within each file; an id seen in another file is the ledger's business."""
    frames = [landed(config, frame()), landed(config, frame())]
    got = validate_raw_group(frames, config, run_name="twins")
    assert [v.result.success for v in got] == [True, True]
    assert got[0].group == got[1].group == (0, 1)


def test_files_with_other_dtypes_are_grouped_apart(config: Config) -> None:
    """A column read as numbers in one file and as text in another: concatenating them would
    change dtypes, so each kind is validated in its own group."""
    texty = put(frame(), [3], "monthly_charges", "n/a")
    built = [frame(), frame(), texty, frame()]
    frames = [landed(config, df, 1000 * i) for i, df in enumerate(built)]
    got = validate_raw_group(frames, config, run_name="dtypes")
    assert [v.result.success for v in got] == [True, True, False, True]
    assert got[0].group == (0, 1, 3)
    assert "monthly_charges values not numeric (1 row" in got[2].result.summary()


def test_a_failure_that_names_no_rows_sends_the_group_alone(config: Config) -> None:
    """Every file lacks a column: each is validated alone and reports it."""
    frames = [landed(config, frame().drop(columns=["region"]), i * 1000) for i in range(3)]
    got = validate_raw_group(frames, config, run_name="missing")
    assert [v.result.success for v in got] == [False] * 3
    assert all(v.group == () for v in got)
    assert all("column region missing" in v.result.summary() for v in got)


def test_groups_hold_at_most_group_rows(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grouped, "GROUP_ROWS", 600)  # files of 250 rows: two per group
    frames = [landed(config, frame(), 1000 * i) for i in range(5)]
    got = validate_raw_group(frames, config, run_name="bounded")
    assert all(v.result.success for v in got)
    assert [v.group for v in got] == [(0, 1), (0, 1), (2, 3), (2, 3), ()]


def test_an_empty_file_is_validated_alone(config: Config) -> None:
    built = [frame(), frame().iloc[:0], frame()]
    frames = [landed(config, df, 1000 * i) for i, df in enumerate(built)]
    got = validate_raw_group(frames, config, run_name="empty")
    assert [v.result.success for v in got] == [True, False, True]
    assert got[1].group == () and "only 0 rows" in got[1].result.summary()
