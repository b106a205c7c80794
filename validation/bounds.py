"""What a validation result may quote from the data, and reasons about a file's header.

A result quotes values (failing examples, column names, GX's observed values); all of it travels
into reasons, quarantine reports, result pages, claims and XComs. A 20 MB cell once became a
100 MB result, a 60 MB quarantine report and the same value in the claim and the XCom, so
everything quoted is bounded here: a value or name to SHOWN_CHARS characters, a list to
LIST_ITEMS items (the number left out beside it as ``<key>_omitted``), an exception's text to
MESSAGE_CHARS.
"""

from __future__ import annotations

from typing import Any

from retrain.clip import SHOWN_CHARS, shown

LIST_ITEMS = 20
MESSAGE_CHARS = 2000
_NAMES = 10  # column names quoted in a reason


def column_set_reason(mismatched: dict[str, Any], configured: list[str]) -> str:
    """Why the columns do not match, with advice only where it helps: extra_columns = "ignore"
    when every configured column is there; else what the header looks like (another
    separator, JSON, names in another case)."""
    extra, missing = mismatched.get("unexpected") or [], mismatched.get("missing") or []
    names = _names(extra, mismatched.get("unexpected_omitted", 0))
    if not missing:
        return (
            f"unexpected column(s) {names} (not in the config; "
            'set [validation] extra_columns = "ignore" to drop them)'
        )
    if looks := _header_looks(extra, configured):
        return f"the header {looks}"
    return f"unexpected column(s) {names}, and configured column(s) missing"


def _header_looks(extra: list[Any], configured: list[str]) -> str | None:
    texts = [e for e in extra if isinstance(e, str)]
    wanted = {c.strip().lower(): c for c in configured}
    for sep, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        for name in texts:
            parts = [p.strip().strip('"').lower() for p in name.split(sep)]
            if len(parts) > 1 and sum(p in wanted for p in parts) >= 2:
                return (
                    f"separates its columns with {what}, not commas: one column named "
                    f"{quoted(name)}; save the file comma-separated"
                )
    if any(t.lstrip().startswith(("{", "[")) for t in texts):
        return "looks like JSON, not CSV: export the data as CSV"
    case = {t: wanted[t.strip().lower()] for t in texts if t.strip().lower() in wanted}
    if case:
        pairs = ", ".join(f"{quoted(t)} for {quoted(c)}" for t, c in list(case.items())[:_NAMES])
        return (
            f"names columns in another case or with spaces ({pairs}): "
            "rename them as in the config (names are case-sensitive)"
        )
    return None


def _names(values: list[Any], omitted: int = 0) -> str:
    """Column names as ``['a', 'b', ... and 12 more]``, each cut to SHOWN_CHARS."""
    more = len(values) - _NAMES + omitted
    listed = ", ".join(quoted(v) for v in values[:_NAMES])
    return f"[{listed}{f', ... and {more:,} more' if more > 0 else ''}]"


def quoted(value: Any) -> str:
    """``repr`` of a value quoted in a reason, cut to ~SHOWN_CHARS characters."""
    if isinstance(value, str):
        return repr(shown(value))
    return shown(repr(value))


def bounded(value: Any, chars: int = SHOWN_CHARS) -> Any:
    """``value`` (JSON-like) with every string cut to ``chars`` characters and every list to
    LIST_ITEMS items, the number left out recorded beside it as ``<key>_omitted``."""
    if isinstance(value, str):
        return shown(value, chars)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(item, list) and len(item) > LIST_ITEMS:
                out[f"{key}_omitted"] = len(item) - LIST_ITEMS
                item = item[:LIST_ITEMS]
            out[key] = bounded(item, chars)
        return out
    if isinstance(value, list | tuple):
        return [bounded(item, chars) for item in value[:LIST_ITEMS]]
    return value


def bounded_item(item: dict[str, Any]) -> dict[str, Any]:
    """One GX expectation result with what it quotes from the data bounded (the expectation's
    configuration is the user's config: kept as is)."""
    out = dict(item)
    if "result" in out:
        out["result"] = bounded(out["result"] or {})
    if "exception_info" in out:
        out["exception_info"] = bounded(out["exception_info"] or {}, MESSAGE_CHARS)
    return out
