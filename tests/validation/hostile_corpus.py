"""Hostile landed files (issue 21), built in memory: each builder takes a row count and returns
``(file name, bytes)``. The tests assert each one's fate; benchmarks/hostile_files.py measures
each one's time and memory through the validate step beside ``normal``."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable

from raw_cases import frame, to_csv, to_parquet

GIANT = 20_000_000  # bytes of the giant cell: what one unbalanced quote made of a real export
BOMB_BYTES = 400_000_000  # what the gzip bomb decompresses to


def _lines(rows: int) -> list[str]:
    return to_csv(frame(rows)).decode().splitlines()


def _with_cell(rows: int, value: str) -> bytes:
    """The event_time of the middle row replaced by ``value`` (as written, quotes included)."""
    lines = _lines(rows)
    cells = lines[rows // 2].split(",")
    cells[1] = value
    lines[rows // 2] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def normal(rows: int) -> tuple[str, bytes]:
    return "normal.csv", to_csv(frame(rows))


def giant_cell(rows: int) -> tuple[str, bytes]:
    """A quoted 20 MB value in the timestamp column (balanced: the file parses)."""
    return "giant-cell.csv", _with_cell(rows, '"' + "2024-01-01 " * (GIANT // 11) + '"')


def unbalanced_quote(rows: int) -> tuple[str, bytes]:
    """A quote that opens a cell and is never closed: the rest of the file is that cell."""
    return "unbalanced-quote.csv", _with_cell(rows, '"2024-01-01 00:00')


def unbalanced_quote_long(rows: int) -> tuple[str, bytes]:
    """The same in front of 1 MB of notes: the open cell passes the cell limit."""
    tail = "\n".join(f"note {i}, call back later" for i in range(40_000))
    return "unbalanced-quote-long.csv", _with_cell(rows, '"2024-01-01 00:00') + tail.encode()


def wide_header(rows: int) -> tuple[str, bytes]:
    """100,000 extra columns."""
    lines = _lines(rows)
    extra = 100_000
    head = lines[0] + "," + ",".join(f"x{i}" for i in range(extra))
    body = [line + "," * extra for line in lines[1:]]
    return "wide-header.csv", ("\n".join([head, *body]) + "\n").encode()


def long_names(rows: int) -> tuple[str, bytes]:
    """Three extra columns with names of 10,000 characters."""
    lines = _lines(rows)
    head = lines[0] + "," + ",".join(f"{c * 10_000}" for c in "xyz")
    return "long-names.csv", (
        "\n".join([head, *(line + ",,," for line in lines[1:])]) + "\n"
    ).encode()


def gzip_bomb(rows: int) -> tuple[str, bytes]:
    """A .csv.gz that decompresses to 400 MB of valid-looking rows (~1000:1)."""
    lines = _lines(rows)
    block = ("\n".join(lines[1:]) + "\n").encode() * max(1, (1 << 20) // len(lines[1]) // rows)
    squeeze = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts = [squeeze.compress((lines[0] + "\n").encode())]
    for _ in range(BOMB_BYTES // len(block)):
        parts.append(squeeze.compress(block))
    parts.append(squeeze.flush())
    return "gzip-bomb.csv.gz", b"".join(parts)


def zip_bomb(rows: int) -> tuple[str, bytes]:
    """A ZIP (of a 400 MB CSV) renamed .csv: ZIP is not accepted, so it is never inflated."""
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("data.csv", "w", force_zip64=True) as member,
    ):
        chunk = b"0" * (1 << 20)
        for _ in range(BOMB_BYTES >> 20):
            member.write(chunk)
    return "zip-bomb.csv", buf.getvalue()


def parquet_as_csv(rows: int) -> tuple[str, bytes]:
    return "parquet-renamed.csv", to_parquet(frame(rows))


def xlsx_as_csv(rows: int) -> tuple[str, bytes]:
    """The parts of an XLSX workbook that give it away (a ZIP with xl/workbook.xml)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", to_csv(frame(rows)).decode())
    return "excel-renamed.csv", buf.getvalue()


def semicolons(rows: int) -> tuple[str, bytes]:
    return "semicolons.csv", to_csv(frame(rows)).replace(b",", b";")


def json_lines(rows: int) -> tuple[str, bytes]:
    return "records.csv", frame(rows).to_json(orient="records", lines=True).encode()


def upper_case(rows: int) -> tuple[str, bytes]:
    df = frame(rows)
    return "upper.csv", to_csv(df.rename(columns=str.upper))


def parquet_giant_cell(rows: int) -> tuple[str, bytes]:
    df = frame(rows).astype({"event_time": object})
    df.loc[rows // 2, "event_time"] = "x" * GIANT
    return "giant-cell.parquet", to_parquet(df)


CASES: dict[str, Callable[[int], tuple[str, bytes]]] = {
    "normal": normal,
    "giant_cell": giant_cell,
    "unbalanced_quote": unbalanced_quote,
    "unbalanced_long": unbalanced_quote_long,
    "wide_header": wide_header,
    "long_names": long_names,
    "gzip_bomb": gzip_bomb,
    "zip_bomb": zip_bomb,
    "parquet_as_csv": parquet_as_csv,
    "xlsx_as_csv": xlsx_as_csv,
    "semicolons": semicolons,
    "json_lines": json_lines,
    "upper_case": upper_case,
    "parquet_giant": parquet_giant_cell,
}
