"""A file validated chunk by chunk gets the verdict of the whole file, with its rows and ids.

Real GX on in-memory bytes: each case is written as a landed file would be, then validated
whole (``read_table`` + ``validate_raw_file``) and in chunks (``iter_table`` +
``validate_raw_chunks``) with chunks far smaller than the file, and the two must agree.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from raw_cases import CASES, FORMATS, bad_every_chunk, frame, put, several_defects, to_csv

from retrain.config import Config
from retrain.tables import UnreadableFile, iter_table, read_table
from validation.chunked import IDS_FILE, validate_raw_chunks
from validation.context import (
    RAW_ROWS_CHECKPOINT,
    RAW_TOTALS_CHECKPOINT,
    classify_raw_expectation,
    expectation_key,
    get_chunked_raw_gate,
)
from validation.gates import (
    GateResult,
    RawValidation,
    unreadable_file_result,
    validate_raw_file,
)
from validation.suites import build_raw_suite

CHUNK = 100  # three chunks: rows 0-99, 100-199, 200-249


def whole(data: bytes, name: str, cfg: Config) -> tuple[GateResult, pd.DataFrame | None]:
    try:
        df = read_table(data, name, cfg.dataset)
    except UnreadableFile as exc:
        return unreadable_file_result(name, exc, cfg), None
    return validate_raw_file(df, cfg, run_name="whole"), df


def chunked(
    data: bytes, name: str, cfg: Config, chunk_rows: int = CHUNK, rows_hint: int = 0
) -> RawValidation | GateResult:
    """Validated in chunks; ids read back into memory. ``rows_hint`` sets the uniqueness
    check's partitions (:func:`retrain.spill.parts_for`)."""
    with tempfile.TemporaryDirectory() as workdir:
        try:
            chunks = iter_table(data, name, cfg.dataset, chunk_rows)
            got = validate_raw_chunks(
                chunks, cfg, run_name="chunked", workdir=Path(workdir), rows_hint=rows_hint
            )
        except UnreadableFile as exc:
            return unreadable_file_result(name, exc, cfg)
        if isinstance(got.ids, Path):  # read back before the directory goes
            assert got.ids == Path(workdir) / IDS_FILE
            ids = pd.read_parquet(got.ids)["id"]
            assert (
                pq.ParquetFile(got.ids).metadata.num_row_groups
                == got.result.result["meta"]["chunks"]
            ), "a row group a chunk"
            got = dataclasses.replace(got, ids=ids)
        return got


def failures(result: GateResult) -> list[tuple[str, str | None, int | None]]:
    return sorted(
        (f.expectation_type, f.column, (f.details.get("result") or {}).get("unexpected_count"))
        for f in result.failed
    )


def details(result: GateResult) -> list[dict]:
    """Each failure's kwargs, counts, examples and exception. Not the counts of missing values
    GX lists as examples: it counts NaN objects by identity, which depends on the column dtype."""
    out = []
    for failure in result.failed:
        shown = {**failure.details, "result": dict(failure.details.get("result") or {})}
        if failure.expectation_type == "expect_column_values_to_not_be_null":
            shown["result"].pop("partial_unexpected_counts", None)
        out.append(shown)
    return out


def assert_same_verdict(
    data: bytes, name: str, cfg: Config, chunk_rows: int = CHUNK, rows_hint: int = 0
) -> RawValidation:
    expected, df = whole(data, name, cfg)
    got = chunked(data, name, cfg, chunk_rows, rows_hint)
    assert isinstance(got, RawValidation) and df is not None
    assert got.result.success == expected.success, got.result.summary()
    assert failures(got.result) == failures(expected)
    assert got.result.summary() == expected.summary()
    assert details(got.result) == details(expected)  # counts add up, examples in file order
    assert got.result.evaluated == expected.evaluated == len(build_raw_suite(cfg).expectations)
    assert got.result.suite == expected.suite
    assert got.rows == len(df)
    assert got.ids.tolist() == df[cfg.dataset.id_column].astype(str).tolist()
    json.dumps(got.result.to_dict())  # XCom / quarantine report material
    return got


