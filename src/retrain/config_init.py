"""Draft a ``retrain.toml`` from a sample of the user's own data (``retrain init --from-sample``).

Writing ``[dataset.columns]`` by hand (dtypes, categories, ranges, which columns to keep out of the
drift rule) is what every new user does first. The draft infers it from a sample with rules chosen
so that the raw checkpoint accepts the sample it came from (each dtype as
:func:`retrain.tables.coerce_types` and :mod:`validation.suites` check it), and says where it
guessed: each guess and decision is a note in :attr:`Draft.notes` and a comment in the TOML.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import StorageConfig, ValidationConfig
from retrain.tables import PARQUET_SUFFIXES, UnreadableFile, as_text, iter_table, parse_timestamps

DEFAULT_MAX_ROWS = 200_000
MAX_CATEGORIES = 50  # text with at most this many distinct values...
MAX_CATEGORY_SHARE = 0.5  # ...and at most this many per non-null value is a category
RANGE_MARGIN = 0.1  # min/max: the sample's range widened by this share of it on each side
MISSING_MARGIN = 0.05  # a column's own max_missing_fraction: the sample's share plus this
MIN_ID_LIKE_ROWS = 20  # fewer values are unique by chance, not by design
YEARS = (1900, 2100)
# What pandas reads as booleans in a CSV: ingest reads a category column as text, as written.
BOOL_SPELLINGS = ("FALSE", "False", "TRUE", "True", "false", "true")
# Calendar parts, as the end of an int column's name (day_of_week however written, else the last
# word: dep_hour), with the values they can take: a month's sample holds one month, and its range
# would reject the next. A year has no such bounds.
_CALENDAR_COMPOUNDS = {"dayofweek": (0, 7), "dayofmonth": (1, 31), "dayofyear": (1, 366)}
_CALENDAR_WORDS = {"weekday": (0, 7), "dow": (0, 7), "dom": (1, 31), "doy": (1, 366)}
_CALENDAR_WORDS |= {"month": (1, 12), "day": (1, 31), "week": (0, 53), "quarter": (1, 4)}
_CALENDAR_WORDS |= {"hour": (0, 23), "minute": (0, 59), "weekofyear": (0, 53), "year": None}
_TIME_WORDS = frozenset({"time", "date", "ts", "at", "timestamp", "datetime", "dt"})
_FLAG_TEXT = frozenset({"yes", "no", "y", "n", "true", "false", "t", "f"})
_TIME_OF_DAY = re.compile(r"^\s*\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_HEADER = """\
# Drafted by `retrain init --from-sample` from {source} ({rows:,} rows).
# Review every line; then `retrain config check` and `retrain config check --sample {sample}`.
# nullable = false: nothing was missing in the sample; min/max: its range widened by {margin:.0%}
# each side; categories: every value seen. Sections left out ([validation], [ingest], [training],
# [gate], [drift], ...) take their defaults: README.md, "Bring your own dataset", has every key."""

Attrs = list[tuple[str, Any]]


class DraftError(ValueError):
    """The sample cannot give a usable config; the message says what is missing and why."""


@dataclass(frozen=True)
class Draft:
    """A drafted config: the TOML text (comments included) and what it decided."""

    toml: str
    dataset: str
    id_column: str
    time_column: str
    target: str
    notes: tuple[str, ...]  # guesses and decisions to review, one line each (also in the TOML)
    rows: int  # rows sampled


@dataclass(frozen=True)
class _Profile:
    """What the sample says about one column."""

    name: str
    position: int
    kind: str  # "int", "float", "datetime", "category", "string" or "flag" (true/false)
    rows: int
    missing: int
    unique: bool = False  # never missing and every value distinct
    low: float | None = None  # numbers: the finite min and max, and the mean
    high: float | None = None
    mean: float | None = None
    values: tuple[str, ...] = ()  # a category's sorted distinct values
    distinct: int = 0
    mostly_numbers: bool = False  # text, mostly numbers: placeholders like "n/a" in a number?

    @property
    def binary(self) -> bool:
        return self.kind == "int" and self.low is not None and {self.low, self.high} <= {0, 1}


def draft_config(sample: pd.DataFrame, *, name: str, source_name: str) -> Draft:
    """Draft a config for data like ``sample`` (``source_name``: the file it came from, for the
    header and the preferred file format). :class:`DraftError` if a role has no candidate."""
    return _draft(sample, name=name, source_name=source_name, cut=False)


