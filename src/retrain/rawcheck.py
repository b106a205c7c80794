"""Checks on a landed file's bytes before anything parses them, so that hostile content costs
what a normal file costs (issue 21).

- :func:`looks_like`: what a file named ``.csv`` really is when it is not text (a renamed
  Parquet, ZIP, XLSX or gzip file), from its first (and, for a ZIP, last) bytes.
- :func:`scan_csv`: the longest cell and the header's width of a CSV file, by a vectorized scan
  of its bytes in bounded memory (a gzip file is decompressed as a stream, at most
  :data:`MAX_GZIP_RATIO` times its size). One unbalanced quote turns the rest of a file into one
  cell; the parsers downstream (pandas, dateutil, GX, the reports) are not linear in a cell.

A file is a :data:`Source`: its bytes, or the path of a local copy (a large landed object is
streamed to disk, never held whole): a path is read in blocks of :data:`SCAN_BYTES`, so the
scan's memory does not grow with the file, and both give the same answers.

Pure (numpy, zlib, pandas only for the rare exact re-check); :mod:`retrain.tables` raises.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Source = bytes | Path  # a file's bytes, or the path of a local file

# A header wider than this (or four times the dataset's columns, if more: tables.column_limit)
# is refused before parsing: 100k columns cost GX ~2 min and 1.3 GB.
MAX_COLUMNS = 1024
# A .csv.gz may decompress to at most this many times its size (beyond a small floor): real
# exports compress 3-15x, a gzip bomb 1000x.
MAX_GZIP_RATIO = 100
GZIP_FLOOR_BYTES = 16 << 20
SCAN_BYTES = 4 << 20  # bytes scanned at a time: the scan's memory is a small multiple of this
# What looks_like reads of each end of a file: a ZIP names its entries in local headers from the
# start and again in its central directory at the end (where Excel puts [Content_Types].xml
# first but openpyxl last, after the sheets).
LOOK_BYTES = 64 << 10

_QUOTE, _COMMA, _LF, _CR = 34, 44, 10, 13


@dataclass(frozen=True)
class LongCell:
    """The first cell over the limit: its record (0 is the header), column and length."""

    row: int
    column: int
    length: int
    quoted: bool  # it starts with a quote (an unbalanced one, most likely)


@dataclass(frozen=True)
class CsvShape:
    """What the scan found: the header's width and the first over-long cell, if any."""

    columns: int
    long_cell: LongCell | None = None
    too_big: int | None = None  # a gzip stream that decompresses beyond this many bytes


def size_of(source: Source) -> int:
    """The file's size in bytes, without reading it."""
    return len(source) if isinstance(source, bytes) else source.stat().st_size


def read_head(source: Source, n: int, gzipped: bool = False) -> bytes:
    """The first ``n`` bytes of the file (of its decompressed stream if ``gzipped``: a stream
    that is not gzip raises ``zlib.error``, a truncated one gives what it holds)."""
    if not gzipped:
        if isinstance(source, bytes):
            return source[:n]
        with source.open("rb") as f:
            return f.read(n)
    parts, total = [], 0
    for block in _gunzip(source, None):
        parts.append(bytes(block[: n - total]))
        total += len(parts[-1])
        if total >= n:
            break
    return b"".join(parts)


def _read_tail(source: Source, n: int) -> bytes:
    if isinstance(source, bytes):
        return source[-n:]
    with source.open("rb") as f:
        f.seek(max(0, source.stat().st_size - n))
        return f.read(n)