@pytest.mark.parametrize("case", list(CASES))
def test_chunked_csv_verdict_matches_the_whole_file(config: Config, case: str) -> None:
    build, reason = CASES[case]
    got = assert_same_verdict(to_csv(build()), "file.csv", config)
    assert got.result.result["meta"]["chunks"] == 3  # really chunked
    if reason is None:
        assert got.result.success, got.result.summary()
    else:
        assert reason in got.result.summary()


@pytest.mark.parametrize("fmt", ["csv.gz", "parquet"])
@pytest.mark.parametrize(
    "case",
    [
        "clean",
        "bad values only in the last chunk",
        "duplicate id across chunks",
        "missing share over the limit in one chunk only",
        "missing share over the limit in total, not in every chunk",
    ],
)
def test_chunked_verdict_matches_for_other_formats(config: Config, case: str, fmt: str) -> None:
    name, encode = FORMATS[fmt]
    build, reason = CASES[case]
    got = assert_same_verdict(encode(build()), name, config)
    assert got.result.success is (reason is None)


def many_duplicates():
    """Ids repeated across every chunk: more duplicated rows than GX lists (20), in many
    partitions, plus a missing id."""
    df = frame()
    df["customer_id"] = [f"{i % 37:07d}" if i % 3 else f"{i:07d}" for i in range(len(df))]
    return put(df, [7], "customer_id", None)


@pytest.mark.parametrize("parts", [1, 7, 64])
@pytest.mark.parametrize(
    "build",
    [several_defects, many_duplicates, CASES["duplicate id across chunks"][0]],
    ids=["several defects", "many duplicates", "one duplicate"],
)
def test_uniqueness_in_partitions_matches_the_whole_file(config: Config, build, parts) -> None:
    """Equal ids always share a partition: any partition count gives GX's whole-file counts
    and its first 20 duplicated rows in file order."""
    got = assert_same_verdict(to_csv(build()), "file.csv", config, rows_hint=parts * 1_000_000)
    (unique,) = [f for f in got.result.failed if f.expectation_type.endswith("to_be_unique")]
    assert unique.details["result"]["unexpected_count"] > 0


def test_counts_add_up_and_examples_come_in_file_order(config: Config) -> None:
    got = chunked(to_csv(bad_every_chunk()), "file.csv", config)
    assert isinstance(got, RawValidation)
    (regex,) = [f for f in got.result.failed if f.expectation_type.endswith("to_be_numbers")]
    result = regex.details["result"]
    assert result["unexpected_count"] == 22
    assert result["unexpected_percent"] == pytest.approx(22 / 250 * 100)
    first_20 = [*range(5, 95, 10), *range(105, 195, 10), 205, 215]
    assert result["partial_unexpected_index_list"] == first_20
    assert result["partial_unexpected_counts"] == [{"value": "n/a", "count": 20}]


def test_fewer_rows_than_min_rows_fail_in_chunks_too(config: Config) -> None:
    data = to_csv(frame(12))
    assert_same_verdict(data, "file.csv", config, chunk_rows=5)
    result = chunked(data, "file.csv", config, chunk_rows=5)
    assert "only 12 rows (at least 20 required)" in result.result.summary()


def test_an_unparseable_row_in_a_later_chunk_makes_the_file_unreadable(config: Config) -> None:
    lines = to_csv(frame()).splitlines()
    lines[1 + 230] += b",surplus field"  # row 230: chunk 3 of 3
    data = b"\n".join(lines) + b"\n"
    expected, _ = whole(data, "file.csv", config)
    got = chunked(data, "file.csv", config)
    assert isinstance(got, GateResult)
    assert not got.success and not expected.success
    assert failures(got) == failures(expected) == [("file_readable", None, None)]
    assert got.summary() == expected.summary()


def test_extra_columns_ignored_in_chunks_too(config: Config) -> None:
    ignore = dataclasses.replace(
        config, validation=dataclasses.replace(config.validation, extra_columns="ignore")
    )
    assert_same_verdict(to_csv(frame().assign(notes="x")), "file.csv", ignore)
    assert_same_verdict(to_csv(frame().assign(notes="x").drop(columns=["region"])), "f.csv", ignore)