def draft_from_file(
    path: Path, *, name: str | None = None, max_rows: int = DEFAULT_MAX_ROWS
) -> Draft:
    """Draft a config from the first ``max_rows`` rows of a CSV, CSV.gz or Parquet file.

    Parsed as ingest parses a landed file (:func:`retrain.tables.iter_table`, the chunked
    :func:`retrain.tables.read_table`), reading only the rows sampled: memory follows
    ``max_rows``, not the file. ``name`` defaults to a slug of the file's stem. A file ingest
    could not read is a :class:`DraftError` with ingest's reason.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    path = Path(path)
    frames, rows = [], 0
    try:
        chunks = iter_table(path, path.name, None, max_rows + 1)
        for chunk in chunks:  # one chunk, unless a Parquet row group ends first
            frames.append(chunk)
            rows += len(chunk)
            if rows > max_rows:
                break
        getattr(chunks, "close", lambda: None)()
    except UnreadableFile as exc:  # ingest would quarantine it too
        raise DraftError(f"cannot read the sample: {exc.reason}") from exc
    sample = frames[0] if len(frames) == 1 else pd.concat(frames)
    stem = re.sub(r"\.(csv|csv\.gz|parquet)$", "", path.name, flags=re.IGNORECASE)
    return _draft(
        sample.iloc[:max_rows], name=name or slug(stem), source_name=path.name, cut=rows > max_rows
    )


def slug(text: str) -> str:
    """Lowercase letters, digits and underscores (``"dataset"`` if nothing is left)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "dataset"


def bucket_name(dataset: str) -> str:
    """``retrain-<dataset>``, a valid S3 bucket name (lowercase, hyphens, 3-63 characters)."""
    return f"retrain-{slug(dataset).replace('_', '-')}"[:63].rstrip("-")


def _draft(sample: pd.DataFrame, *, name: str, source_name: str, cut: bool) -> Draft:
    if sample.columns.empty or sample.empty:
        raise DraftError("the sample has no rows or no columns: a draft infers types from data")
    names = [str(c) for c in sample.columns]
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise DraftError(f"column names repeat: {repeated} (each column needs its own name)")
    profiles = [_profile(sample.iloc[:, i], n, i) for i, n in enumerate(names)]
    time, time_notes = _pick_time(profiles)
    target, target_notes = _pick_target(profiles, exclude={time.name})
    ident, id_notes = _pick_id(profiles, exclude={time.name, target.name})
    roles = {
        "id_column": (ident.name, id_notes),
        "time_column": (time.name, time_notes),
        "target": (target.name, target_notes),
    }
    if len(profiles) == len(roles):
        raise DraftError(
            f"no feature columns besides id {ident.name!r}, time {time.name!r} and target "
            f"{target.name!r}: the model needs input columns"
        )
    columns = [_column(p, ident.name, time.name, target.name) for p in profiles]
    general = []
    if cut:
        general.append(f"sample: the first {len(sample):,} rows; ranges and categories are theirs")
    if len(sample) < ValidationConfig.min_rows:
        general.append(
            f"only {len(sample)} rows sampled: a file needs at least "
            f"{ValidationConfig.min_rows} ([validation] min_rows)"
        )
    notes = general + [n for _, ns in roles.values() for n in ns]
    notes += [n for _, _, column_notes in columns for n in column_notes]
    return Draft(
        toml=_render(name, source_name, len(sample), general, roles, columns),
        dataset=name,
        id_column=ident.name,
        time_column=time.name,
        target=target.name,
        notes=tuple(_one_line(n) for n in notes),
        rows=len(sample),
    )


# --- profiling -----------------------------------------------------------------------------


