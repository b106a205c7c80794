"""The reports' history: every file ever landed and every training-set check, newest first,
in pages of up to PAGE_ROWS rows, so that publishing a batch costs the same on day 1 and day 1000.

::

    reports/history/page-<n>.json   the entries publication n added ("entries"), and the rows
                                    of the publications before it that page n shows too
                                    ("carried": [{"page", "entries"}], newest first)
    reports/history/page-<n>.html   those rows, newest first, linking "older" to the newest
                                    page it does not show
    reports/history/head.json       the newest page's number (a hint; the pages are the truth)

A publication creates the next page (create-only, so two publishers never take the same number)
and never touches an earlier one: pages are immutable. To show many rows per page it carries
the rows of the page before forward, whole publications at a time, newest first, while the page
stays within PAGE_ROWS (its own entries always): one read of the page before, bounded by
PAGE_ROWS, so a batch still uploads its own page, the hint and the index, whatever the history.
Following "older" from the newest page visits every row exactly once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from retrain import reports
from retrain.layout import Layout
from retrain.storage import ObjectNotFound, PreconditionFailed, S3Storage

_ATTEMPTS = 20  # compare-and-swap retries against concurrent publishers
PAGE_ROWS = 100  # rows a page shows, with those carried forward (its own entries: always all)


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
        own = [asdict(e) for e in entries]
        for _ in range(_ATTEMPTS):
            number = self.newest_page() + 1
            carried = self._carry(number - 1, len(own))
            key = self.layout.history_page_key(number, "json")
            body = json.dumps({"page": number, "entries": own, "carried": carried}, indent=1)
            try:
                self.storage.put_bytes(key, body.encode(), if_none_match=True)
            except PreconditionFailed:
                continue  # another publisher took that number: take the next
            rows = own[::-1] + [e for group in carried for e in group["entries"][::-1]]
            oldest = carried[-1]["page"] if carried else number
            page = reports.render_history_page(number, rows, older=oldest - 1)
            html_key = self.layout.history_page_key(number, "html")
            self.storage.put_bytes(html_key, page.encode(), content_type=reports.HTML_CONTENT_TYPE)
            self.storage.put_json(self.layout.history_head_key, {"page": number})
            return [key, html_key, self.layout.history_head_key]
        raise RuntimeError("could not append to the report history: too many concurrent writers")

    def _carry(self, previous: int, own: int) -> list[dict[str, Any]]:
        """The publications before ``previous + 1`` that its page shows too, newest first, whole
        ones while the rows stay within PAGE_ROWS: page ``previous``'s own entries, then what it
        carried itself (one read; nothing when it is missing)."""
        if previous < 0:
            return []
        data = self._read(previous)
        if data is None:
            return []
        groups = [{"page": previous, "entries": list(data.get("entries") or [])}]
        groups += [g for g in data.get("carried") or [] if isinstance(g, dict)]
        out, rows = [], own
        for group in groups:
            rows += len(group["entries"])
            if rows > PAGE_ROWS:
                break
            out.append({"page": int(group["page"]), "entries": group["entries"]})
        return out

    def newest(self, limit: int = 50, *, page: int | None = None) -> list[Entry]:
        """The newest ``limit`` entries, newest first (from as many pages as that takes, using
        the rows each carries), starting from ``page`` when the caller already found it."""
        number = self.newest_page() if page is None else page
        out: list[Entry] = []
        while number >= 0 and len(out) < limit:
            data = self._read(number) or {}
            out += [Entry.of(e) for e in reversed(data.get("entries") or [])]
            carried = [g for g in data.get("carried") or [] if isinstance(g, dict)]
            for group in carried:
                out += [Entry.of(e) for e in reversed(group.get("entries") or [])]
            number = (int(carried[-1]["page"]) if carried else number) - 1
        return out[:limit]

    def page(self, number: int) -> list[Entry]:
        """The entries publication ``number`` added (not those it carries), oldest first."""
        data = self._read(number) or {}
        return [Entry.of(e) for e in data.get("entries", [])]

    def _read(self, number: int) -> dict[str, Any] | None:
        try:
            return self.storage.get_json(self.layout.history_page_key(number, "json"))
        except ObjectNotFound:
            return None

    def newest_page(self) -> int:
        """The newest page's number (-1 when there is none yet)."""
        try:
            number = int(self.storage.get_json(self.layout.history_head_key)["page"])
        except (ObjectNotFound, KeyError, TypeError, ValueError):
            number = -1
        while self.storage.exists(self.layout.history_page_key(number + 1, "json")):
            number += 1
        return number
