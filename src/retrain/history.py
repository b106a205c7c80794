"""The reports' history: every file ever landed and every training-set check, newest first,
one page per publication, so that publishing a batch costs the same on day 1 and day 1000.

::

    reports/history/page-<n>.json   the entries one publication added (a batch, a check)
    reports/history/page-<n>.html   the same, newest first, linking to page n-1 ("older")
    reports/history/head.json       the newest page's number (a hint; the pages are the truth)

A publication creates the next page (create-only, so two publishers never take the same number)
and never touches an earlier one: pages are immutable, and a batch uploads its own page, the
hint and the index, whatever the history. Readers start from the newest page (found from the
hint by probing upwards) and follow "older".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from retrain import reports
from retrain.layout import Layout
from retrain.storage import ObjectNotFound, PreconditionFailed, S3Storage

_ATTEMPTS = 20  # compare-and-swap retries against concurrent publishers


@dataclass(frozen=True)
class Entry:
    """One line of the history."""

    at: str  # ISO 8601, UTC
    kind: str  # "file" or "training set"
    name: str
    status: str  # "passed", "quarantined", "rejected", ...
    reason: str = ""
    link: str | None = None  # relative to the reports root: the validation page or report
    batch: str = ""

    @classmethod
    def of(cls, data: dict[str, Any]) -> Entry:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


class History:
    def __init__(self, storage: S3Storage, layout: Layout) -> None:
        self.storage, self.layout = storage, layout

    def append(self, entries: list[Entry]) -> list[str]:
        """Publish ``entries`` (in order) as the next page; return the keys written."""
        if not entries:
            return []
        for _ in range(_ATTEMPTS):
            number = self.newest_page() + 1
            key = self.layout.history_page_key(number, "json")
            body = json.dumps({"page": number, "entries": [asdict(e) for e in entries]}, indent=1)
            try:
                self.storage.put_bytes(key, body.encode(), if_none_match=True)
            except PreconditionFailed:
                continue  # another publisher took that number: take the next
            page = reports.render_history_page(number, [asdict(e) for e in reversed(entries)])
            html_key = self.layout.history_page_key(number, "html")
            self.storage.put_bytes(html_key, page.encode(), content_type=reports.HTML_CONTENT_TYPE)
            self.storage.put_json(self.layout.history_head_key, {"page": number})
            return [key, html_key, self.layout.history_head_key]
        raise RuntimeError("could not append to the report history: too many concurrent writers")

    def newest(self, limit: int = 50, *, page: int | None = None) -> list[Entry]:
        """The newest ``limit`` entries, newest first (from as many pages as that takes),
        starting from ``page`` when the caller already found the newest one."""
        number = self.newest_page() if page is None else page
        out: list[Entry] = []
        while number >= 0 and len(out) < limit:
            out += list(reversed(self.page(number)))
            number -= 1
        return out[:limit]

    def page(self, number: int) -> list[Entry]:
        try:
            data = self.storage.get_json(self.layout.history_page_key(number, "json"))
        except ObjectNotFound:
            return []
        return [Entry.of(e) for e in data.get("entries", [])]

    def newest_page(self) -> int:
        """The newest page's number (-1 when there is none yet)."""
        try:
            number = int(self.storage.get_json(self.layout.history_head_key)["page"])
        except (ObjectNotFound, KeyError, TypeError, ValueError):
            number = -1
        while self.storage.exists(self.layout.history_page_key(number + 1, "json")):
            number += 1
        return number
