"""Quoting values from landed files in reasons and reports without copying them whole.

Dependency-free: the report pages (served by the api-server plugin) import it too.
"""

from __future__ import annotations

import re

SHOWN_CHARS = 80  # of a name or value quoted in a reason


_CUT = re.compile(r"\.\.\. \([\d,]+ characters\)$")


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``value`` as text of at most ~``limit`` characters, saying how long it really was."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit or (len(text) <= limit + 32 and _CUT.search(text)):
        return text  # short, or cut already
    return f"{text[:limit]}... ({len(text):,} characters)"