def test_a_single_chunk_is_validated_whole(config: Config) -> None:
    df = read_table(to_csv(several_defects()), "file.csv", config.dataset)
    got = validate_raw_chunks([df], config, run_name="one", workdir=Path("/nonexistent"))
    expected = validate_raw_file(df, config, run_name="one")
    assert got.result.summary() == expected.summary()
    assert got.result.statistics == expected.statistics
    assert "chunks" not in got.result.result["meta"]  # GX's own result, not a merged one
    assert got.rows == len(df)
    assert got.ids.tolist() == df["customer_id"].tolist()
    with pytest.raises(ValueError, match="no chunks"):
        validate_raw_chunks([], config, run_name="none", workdir=Path("/nonexistent"))


def test_a_file_without_the_id_column_has_no_ids(config: Config) -> None:
    got = chunked(to_csv(frame().drop(columns=["customer_id"])), "file.csv", config)
    assert isinstance(got, RawValidation)
    assert not got.result.success
    assert got.ids.empty
    assert "column customer_id missing" in got.result.summary()


RAW_VARIANTS = {
    "shipped": lambda cfg: cfg,
    "extra columns ignored": lambda cfg: dataclasses.replace(
        cfg, validation=dataclasses.replace(cfg.validation, extra_columns="ignore")
    ),
    "no missing limit": lambda cfg: dataclasses.replace(
        cfg, validation=dataclasses.replace(cfg.validation, max_missing_fraction=1.0)
    ),
}


@pytest.mark.parametrize("variant", list(RAW_VARIANTS))
def test_the_two_partial_suites_split_the_raw_suite(config: Config, variant: str) -> None:
    """Each raw expectation is classified and lands in exactly one partial suite: a new type in
    validation.suites fails here until classify_raw_expectation knows it."""
    cfg = RAW_VARIANTS[variant](config)
    full = sorted(
        expectation_key(e.expectation_type, e.configuration.kwargs)
        for e in build_raw_suite(cfg).expectations
    )
    gate = get_chunked_raw_gate(cfg)
    assert get_chunked_raw_gate(cfg) is gate  # built once per process and config
    parts = {}
    for checkpoint in (RAW_ROWS_CHECKPOINT, RAW_TOTALS_CHECKPOINT):
        (definition,) = gate.context.checkpoints.get(checkpoint).validation_definitions
        parts[checkpoint] = sorted(
            expectation_key(e.expectation_type, e.configuration.kwargs)
            for e in definition.suite.expectations
        )
    assert sorted(parts[RAW_ROWS_CHECKPOINT] + parts[RAW_TOTALS_CHECKPOINT]) == full
    assert sorted(gate.order) == full
    totals = {key.split(" ")[0] for key in parts[RAW_TOTALS_CHECKPOINT]}
    assert totals <= {
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_not_be_null",
    }
    assert config.dataset.id_column in gate.unique_columns


def test_an_unclassified_expectation_cannot_be_chunked() -> None:
    assert classify_raw_expectation("expect_column_values_to_not_be_null", {"column": "a"}) == (
        "rows"
    )
    assert (
        classify_raw_expectation(
            "expect_column_values_to_not_be_null", {"column": "a", "mostly": 0.8}
        )
        == "totals"
    )
    with pytest.raises(ValueError, match="classify"):
        classify_raw_expectation("expect_column_mean_to_be_between", {"column": "a"})
    with pytest.raises(ValueError, match="classify"):  # a share over the file, not per row
        classify_raw_expectation(
            "expect_column_values_to_be_in_set", {"column": "a", "value_set": [1], "mostly": 0.9}
        )


def test_chunked_validation_keeps_no_results(config: Config) -> None:
    fresh = dataclasses.replace(
        config, validation=dataclasses.replace(config.validation, min_rows=22)
    )
    got = chunked(to_csv(frame()), "file.csv", fresh)
    assert isinstance(got, RawValidation) and got.result.success
    assert got.result.result["meta"]["chunks"] == 3
    assert get_chunked_raw_gate(fresh).context.validation_results_store.list_keys() == []


def test_the_partial_checkpoints_survive_their_cache(config: Config) -> None:
    """get_context and get_chunked_raw_gate forget configs independently (tests and long-lived
    workers use many): a gate rebuilt on a context that has its checkpoints reuses them."""
    gate = get_chunked_raw_gate(config)
    get_chunked_raw_gate.cache_clear()
    again = get_chunked_raw_gate(config)
    assert again.context is gate.context
    assert again == gate
    assert chunked(to_csv(frame()), "file.csv", config).result.success
