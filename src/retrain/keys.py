"""The fate of every object key found under the landing prefix: the reference for what is taken.

Keys in ``landing/`` are chosen by whoever uploads, so they are untrusted input: a key may try to
climb out of its prefix (``landing/../raw/x.csv``), carry characters that break logs, reports or a
local file system, or be too long to fit under a destination partition. Every key gets exactly one
fate, decided here and nowhere else (the landing trigger and the ingest routing both call
:func:`classify_landing_key`, so they always agree). The first matching rule wins:

1. **ignore**, name ``""``: the key is not under the landing prefix.
2. **ignore**, name ``""``: a folder marker, i.e. the key ends with ``/`` (the prefix itself too).
3. **quarantine**, name ``_unsafe/<sha16>``: the name below the prefix has a ``.`` or ``..``
   segment, an empty segment (``a//b``, or ``/`` right after the prefix), a segment made only of
   spaces, a backslash, a control character (code point < 32 or 127), an invalid surrogate, or any
   other character that ``str.isprintable()`` rejects (e.g. U+202E, the right-to-left override
   that makes ``x<U+202E>vsc.exe`` display as ``xexe.csv``, or a zero-width space).
4. **quarantine**, name ``_too_long/<sha16>[.ext]``: a segment longer than 255 UTF-8 bytes (the
   file-name limit of common file systems) or a name below the prefix longer than
   :data:`MAX_NAME_BYTES` (destination keys add a ~60-byte partition prefix; S3 allows 1024).
5. **ignore**, name ``""``: any segment below the prefix matches one of ``ignore_patterns``
   (``fnmatch``, case-sensitive on every platform; the config's defaults are ``.*``, ``_*``,
   ``*.part``, ``*.tmp``, ``*.crdownload``, ``*.partial``). A temporary or hidden upload stays in
   ``landing/`` untouched and never starts a batch; it is picked up once it is renamed.
6. **quarantine**, name = the name below the prefix: the object is empty (``size == 0``).
7. **process**, name = the name below the prefix, which may contain safe sub-folders
   (``2026/11/a.csv``).

``<sha16>`` is the first 16 hex digits of the SHA-256 of the whole key (UTF-8, surrogates passed
through), so the name depends only on the key: a retried or repeated routing of the same object
always picks the same destination. ``[.ext]`` keeps a ``.csv``, ``.csv.gz`` or ``.parquet`` suffix
so the reader still knows the format. The original key goes into the quarantine report, never into
a key. Every ``name`` that is not ``""`` is a relative path without ``.``, ``..`` or empty
segments, without a leading ``/``, made of printable characters, at most :data:`MAX_NAME_BYTES`
UTF-8 bytes: it can be appended to any destination prefix without leaving it.

Unsafe and too-long keys are checked before the ignore patterns so that a hostile key cannot hide
behind a pattern (the ``.`` of ``landing/./x.csv`` matches ``.*``, yet the key is quarantined).
Unsupported file extensions are not decided here: the reader quarantines them with a precise
reason.

Standard library only: the landing trigger imports this in Airflow's triggerer process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

MAX_NAME_BYTES = 512  # relative name; destination keys add a ~60-byte partition prefix
MAX_SEGMENT_BYTES = 255  # NAME_MAX of ext4, XFS, APFS, NTFS (in UTF-16 units there)
KEPT_EXTENSIONS = (".csv.gz", ".csv", ".parquet")  # longest first

IGNORED_UPLOAD = "temporary or hidden upload name; renamed uploads are picked up"

Action = Literal["process", "ignore", "quarantine"]


@dataclass(frozen=True)
class KeyFate:
    """What happens to one landed key, why, and the safe name it goes under."""

    action: Action
    reason: str  # "" when action == "process"; otherwise one human sentence
    name: str  # safe relative name under raw/ or quarantine/ partitions ("" when ignored)


def classify_landing_key(
    key: str,
    landing_prefix: str,
    ignore_patterns: Sequence[str],
    size: int | None = None,
) -> KeyFate:
    """The fate of ``key`` (see the module docstring for the rules and their order).

    ``size`` is the object's size when known (from a listing); ``None`` skips the empty check.
    """
    if not key.startswith(landing_prefix):
        return KeyFate("ignore", "outside the landing prefix", "")
    rel = key[len(landing_prefix) :]
    if rel == "" or key.endswith("/"):
        return KeyFate("ignore", "a folder marker, not a file", "")
    if problem := unsafe_reason(rel):
        return KeyFate("quarantine", f"unsafe key: {problem}", f"_unsafe/{key_digest(key)}")
    if problem := too_long_reason(rel):
        name = f"_too_long/{key_digest(key)}{_kept_extension(rel)}"
        return KeyFate("quarantine", f"key too long: {problem}", name)
    segments = rel.split("/")
    if any(fnmatchcase(seg, pattern) for seg in segments for pattern in ignore_patterns):
        return KeyFate("ignore", IGNORED_UPLOAD, "")
    if size == 0:
        return KeyFate("quarantine", "empty object (0 bytes)", rel)
    return KeyFate("process", "", rel)


def key_digest(key: str) -> str:
    """16 hex digits naming a key that cannot be used as a name itself."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def unsafe_reason(rel: str) -> str:
    """Why the relative name ``rel`` is unsafe as part of a key or a path, or ``""``."""
    for char in rel:
        code = ord(char)
        if code < 32 or code == 127:
            return f"it contains a control character (U+{code:04X})"
        if 0xD800 <= code <= 0xDFFF:
            return f"it contains an invalid surrogate (U+{code:04X}), so it is not valid UTF-8"
        if char == "\\":
            return "it contains a backslash, a path separator on Windows"
        if not char.isprintable():
            return f"it contains a non-printable character (U+{code:04X})"
    for segment in rel.split("/"):
        if segment == "..":
            return "it has a '..' path segment, which could climb out of its folder"
        if segment == ".":
            return "it has a '.' path segment, which file systems and S3 resolve differently"
        if segment == "":
            return "it has an empty path segment ('//' or '/' right after the prefix)"
        if segment.strip() == "":
            return "it has a path segment made only of spaces"
    return ""


def too_long_reason(rel: str) -> str:
    """Why the (safe) relative name ``rel`` is too long to route, or ``""``."""
    longest = max(len(segment.encode("utf-8")) for segment in rel.split("/"))
    if longest > MAX_SEGMENT_BYTES:
        return f"a path segment has {longest} UTF-8 bytes (at most {MAX_SEGMENT_BYTES})"
    size = len(rel.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return f"the name below the prefix has {size} UTF-8 bytes (at most {MAX_NAME_BYTES})"
    return ""


def _kept_extension(rel: str) -> str:
    for ext in KEPT_EXTENSIONS:
        if rel[-len(ext) :].lower() == ext:
            return rel[-len(ext) :]
    return ""
