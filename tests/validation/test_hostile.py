"""Issue 21: hostile content costs what a normal file costs. Each corpus case's fate (its time
and memory are measured by benchmarks/hostile_files.py, not asserted here)."""

from __future__ import annotations

import gzip
import json
import signal
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hostile_corpus import CASES
from raw_cases import frame, to_csv

from retrain import faults, rawcheck
from retrain.config import Config, ConfigError, load_config
from retrain.rawcheck import Source, scan_csv
from retrain.tables import UnreadableFile, iter_table, parse_timestamps, read_table
from validation.chunked import validate_raw_chunks
from validation.gates import unreadable_file_result

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


def _verdict(name: str, data: Source, cfg: Config, workdir: Path):
    try:
        chunks = iter_table(data, name, cfg.dataset, 250_000)
        return validate_raw_chunks(chunks, cfg, run_name="hostile", workdir=workdir).result
    except UnreadableFile as exc:
        return unreadable_file_result(name, exc, cfg)


@pytest.mark.parametrize("kind", ["bytes", "path"])
@pytest.mark.parametrize("case", list(FATES))
def test_each_hostile_file_gets_a_short_reason_that_says_what_it_is(
    case, kind, config, tmp_path
) -> None:
    """Through its bytes or a local copy (what the validate step reads): the same fate."""
    name, data = CASES[case](ROWS)
    source: Source = data
    if kind == "path":
        source = tmp_path / "landed.tmp"
        source.write_bytes(data)
        del data
    result = _verdict(name, source, config, tmp_path)
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


def test_extra_columns_advice_only_when_every_configured_column_is_there(config, tmp_path) -> None:
    df = frame(ROWS).assign(notes="x")
    result = _verdict("f.csv", to_csv(df), config, tmp_path)
    assert 'set [validation] extra_columns = "ignore"' in result.summary()
    result = _verdict("f.csv", to_csv(df.drop(columns=["region"])), config, tmp_path)
    assert "extra_columns" not in result.summary()
    assert "unexpected column(s) ['notes']" in result.summary()


def test_long_values_are_cut_in_reasons_and_results(config, tmp_path) -> None:
    df = frame(ROWS)
    df["event_time"] = df["event_time"].astype(object)
    df.loc[[3, 4], "event_time"] = "y" * 50_000  # under the cell limit: validated, not read
    result = _verdict("f.csv", to_csv(df), config, tmp_path)
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


# -- a local path is scanned as its bytes are, in blocks ----------------------------------------


def _cross_block() -> bytes:
    return b"a,b,c\n" + b"1,2,3\n" * 1_000_000 + b"4,5," + b"z" * 5_000_000 + b"\n7,8,9\n"


@pytest.mark.parametrize(
    ("gzipped", "build"),
    [
        (False, _cross_block),
        (True, lambda: gzip.compress(_cross_block(), 1)),
        (True, lambda: gzip.compress(b"a,b\n1,") + b"\0" * 9 + gzip.compress(b"y" * 80_000)),
        (True, lambda: gzip.compress(b"a,b\n" * 5_000_000, 1)),
        (True, lambda: gzip.compress(_cross_block(), 1)[:-5_000]),
        (False, lambda: b'a,b\n12" screen,2\n' + b"3,4\n" * 30_000),
    ],
    ids=["csv", "gz", "gz-members-padded", "gzip-bomb", "gz-truncated", "stray-quote"],
)
def test_a_path_scans_as_its_bytes(tmp_path, monkeypatch, gzipped, build) -> None:
    monkeypatch.setattr(rawcheck, "SCAN_BYTES", 1 << 20)  # several blocks, input and output
    data = build()
    path = tmp_path / "landed.tmp"
    path.write_bytes(data)
    expected = scan_csv(data, gzipped, 65_536)
    assert scan_csv(path, gzipped, 65_536) == expected
    assert expected.long_cell is not None or expected.too_big or b"screen" in data


def _digits_csv(rows: int) -> bytes:
    """``rows`` lines of two random 7-digit numbers: ~16 bytes a line, compressing ~2:1."""
    rng = np.random.default_rng(5)
    lines = rng.integers(48, 58, size=(rows, 16), dtype=np.uint8)
    lines[:, 7], lines[:, 15] = ord(","), ord("\n")
    return b"a______,b______\n" + lines.tobytes()


@pytest.mark.parametrize("gzipped", [False, True])
def test_scanning_a_path_holds_a_few_blocks_whatever_its_size(
    tmp_path, monkeypatch, gzipped
) -> None:
    """Memory is a small multiple of SCAN_BYTES, not the file's size: a 48 MB CSV (or its
    ~25 MB gzip) is scanned with 256 KiB blocks in well under 48 MB of Python allocations."""
    block = 256 << 10
    monkeypatch.setattr(rawcheck, "SCAN_BYTES", block)
    data = _digits_csv(3_000_000)
    if gzipped:
        data = gzip.compress(data, 1)
    path = tmp_path / "big.tmp"
    path.write_bytes(data)
    size = len(data)
    del data
    tracemalloc.start()
    try:
        shape = scan_csv(path, gzipped, 65_536)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 20 << 20
    assert (shape.columns, shape.long_cell, shape.too_big) == (2, None, None)
    assert peak < 24 * block, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB file"


def test_the_fault_marker_is_looked_for_in_a_paths_head_only(tmp_path, monkeypatch) -> None:
    killed: list[int] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: killed.append(sig))
    faults.kill_on_marker(tmp_path / "never-read.tmp", "k")  # no marker set: nothing is read
    monkeypatch.setenv(faults.ENV, "KILL-ME")
    late = tmp_path / "late.tmp"
    late.write_bytes(b"a\n" + b"x" * faults.HEAD + b"KILL-ME\n")
    faults.kill_on_marker(late, "late")
    assert killed == []
    early = tmp_path / "early.tmp"
    early.write_bytes(b"a\nKILL-ME\n" + b"x" * faults.HEAD)
    faults.kill_on_marker(early, "early")
    faults.kill_on_marker(early.read_bytes(), "early")
    assert killed == [signal.SIGKILL] * 2