def looks_like(source: Source) -> str | None:
    """What the file looks like when it is not CSV text (``None``: it may be), from its first
    :data:`LOOK_BYTES` (and its last, for a ZIP's central directory)."""
    data = read_head(source, LOOK_BYTES)
    head = data[:8]
    if head.startswith(b"PAR1"):
        return "a Parquet file"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        if size_of(source) > LOOK_BYTES:
            data += _read_tail(source, LOOK_BYTES)
        if b"xl/workbook" in data or (b"[Content_Types].xml" in data and b"xl/" in data):
            return "an XLSX (Excel) workbook"
        return "a ZIP archive"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "an old Excel (.xls) or other Office file"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file (name it .csv.gz)"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    text = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"[") and (text[1:2] in (b'"', b"{", b"\n", b" ", b"]", b"}")):
        return "JSON (one object per line?)"
    return None


def scan_csv(source: Source, gzipped: bool, max_cell_bytes: int) -> CsvShape:
    """The header's width and the first cell longer than ``max_cell_bytes``, in one pass.

    Fields end at a comma or line break outside quotes; a quote toggles "inside quotes" (RFC
    4180: a doubled quote toggles twice). pandas, like most CSV readers, only opens a quote at a
    field's start, so a stray quote inside a field (``12" screen``) can make this scan see a
    long cell where pandas sees none: such a finding is checked again with pandas itself
    (:func:`_exact_long_cell`). A stream that is not valid gzip ends the scan quietly: reading
    it reports the error as before.
    """
    scan = _Scan(max_cell_bytes)
    limit = max(GZIP_FLOOR_BYTES, MAX_GZIP_RATIO * size_of(source)) if gzipped else None
    try:
        for block in _gunzip(source, limit) if gzipped else _blocks(source):
            if scan.add(np.frombuffer(block, dtype=np.uint8)):
                break
        else:
            scan.end()
    except _TooBig:
        return CsvShape(scan.header_columns or scan.column + 1, too_big=limit)
    except zlib.error:
        return CsvShape(scan.header_columns or 1)
    long_cell = scan.long_cell
    if long_cell is not None and scan.stray_quotes:
        long_cell = _exact_long_cell(source, gzipped, max_cell_bytes, long_cell)
    return CsvShape(scan.header_columns or scan.column + 1, long_cell)


class _TooBig(Exception):
    pass


def _blocks(source: Source) -> Iterator[bytes | memoryview]:
    """The file in blocks of at most SCAN_BYTES; a path is read one block at a time."""
    if isinstance(source, bytes):
        view = memoryview(source)
        for start in range(0, len(source), SCAN_BYTES):
            yield view[start : start + SCAN_BYTES]
        return
    with source.open("rb") as f:
        while block := f.read(SCAN_BYTES):
            yield block


def _gunzip(source: Source, limit: int | None) -> Iterator[bytes]:
    """The decompressed stream in blocks of at most SCAN_BYTES (every member of a multi-member
    file), raising :class:`_TooBig` once it passes ``limit`` bytes. The compressed input is fed
    in blocks too: memory stays a few SCAN_BYTES whatever the file's size."""
    total, first = 0, True
    inflate: zlib._Decompress | None = None
    for piece in _blocks(source):
        pending: bytes | memoryview = piece
        while True:
            if inflate is None:
                if not first:  # zero padding between members
                    pending = bytes(pending).lstrip(b"\0")
                    if not pending:
                        break
                inflate, first = zlib.decompressobj(wbits=31), False
            block = inflate.decompress(pending, SCAN_BYTES)
            pending = inflate.unconsumed_tail
            if block:
                total += len(block)
                if limit is not None and total > limit:
                    raise _TooBig
                yield block
            if inflate.eof:
                pending, inflate = inflate.unused_data, None
            elif not block and not pending:
                break  # this member needs more input
    # A member still open here is a truncated stream: reading the file reports it.


class _Scan:
    """The state carried from one block to the next."""

    def __init__(self, max_cell_bytes: int) -> None:
        self.cap = max_cell_bytes
        self.offset = 0  # of the block in the stream
        self.field_start = 0  # where the open field starts (stream offset)
        self.field_quoted: bool | None = None
        self.quoted = 0  # 1 inside quotes at the block's start
        self.prev_cr = False
        self.row = 0  # record of the open field (0: the header)
        self.column = 0  # its position in the record
        self.header_columns = 0
        self.long_cell: LongCell | None = None
        self.stray_quotes = False

    def add(self, block: np.ndarray) -> bool:
        """Scan one block; True once a long cell is found."""
        n = len(block)
        if not n:
            return False
        quotes = block == _QUOTE
        if quotes.any():
            inside = ((np.cumsum(quotes, dtype=np.uint8) + self.quoted) & 1).astype(bool)
            outside = ~inside
            self._note_stray_quotes(block, quotes, outside)
        else:
            inside = None
            outside = np.zeros(n, bool) if self.quoted else np.ones(n, bool)
        if self.field_quoted is None:
            self.field_quoted = bool(block[0] == _QUOTE)
        comma = (block == _COMMA) & outside
        lf = (block == _LF) & outside
        cr = (block == _CR) & outside
        after_cr = np.empty(n, bool)
        after_cr[0], after_cr[1:] = self.prev_cr, cr[:-1]
        record_end = cr | (lf & ~after_cr)
        ends = np.flatnonzero(comma | lf | cr)
        if ends.size:
            starts = np.empty_like(ends)
            starts[0] = self.field_start - self.offset
            starts[1:] = ends[:-1] + 1
            lengths = ends - starts
            over = np.flatnonzero(lengths > self.cap)
            if over.size:
                self._found(block, int(starts[over[0]]), int(lengths[over[0]]), record_end, comma)
                return True
        self._advance(block, ends, record_end, comma)
        self.quoted = int(inside[-1]) if inside is not None else self.quoted
        self.prev_cr = bool(cr[-1])
        self.offset += n
        return False

    def end(self) -> None:
        """The stream ended: the open field is a cell too (an unbalanced quote's, typically)."""
        length = self.offset - self.field_start
        if length > self.cap:
            quoted = bool(self.field_quoted)
            self.long_cell = LongCell(self.row, self.column, length, quoted)
        if not self.header_columns:
            self.header_columns = self.column + 1

    def _found(
        self, block: np.ndarray, start: int, length: int, record_end: np.ndarray, comma: np.ndarray
    ) -> None:
        if start < 0:  # the field began in an earlier block: the carried state is its own
            row, column, quoted = self.row, self.column, bool(self.field_quoted)
        else:
            ended = np.flatnonzero(record_end[:start])
            row = self.row + ended.size
            first = int(ended[-1]) + 1 if ended.size else 0
            column = int(comma[first:start].sum()) + (0 if ended.size else self.column)
            quoted = bool(block[start] == _QUOTE) if start < len(block) else False
            if row > 0 and not self.header_columns:
                self.header_columns = self.column + int(comma[: int(ended[0])].sum()) + 1
        self.long_cell = LongCell(row, column, length, quoted)

    def _advance(
        self, block: np.ndarray, ends: np.ndarray, record_end: np.ndarray, comma: np.ndarray
    ) -> None:
        records = np.flatnonzero(record_end)
        if records.size:
            if not self.header_columns and self.row == 0:
                self.header_columns = self.column + int(comma[: int(records[0])].sum()) + 1
            self.row += records.size
            self.column = int(comma[int(records[-1]) + 1 :].sum())
        else:
            self.column += int(comma.sum())
        if ends.size:
            last = int(ends[-1]) + 1
            self.field_start = self.offset + last
            self.field_quoted = bool(block[last] == _QUOTE) if last < len(block) else None

    def _note_stray_quotes(
        self, block: np.ndarray, quotes: np.ndarray, outside: np.ndarray
    ) -> None:
        """A quote that opens quoting (outside before it) anywhere but at a field's start."""
        if self.stray_quotes:
            return
        at = np.flatnonzero(quotes & ~outside)  # quotes that leave the scan inside quotes
        if not at.size:
            return
        before = np.empty(len(at), np.uint8)
        inner = at > 0
        before[inner] = block[at[inner] - 1]
        before[~inner] = _COMMA if self.offset == 0 or self.field_start == self.offset else 0
        opening = at[~np.isin(before, (_COMMA, _LF, _CR, _QUOTE))]
        self.stray_quotes = bool(opening.size)


def _exact_long_cell(
    source: Source, gzipped: bool, max_cell_bytes: int, guess: LongCell
) -> LongCell | None:
    """The first long cell as pandas reads the file (it opens quotes only at a field's start),
    record by record in chunks; ``guess`` if pandas cannot read it (it will say why later)."""
    import pandas as pd

    try:
        reader = pd.read_csv(
            io.BytesIO(source) if isinstance(source, bytes) else source,
            header=None,
            dtype=str,
            keep_default_na=False,
            compression="gzip" if gzipped else None,
            encoding="utf-8-sig",
            chunksize=50_000,
            skip_blank_lines=False,
        )
        with reader:
            for chunk in reader:
                lengths = chunk.apply(lambda s: s.str.encode("utf-8").str.len()).fillna(0)
                over = np.argwhere(lengths.to_numpy() > max_cell_bytes)
                if over.size:
                    i, j = (int(x) for x in over[0])
                    quoted = guess.quoted and (guess.row, guess.column) == (chunk.index[i], j)
                    return LongCell(int(chunk.index[i]), j, int(lengths.iat[i, j]), quoted)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
        return guess
    return None
