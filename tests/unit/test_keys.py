"""Landed keys are untrusted: every key gets one documented fate and only ever a safe name."""

from __future__ import annotations

import ast
import hashlib
import posixpath
import random
import sys
from pathlib import Path

import pytest

from retrain import keys
from retrain.config import IngestConfig
from retrain.keys import MAX_NAME_BYTES, KeyFate, classify_landing_key

PREFIX = "landing/"
PATTERNS = IngestConfig().ignore_patterns
LONG_SEGMENT = "a" * 296 + ".csv"  # 300 bytes
LONG_NAME = "/".join(["d" * 99] * 6) + "/x.parquet"  # 609 bytes, every segment short
IGNORED = "temporary or hidden upload name; renamed uploads are picked up"


def sha16(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def fate(key: str, size: int | None = None) -> KeyFate:
    return classify_landing_key(key, PREFIX, PATTERNS, size=size)


@pytest.mark.parametrize(
    ("key", "size", "action", "reason_part"),
    [
        # escapes and ambiguous paths
        ("landing/../raw/escape.csv", None, "quarantine", "'..' path segment"),
        ("landing/a/../../raw/escape.csv", None, "quarantine", "'..' path segment"),
        ("landing/..", None, "quarantine", "'..' path segment"),
        ("landing/./a.csv", None, "quarantine", "'.' path segment"),
        ("landing/a//b.csv", None, "quarantine", "empty path segment"),
        ("landing//etc/passwd.csv", None, "quarantine", "empty path segment"),
        ("landing/ /a.csv", None, "quarantine", "only of spaces"),
        ("landing/a\\b.csv", None, "quarantine", "backslash"),
        ("landing/..\\..\\raw\\x.csv", None, "quarantine", "backslash"),
        # characters that break logs, terminals, reports or file systems
        ("landing/a\nb.csv", None, "quarantine", "control character (U+000A)"),
        ("landing/a\rb.csv", None, "quarantine", "control character (U+000D)"),
        ("landing/a\x00b.csv", None, "quarantine", "control character (U+0000)"),
        ("landing/a\x1bb.csv", None, "quarantine", "control character (U+001B)"),
        ("landing/a\x7fb.csv", None, "quarantine", "control character (U+007F)"),
        ("landing/x\u202evsc.exe", None, "quarantine", "non-printable character (U+202E)"),
        ("landing/a\u200bb.csv", None, "quarantine", "non-printable character (U+200B)"),
        ("landing/\ufeffa.csv", None, "quarantine", "non-printable character (U+FEFF)"),
        ("landing/a\u2028b.csv", None, "quarantine", "non-printable character (U+2028)"),
        ("landing/a\ud800b.csv", None, "quarantine", "invalid surrogate (U+D800)"),
        # unsafe wins over the ignore patterns: "." and ".." match ".*"
        ("landing/.hidden/../a.csv", None, "quarantine", "'..' path segment"),
        ("landing/.\n.csv", None, "quarantine", "control character"),
        # hidden and temporary uploads stay in landing/
        ("landing/.hidden.csv", None, "ignore", IGNORED),
        ("landing/x.csv.part", None, "ignore", IGNORED),
        ("landing/x.csv.tmp", 10, "ignore", IGNORED),
        ("landing/x.csv.crdownload", 0, "ignore", IGNORED),  # ignored before the size check
        ("landing/x.csv.partial", None, "ignore", IGNORED),
        ("landing/_tmp/x.csv", None, "ignore", IGNORED),
        ("landing/_SUCCESS", None, "ignore", IGNORED),
        ("landing/2026/.staging/x.csv", None, "ignore", IGNORED),
        # folder markers and other prefixes
        ("landing/sub/", None, "ignore", "folder marker"),
        ("landing/", None, "ignore", "folder marker"),
        ("landing/../", None, "ignore", "folder marker"),  # not a file: never written anywhere
        ("other/x.csv", None, "ignore", "outside the landing prefix"),
        ("landing", None, "ignore", "outside the landing prefix"),
        ("Landing/x.csv", None, "ignore", "outside the landing prefix"),
        ("/landing/x.csv", None, "ignore", "outside the landing prefix"),
        # empty objects
        ("landing/empty.csv", 0, "quarantine", "empty object (0 bytes)"),
        # fine, however unusual
        ("landing/données-été.csv", None, "process", ""),
        ("landing/日本語のファイル.parquet", 10, "process", ""),
        ("landing/2026/11/a.csv", 10, "process", ""),
        ("landing/with space & (1).csv.gz", None, "process", ""),
        ("landing/a..b.csv", None, "process", ""),  # ".." inside a name is not a segment
        ("landing/x.PART", None, "process", ""),  # patterns are case-sensitive
        ("landing/readme.txt", None, "process", ""),  # the reader quarantines the type later
    ],
)
def test_fate_of_hostile_and_harmless_keys(
    key: str, size: int | None, action: str, reason_part: str
) -> None:
    result = fate(key, size)
    assert result.action == action
    assert reason_part in result.reason
    if action == "process":
        assert result == KeyFate("process", "", key[len(PREFIX) :])
    elif action == "ignore":
        assert result.name == ""
    elif "unsafe" in result.reason:
        assert result.name == f"_unsafe/{sha16(key)}"
    else:
        assert result.name == key[len(PREFIX) :]


def test_unsafe_reasons_do_not_repeat_the_key() -> None:
    """The reason ends up in reports and logs; the hostile key itself goes there escaped."""
    result = fate("landing/evil\n\u202e<script>.csv")
    assert "\n" not in result.reason and "\u202e" not in result.reason
    assert "<script>" not in result.reason and result.reason.isprintable()


@pytest.mark.parametrize(
    ("key", "reason_part", "suffix"),
    [
        (PREFIX + LONG_SEGMENT, "path segment has 300 UTF-8 bytes", ".csv"),
        (PREFIX + LONG_NAME, f"609 UTF-8 bytes (at most {MAX_NAME_BYTES})", ".parquet"),
        (PREFIX + "é" * 128 + ".csv.gz", "path segment has 263 UTF-8 bytes", ".csv.gz"),
        (PREFIX + "b" * 300 + ".CSV", "path segment has 304 UTF-8 bytes", ".CSV"),
        (PREFIX + "c" * 300 + ".json", "path segment has 305 UTF-8 bytes", ""),
        (PREFIX + "_" + "c" * 300 + ".part", "path segment", ""),  # too long beats ignore
    ],
)
def test_too_long_keys_are_quarantined_under_a_short_name(
    key: str, reason_part: str, suffix: str
) -> None:
    result = fate(key)
    assert result.action == "quarantine"
    assert reason_part in result.reason
    assert result.name == f"_too_long/{sha16(key)}{suffix}"


def test_length_limits_are_inclusive() -> None:
    segment = "a" * 251 + ".csv"  # exactly 255 bytes
    assert fate(PREFIX + segment).action == "process"
    name = "/".join(["d" * 99] * 5) + "/" + "x" * 8 + ".csv"  # exactly 512 bytes
    assert len(name.encode()) == MAX_NAME_BYTES
    assert fate(PREFIX + name).action == "process"
    assert fate(PREFIX + name + "x").action == "quarantine"


def test_names_depend_only_on_the_key() -> None:
    """A retried or repeated routing of the same object picks the same destination."""
    key = "landing/../raw/escape.csv"
    assert fate(key) == fate(key, size=3) == fate(key, size=0)
    assert fate(key).name != fate("landing/../raw/escape2.csv").name


def test_custom_prefix_and_no_patterns() -> None:
    assert classify_landing_key("in/box/.x.csv", "in/box/", []).action == "process"
    assert classify_landing_key("in/box/.x.csv", "in/box/", ["*.csv"]).action == "ignore"
    assert classify_landing_key("in/boxx.csv", "in/box/", []).action == "ignore"


# -- properties over generated names ----------------------------------------------------------

_BENIGN = [*"abcXYZ019-~.", "é", "ß", "日本", "😀", "/", "a" * 40, "é" * 70, ".csv", ".parquet"]
_PIECES = [
    *_BENIGN,
    " ",
    "_",
    "//",
    ".",
    "..",
    "../",
    "./",
    "\\",
    "\x00",
    "\n",
    "\t",
    "\x1f",
    "\x7f",
    "\x85",
    "\u202e",
    "\u200b",
    "\ufeff",
    "\ud800",
    "\udfff",
    ".csv.gz",
    ".part",
    ".tmp",
    "/" + "z" * 120,
]


def _random_key(rng: random.Random) -> str:
    pieces = rng.choice([_BENIGN, _PIECES])
    body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
    prefix = rng.choice([PREFIX, PREFIX, PREFIX, "", "other/", "landing", "/landing/"])
    return prefix + body


def test_every_name_is_safe_under_any_destination_prefix() -> None:
    rng = random.Random(20261111)
    seen = {"process": 0, "ignore": 0, "quarantine": 0}
    for _ in range(20_000):
        key = _random_key(rng)
        size = rng.choice([None, 0, 1, 1234])
        result = classify_landing_key(key, PREFIX, PATTERNS, size=size)
        seen[result.action] += 1
        seen[result.name.split("/")[0]] = seen.get(result.name.split("/")[0], 0) + 1
        assert (result.reason == "") == (result.action == "process"), (key, result)
        if result.action == "ignore":
            assert result.name == "", (key, result)
            continue
        name = result.name
        segments = name.split("/")
        assert not name.startswith("/"), (key, result)
        assert all(seg not in ("", ".", "..") for seg in segments), (key, result)
        assert name.isprintable() and "\\" not in name, (key, result)
        assert not any(ord(c) < 32 or ord(c) == 127 for c in name), (key, result)
        assert len(name.encode("utf-8")) <= MAX_NAME_BYTES, (key, result)
        dest = "raw/ingest_date=2026-11-11/batch=0123456789ab/"
        assert posixpath.normpath(dest + name).startswith(dest), (key, result)
        if result.action == "process":
            assert name == key[len(PREFIX) :], (key, result)
    # the generator really exercises every fate, not only the easy one
    assert min(seen[k] for k in ("process", "ignore", "quarantine")) > 1000, seen
    assert seen.get("_unsafe", 0) > 1000 and seen.get("_too_long", 0) > 100, seen


def test_keys_module_imports_only_the_standard_library() -> None:
    """Airflow's triggerer imports it through the landing trigger: nothing heavy, no Airflow."""
    tree = ast.parse(Path(keys.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert names
    assert [n for n in names if n.split(".")[0] not in sys.stdlib_module_names] == []