def _profile(values: pd.Series, name: str, position: int) -> _Profile:
    present = values.dropna()
    base: dict[str, Any] = {"name": name, "position": position, "rows": len(values)}
    base["missing"] = len(values) - len(present)
    if present.empty:  # nothing to infer from but the pandas dtype
        return _Profile(kind="float" if _is_number(values) else "string", **base)
    base["unique"] = not base["missing"] and present.is_unique
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.infer_dtype(present) == "boolean":
        return _Profile(kind="flag", distinct=present.nunique(), **base)
    if _is_number(values):
        numbers = present.to_numpy(dtype=np.float64)
        finite = numbers[np.isfinite(numbers)]
        integral = len(finite) == len(numbers) and bool(np.all(np.mod(finite, 1) == 0))
        low, high = (float(finite.min()), float(finite.max())) if len(finite) else (None, None)
        if values.dtype.kind in "iu":  # exact, also beyond 2**53
            low, high = int(present.min()), int(present.max())
        mean = float(finite.mean()) if len(finite) else None
        kind = "int" if integral else "float"
        return _Profile(kind=kind, low=low, high=high, mean=mean, **base)
    if pd.api.types.is_datetime64_any_dtype(values.dtype) or _parses_as_time(present):
        return _Profile(kind="datetime", **base)
    texts = as_text(present)
    distinct = texts.unique()
    category = len(distinct) <= MAX_CATEGORIES and len(distinct) <= MAX_CATEGORY_SHARE * len(texts)
    numeric = pd.to_numeric(texts, errors="coerce").notna().mean()
    return _Profile(
        kind="category" if category else "string",
        values=tuple(sorted(distinct)) if category else (),
        distinct=len(distinct),
        mostly_numbers=bool(0.5 <= numeric < 1),
        **base,
    )


def _is_number(values: pd.Series) -> bool:
    return values.dtype.kind in "iuf" and not pd.api.types.is_bool_dtype(values.dtype)


def _parses_as_time(present: pd.Series) -> bool:
    """Every value parses as :func:`retrain.tables.parse_timestamps` parses it at ingest.

    Text must hold a digit and a non-digit and not be a bare time of day: ``"2024"`` and
    ``"10:30"`` parse (the latter as today) but are no event times. Distinct values only, a few
    first, so a text column that is not a time costs little.
    """
    distinct = pd.Series(present.unique(), dtype=object)
    for probe in (distinct.iloc[:100], distinct):
        texts = probe[probe.map(lambda v: isinstance(v, str))]
        if not (texts.str.contains(r"\d").all() and texts.str.contains(r"\D").all()):
            return False
        if len(texts) and texts.str.match(_TIME_OF_DAY).all():
            return False
        if parse_timestamps(probe)[1].any():
            return False
    return True


# --- roles ---------------------------------------------------------------------------------


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    return [t for t in re.split(r"[^a-z0-9]+", spaced) if t] or [""]


def _id_score(p: _Profile) -> tuple[int, ...]:
    tokens, low = _tokens(p.name), p.name.lower()
    if low == "id" or tokens[-1] == "id":
        return (2 if low == "id" else 1,)
    return (int(low.endswith("id") or "key" in tokens) - 1,)


def _time_score(p: _Profile) -> tuple[int, ...]:
    low = p.name.lower()
    return (int(bool(_TIME_WORDS & set(_tokens(p.name))) or "time" in low or "date" in low),)


def _target_score(p: _Profile) -> tuple[int, ...]:
    """By name (target, label, ...; then *target*, *label*; then is_*, has_*, *_flag, churn*,
    delayed), then columns holding both 0 and 1 first."""
    tokens = _tokens(p.name)
    if p.name.lower() in ("target", "label", "y", "class", "outcome"):
        score = 3
    elif {"target", "label", "outcome", "class"} & set(tokens):
        score = 2
    else:
        named = tokens[0] in ("is", "has") or tokens[-1] == "flag" or "delayed" in tokens
        score = int(named or any(t.startswith("churn") for t in tokens))
    return score, int(p.low != p.high)


def _choose(
    role: str, candidates: list[_Profile], score: Callable[[_Profile], tuple[int, ...]], why: str
) -> tuple[_Profile, list[str]]:
    """The best candidate by name (then column order), why, and any alternatives: uncertain."""
    ranked = sorted(candidates, key=lambda p: (tuple(-s for s in score(p)), p.position))
    best, others = ranked[0], [_key(p.name) for p in ranked[1:]]
    notes = [f"{role} = {_key(best.name)}: {why}"]
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        notes.append(f"uncertain: {role} = {_key(best.name)} (best by name); also fit: {shown}")
    return best, notes


def _pick_time(profiles: list[_Profile]) -> tuple[_Profile, list[str]]:
    candidates = [p for p in profiles if p.kind == "datetime" and not p.missing]
    if candidates:
        return _choose("time_column", candidates, _time_score, "timestamps, never missing")
    hints = [
        f"; {_key(p.name)} parses as timestamps but has missing values (every row needs a time)"
        for p in profiles
        if p.kind == "datetime"
    ] + [
        f"; {_key(p.name)} holds numbers (an epoch is ambiguous: write timestamps as text such as "
        "2024-01-31T12:00:00, or as a datetime column)"
        for p in profiles
        if p.kind in ("int", "float") and _time_score(p)[0]
    ]
    raise DraftError(
        "no datetime column: the pipeline orders rows by a time column for the holdout and the "
        "windows; add one (e.g. the event or load time)" + "".join(hints)
    )


