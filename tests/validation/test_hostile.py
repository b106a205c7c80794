"""Issue 21: hostile content costs what a normal file costs. Each corpus case's fate (its time
and memory are measured by benchmarks/hostile_files.py, not asserted here)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hostile_corpus import CASES
from raw_cases import frame, to_csv

from retrain.config import Config, ConfigError, load_config
from retrain.rawcheck import scan_csv
from retrain.tables import UnreadableFile, iter_table, parse_timestamps, read_table
from validation.gates import unreadable_file_result, validate_raw_chunks

ROWS = 100

FATES = {  # case -> what the reason must say (None: the file passes)
    "normal": None,
    "giant_cell": "row 50, column 2 ('event_time'): a cell of 19,999,993 bytes, over the limit "
    "of 65,536 ([validation] max_cell_bytes): a quote opens it",
    "unbalanced_quote": "EOF inside string starting at row 50",
    "unbalanced_long": "row 50, column 2 ('event_time'): a cell of",
    "wide_header": "100,011 columns in the header (at most 1,024 are read)",
    "long_names": "unexpected column(s) ['xxxxxxxx",
    "gzip_bomb": "refused as a gzip bomb",
    "zip_bomb": "looks like a ZIP archive, not CSV",
    "parquet_as_csv": "looks like a Parquet file, not CSV",
    "xlsx_as_csv": "looks like an XLSX (Excel) workbook, not CSV",
    "semicolons": "separates its columns with semicolons, not commas",
    "json_lines": "looks like JSON (one object per line?), not CSV",
    "upper_case": "names columns in another case or with spaces ('CHURNED' for 'churned'",
    "parquet_giant": "row 51, column 'event_time': a value of 20,000,000 bytes",
}


def _verdict(name: str, data: bytes, cfg: Config):
    try:
        chunks = iter_table(data, name, cfg.dataset, 250_000)
        return validate_raw_chunks(chunks, cfg, run_name="hostile").result
    except UnreadableFile as exc:
        return unreadable_file_result(name, exc, cfg)


@pytest.mark.parametrize("case", list(FATES))
def test_each_hostile_file_gets_a_short_reason_that_says_what_it_is(case, config) -> None:
    name, data = CASES[case](ROWS)
    result = _verdict(name, data, config)
    expected = FATES[case]
    if expected is None:
        assert result.success, result.summary()
        return
    assert not result.success
    summary = result.summary()
    assert expected in summary
    assert len(summary) < 2500  # never the value, never every column
    assert len(json.dumps(result.to_dict(), default=str)) < 200_000
    if case in ("semicolons", "upper_case"):
        assert "extra_columns" not in summary  # ignoring them would not help


def test_extra_columns_advice_only_when_every_configured_column_is_there(config) -> None:
    df = frame(ROWS).assign(notes="x")
    result = _verdict("f.csv", to_csv(df), config)
    assert 'set [validation] extra_columns = "ignore"' in result.summary()
    result = _verdict("f.csv", to_csv(df.drop(columns=["region"])), config)
    assert "extra_columns" not in result.summary()
    assert "unexpected column(s) ['notes']" in result.summary()


def test_long_values_are_cut_in_reasons_and_results(config) -> None:
    df = frame(ROWS)
    df["event_time"] = df["event_time"].astype(object)
    df.loc[[3, 4], "event_time"] = "y" * 50_000  # under the cell limit: validated, not read
    result = _verdict("f.csv", to_csv(df), config)
    assert "event_time not parseable as timestamps (2 rows" in result.summary()
    assert "... (50,000 characters)" in result.summary()
    assert len(result.summary()) < 600
    assert len(json.dumps(result.to_dict(), default=str)) < 100_000
    failed = [f for f in result.failed if f.column == "event_time"]
    examples = failed[0].details["result"]["partial_unexpected_list"]
    assert all(len(v) < 120 for v in examples)


def test_the_cell_limit_is_configurable_and_none_reads_anything(config) -> None:
    name, data = CASES["unbalanced_long"](ROWS)
    with pytest.raises(UnreadableFile, match="over the limit of 65,536"):
        read_table(data, name, config.dataset)
    with pytest.raises(UnreadableFile, match="over the limit of 1,000,000"):
        iter_table(data, name, config.dataset, 1000, max_cell_bytes=1_000_000)
    chunks = iter_table(data, name, config.dataset, 1000, max_cell_bytes=2_000_000)
    with pytest.raises(UnreadableFile, match="EOF inside string"):
        list(chunks)  # under the limit: pandas reads it, and finds the quote open at the end
    with pytest.raises(UnreadableFile, match="EOF inside string"):
        read_table(data, name, config.dataset, max_cell_bytes=None)


@pytest.mark.parametrize(
    "text",
    [
        'a,b\n1,"x, ""quoted"" y"\n2,3\n',  # quotes, doubled quotes, delimiters inside
        'a,b\n12" screen,2\n3,4\n',  # a stray quote inside a field: pandas reads it literally
        "a,b\r\n1,2\r\n",
    ],
)
def test_normal_quoting_is_not_mistaken_for_a_long_cell(text: str) -> None:
    data = (text + "5,6\n" * 20_000).encode()
    assert scan_csv(data, False, 1024).long_cell is None
    assert len(read_table(data, "f.csv", max_cell_bytes=1024)) > 20_000


def test_scan_finds_the_cell_across_blocks_and_counts_rows_and_columns() -> None:
    data = b"a,b,c\n" + b"1,2,3\n" * 1_000_000 + b"4,5," + b"z" * 5_000_000 + b"\n7,8,9\n"
    cell = scan_csv(data, False, 65_536).long_cell
    assert cell is not None
    assert (cell.row, cell.column, cell.length, cell.quoted) == (1_000_001, 2, 5_000_000, False)


def test_long_text_is_not_parsed_as_a_timestamp() -> None:
    values = pd.Series(["2024-01-01", "2024-01-01 " * 1000, None], dtype="str")
    typed, bad = parse_timestamps(values)
    assert bad.tolist() == [False, True, False]
    assert typed.iloc[0] == pd.Timestamp("2024-01-01")


def test_max_cell_bytes_is_read_and_checked(tmp_path, config) -> None:
    assert config.validation.max_cell_bytes == 65_536
    shipped = Path(config.source).read_text()
    for value, ok in (("2000000", True), ("10", False)):
        path = tmp_path / f"{value}.toml"
        path.write_text(shipped.replace("max_cell_bytes = 65536", f"max_cell_bytes = {value}"))
        if ok:
            assert load_config(path, env={}).validation.max_cell_bytes == int(value)
        else:
            with pytest.raises(ConfigError, match="max_cell_bytes must be at least 1024"):
                load_config(path, env={})


def test_a_wide_dataset_reads_headers_as_wide_as_four_times_its_columns() -> None:
    from dataclasses import replace as _replace

    from retrain.config import Column
    from retrain.rawcheck import MAX_COLUMNS
    from retrain.tables import column_limit

    assert column_limit(None) == MAX_COLUMNS
    narrow = load_config(Path(__file__).parents[2] / "retrain.toml", env={}).dataset
    assert column_limit(narrow) == MAX_COLUMNS
    extra = tuple(Column(f"f{i}", "float") for i in range(400))
    assert column_limit(_replace(narrow, columns=narrow.columns + extra)) == 4 * (
        len(narrow.columns) + 400
    )