def _pick_target(profiles: list[_Profile], exclude: set[str]) -> tuple[_Profile, list[str]]:
    usable = [p for p in profiles if p.name not in exclude]
    if candidates := [p for p in usable if p.binary and not p.missing]:
        best, notes = _choose("target", candidates, _target_score, "0/1, never missing")
        share, limits = best.mean or 0.0, ValidationConfig
        low, high = limits.training_min_positive_fraction, limits.training_max_positive_fraction
        notes[0] += f", {share:.1%} positive in the sample"
        if not low <= share <= high:
            notes[0] += f" (training needs {low:.0%}..{high:.0%}: [validation] training_*)"
        return best, notes
    hints = [
        f"; {_key(p.name)} holds {'true/false' if p.kind == 'flag' else '/'.join(p.values)}: "
        "convert it to 1/0 in your files"
        for p in usable
        if p.kind == "flag" or (p.values and {v.strip().lower() for v in p.values} <= _FLAG_TEXT)
    ] + [
        f"; {_key(p.name)} is 0/1 but has missing labels (a row without one cannot be trained on)"
        for p in usable
        if p.binary and p.missing
    ]
    raise DraftError(
        "no 0/1 column for the target: the pipeline trains a binary classifier and needs an int "
        "column of 0 and 1, never missing" + "".join(hints)
    )


def _pick_id(profiles: list[_Profile], exclude: set[str]) -> tuple[_Profile, list[str]]:
    kinds = ("int", "category", "string")
    candidates = [p for p in profiles if p.unique and p.kind in kinds and p.name not in exclude]
    if not candidates:
        raise DraftError(
            "no id column: the pipeline needs a column whose values are unique and never missing "
            "(ids are checked unique in each file and across files, [ingest] duplicate_ids); add "
            "one (e.g. a row or event id)"
        )
    why = "unique and never missing; dtype string (ids compare as text)"
    return _choose("id_column", candidates, _id_score, why)


# --- columns -------------------------------------------------------------------------------


def _column(p: _Profile, ident: str, time: str, target: str) -> tuple[str, Attrs, list[str]]:
    """A column's entry: its name, its attributes in order, and its notes."""
    roles = {ident: [("dtype", "string")], time: [("dtype", "datetime")]}
    roles[target] = [("dtype", "int"), ("min", 0), ("max", 1)]
    if p.name in roles:
        return p.name, [*roles[p.name], ("nullable", False)], []
    key, notes = _key(p.name), []
    attrs: Attrs = [("dtype", "category" if p.kind == "flag" else p.kind)]
    if p.kind in ("int", "float") and p.low is not None:
        attrs += list(zip(("min", "max"), _range(p), strict=True))
    if p.kind == "category":
        attrs.append(("categories", list(p.values)))
    elif p.kind == "flag":
        attrs.append(("categories", list(BOOL_SPELLINGS)))
        notes.append(
            f"{key}: true/false: a category of the spellings pandas reads as booleans (ingest "
            "reads the column as text); keep the ones your files use"
        )
    elif p.kind == "string" and p.missing < p.rows:
        notes.append(
            f"{key}: text with {p.distinct:,} distinct values: dtype string, not a model feature "
            "(no fixed category list)"
        )
    elif p.kind == "datetime":
        notes.append(f"{key}: a datetime besides the time column: checked, not a model feature")
    default = ValidationConfig.max_missing_fraction
    share = p.missing / p.rows
    limit = min(1.0, math.ceil(round((share + MISSING_MARGIN) * 100, 6)) / 100)
    if not p.missing:
        attrs.append(("nullable", False))
    elif limit > default:
        attrs.append(("max_missing_fraction", limit))
        notes.append(
            f"{key}: {share:.0%} missing in the sample (the default allows {default:.0%}): "
            f"max_missing_fraction = {limit}"
            + (f"; dtype {attrs[0][1]} is a guess" if p.missing == p.rows else "")
        )
    if p.mostly_numbers:
        notes.append(
            f"{key}: mostly numbers, with some text: if that text marks missing values, write "
            "empty cells instead and draft again"
        )
    if reason := _no_drift_reason(p):
        attrs.append(("drift", False))
        notes.append(f"{key}: drift = false ({reason})")
    return p.name, attrs, notes


def _calendar_part(name: str) -> tuple[str, tuple[int, int] | None] | None:
    """The calendar part a column's name says it is (``dep_hour``: hour) and its bounds."""
    tokens = _tokens(name)
    for part, bounds in _CALENDAR_COMPOUNDS.items():
        if "".join(tokens).endswith(part):
            return part, bounds
    return (tokens[-1], _CALENDAR_WORDS[tokens[-1]]) if tokens[-1] in _CALENDAR_WORDS else None


def _no_drift_reason(p: _Profile) -> str | None:
    """Why a column moves by design (shown on the drift page, never counted), or None."""
    if p.kind == "int" and not p.binary:
        if calendar := _calendar_part(p.name):
            if calendar[0] == "year":
                return "calendar part: grows every year by design"
            return "calendar part: its distribution follows the calendar, not the data"
        if p.low is not None and YEARS[0] <= p.low and p.high <= YEARS[1]:
            return f"values all look like years ({YEARS[0]}..{YEARS[1]}): grow by design"
    if p.unique and p.kind in ("int", "category", "string") and p.rows >= MIN_ID_LIKE_ROWS:
        return "id-like: unique per row"
    return None


def _range(p: _Profile) -> tuple[int | float, int | float]:
    """0..1 for a 0/1 column; a calendar part's values if the sample is within them (0- or
    1-based); else the sample's range widened by RANGE_MARGIN each side (not below 0 if the
    sample is not), rounded outwards to two significant digits of its width."""
    assert p.low is not None and p.high is not None
    if p.binary:
        return 0, 1
    natural = (_calendar_part(p.name) or ("", None))[1] if p.kind == "int" else None
    if natural and natural[0] - 1 <= p.low and p.high <= natural[1]:
        return min(natural[0], int(p.low)), natural[1]
    span = float(p.high) - float(p.low)
    margin = RANGE_MARGIN * span if span > 0 else max(abs(float(p.high)) * RANGE_MARGIN, 1.0)
    lo, hi = p.low - margin, p.high + margin
    lo = max(lo, 0.0) if p.low >= 0 else lo
    step = Decimal(10) ** (math.floor(math.log10(hi - lo)) - 1)
    step = max(step, Decimal(1)) if p.kind == "int" else step
    bounds = [
        (Decimal(v) / step).to_integral_value(rounding) * step
        for v, rounding in ((lo, ROUND_FLOOR), (hi, ROUND_CEILING))
    ]
    low, high = (int(b) if b == b.to_integral_value() else float(b) for b in bounds)
    return low, high


# --- TOML ----------------------------------------------------------------------------------


def _string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except DEL, which TOML wants escaped."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(name: str) -> str:
    """A TOML key: bare if it can be, else quoted."""
    return name if _BARE_KEY.match(name) else _string(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return repr(value)


def _one_line(text: str) -> str:
    """Text safe in a TOML comment (no control characters but tab)."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", text)


def _render(
    name: str,
    source: str,
    rows: int,
    general: list[str],
    roles: dict[str, tuple[str, list[str]]],
    columns: list[tuple[str, Attrs, list[str]]],
) -> str:
    def comments(notes: list[str]) -> list[str]:
        return [f"# {_one_line(n)}" for n in notes]

    shown = _one_line(source) or "FILE"
    header = _HEADER.format(source=shown, rows=rows, sample=shown, margin=RANGE_MARGIN)
    lines = [header, *comments(general), "", "[dataset]", f"name = {_string(name)}"]
    for role, (column, notes) in roles.items():
        lines += [*comments(notes), f"{role} = {_string(column)}"]
    fmt = "parquet" if source.lower().endswith(PARQUET_SUFFIXES) else "csv"
    formats = [fmt, "csv" if fmt == "parquet" else "parquet"]
    lines += [f"file_formats = {_value(formats)}", "", "[dataset.columns]"]
    width = min(24, max(len(_key(c)) for c, _, _ in columns))
    for column, attrs, notes in columns:
        body = ", ".join(f"{k} = {_value(v)}" for k, v in attrs)
        lines += [*comments(notes), f"{_key(column):<{width}} = {{ {body} }}"]
    lines += ["", "[storage]"]
    for fld in dataclasses.fields(StorageConfig):
        value = bucket_name(name) if fld.name == "bucket" else getattr(StorageConfig, fld.name)
        lines.append(f"{fld.name} = {_string(value)}")
    return "\n".join(lines) + "\n"
