from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from retrain import reports

HOSTILE = '<script>alert("x")</script>'
HOSTILE_ATTR = '" onmouseover="alert(1)'


class Collector(HTMLParser):
    """Hrefs, script tags and (row class, cell texts) of every table row."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.scripts = 0
        self.event_attrs: list[str] = []
        self.rows: list[tuple[str, list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        self.event_attrs += [k for k in attr if k.startswith("on")]
        if tag == "script":
            self.scripts += 1
        if tag == "a" and attr.get("href") is not None:
            self.hrefs.append(attr["href"] or "")
        if tag == "tr":
            self.rows.append((attr.get("class") or "", []))
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1][1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> Collector:
    c = Collector()
    c.feed(page)
    c.close()
    return c


def assert_safe(page: str) -> Collector:
    c = parse(page)
    assert c.scripts == 0
    assert c.event_attrs == []
    assert "<script" not in page.lower()
    assert all(not h.lower().startswith("javascript:") for h in c.hrefs)
    return c


def assert_relative(hrefs: list[str]) -> None:
    assert hrefs
    for href in hrefs:
        assert "://" not in href and not href.startswith("/"), href


DRIFT: dict[str, Any] = {
    "threshold": 0.2,
    "features": {
        "tenure_months": 0.05,
        "monthly_charges": 0.45,
        "contract": {"psi": 0.1, "drifted": True},  # explicit flag wins
        HOSTILE: 0.3,
    },
    "reference_version": "20261101T000000Z-aaaaaa",
}


def test_report_keys() -> None:
    keys = reports.report_keys("reports/", "20261122T013000Z-3fa2c1")
    assert keys.decision == "reports/decisions/20261122T013000Z-3fa2c1.html"
    assert keys.drift == "reports/drift/20261122T013000Z-3fa2c1.html"
    assert reports.report_keys("reports", "v1").drift == "reports/drift/v1.html"
    assert reports.index_key("reports/") == "reports/index.html"
    for bad in ("../x", "a/b", HOSTILE, ""):
        with pytest.raises(ValueError):
            reports.report_keys("reports/", bad)


def test_drift_highlights_drifted_features_and_shows_threshold() -> None:
    page = reports.render_drift("v1", DRIFT)
    c = assert_safe(page)
    by_feature = {cells[0]: cls for cls, cells in c.rows if cells and cls}
    assert by_feature["monthly_charges"] == "drifted"
    assert by_feature["contract"] == "drifted"
    assert by_feature[HOSTILE] == "drifted"  # the name came back as text, not markup
    assert by_feature["tenure_months"] == "stable"
    assert "0.200" in page
    ordered = [cells[0] for cls, cells in c.rows if cls]
    assert ordered[0] == "monthly_charges"  # worst first
    assert "20261101T000000Z-aaaaaa" in page


def test_drift_rows_accepts_list_shape() -> None:
    threshold, rows = reports.drift_rows(
        {
            "psi_threshold": 0.1,
            "features": [{"feature": "a", "psi": 0.2}, {"name": "b", "psi": 0.0}],
        }
    )
    assert threshold == 0.1
    assert rows == [("a", 0.2, True), ("b", 0.0, False)]


def test_drift_report_as_dict_shape() -> None:
    """The shape ``retrain.drift.DriftReport.as_dict()`` produces: the ``drifted`` list rules."""
    drift = {
        "psi": {"a": 0.5, "b": 0.25, "c": 0.01},
        "drifted": ["a"],
        "max_psi": 0.5,
        "threshold": 0.2,
    }
    threshold, rows = reports.drift_rows(drift)
    assert threshold == 0.2
    assert rows == [("a", 0.5, True), ("b", 0.25, False), ("c", 0.01, False)]
    classes = {cells[0]: cls for cls, cells in parse(reports.render_drift("v1", drift)).rows if cls}
    assert classes == {"a": "drifted", "b": "stable", "c": "stable"}


def test_decision_as_dict_shape() -> None:
    held = {"deploy": False, "reason": "hold: auc 0.55 < floor 0.6", "challenger_metric": 0.55}
    assert reports.decision_outcome(held) == ("held", "bad")
    assert reports.decision_outcome({"deploy": True}) == ("deployed", "ok")
    assert "hold: auc 0.55" in reports.render_decision("v1", held, {"auc": 0.55}, None, None)


def test_decision_escapes_and_links_relative() -> None:
    decision = {"promoted": False, "reason": f"auc too low {HOSTILE}", "note": HOSTILE_ATTR}
    page = reports.render_decision(
        "v1", decision, {"auc": 0.71, HOSTILE: 1.0}, {"auc": 0.75}, DRIFT
    )
    c = assert_safe(page)
    assert "&lt;script&gt;" in page
    assert "rejected" in page
    assert "-0.0400" in page  # delta challenger - champion
    assert "../drift/v1.html" in c.hrefs and "../index.html" in c.hrefs
    assert_relative(c.hrefs)


def test_decision_without_champion_or_drift() -> None:
    page = reports.render_decision("v1", {"promoted": True}, {"auc": 0.8}, None, None)
    c = assert_safe(page)
    assert "promoted" in page and "No champion yet" in page
    assert not any("drift/" in h for h in c.hrefs)


def test_validation_summary_escapes_and_filters_links() -> None:
    entries = [
        {
            "file": "good.csv",
            "status": "passed",
            "result": "validations/b1/run1.json",
        },
        {
            "file": f"evil{HOSTILE}.csv",
            "status": "quarantined",
            "reason": HOSTILE_ATTR,
            "result": "javascript:alert(1)",
        },
        {"file": "abs.csv", "status": "quarantined", "result": "https://docs.example/x"},
    ]
    page = reports.render_validation_summary(entries)
    c = assert_safe(page)
    assert "../validations/b1/run1.json" in c.hrefs
    assert "https://docs.example/x" in c.hrefs
    assert "javascript" not in page.lower()
    assert "1 passed, 2 quarantined" in page
    files = [cells[0] for _, cells in c.rows[1:]]
    assert files == ["good.csv", f"evil{HOSTILE}.csv", "abs.csv"]


class FakeStorage:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str | None]] = {}

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None, **_: Any) -> str:
        self.objects[key] = (data, content_type)
        return '"etag"'


def test_publish_index_links_everything_relatively() -> None:
    store = FakeStorage()
    key = reports.publish_index(
        store,  # type: ignore[arg-type]
        "reports/",
        champion={
            "version": "v2",
            "deployed_at": "2026-11-22T01:30:00+00:00",
            "metrics": {"auc": 0.8},
        },
        latest_decisions=[
            {"version": "v2", "promoted": True, "reason": "better", "drift": True},
            {"version": "v1", "promoted": False, "reason": HOSTILE},
        ],
        latest=[
            {
                "at": "2026-11-30T10:00:00+00:00",
                "kind": "file",
                "name": "landing/a.csv",
                "status": "passed",
                "link": "validations/b/a.html",
            }
        ],
        history_page="history/page-000000.html",
    )
    assert key == "reports/index.html"
    data, ctype = store.objects[key]
    assert ctype == "text/html; charset=utf-8"
    page = data.decode()
    c = assert_safe(page)
    assert_relative(c.hrefs)
    for href in (
        "decisions/v2.html",
        "drift/v2.html",
        "decisions/v1.html",
        "validations/b/a.html",
        "history/page-000000.html",
    ):
        assert href in c.hrefs
    assert "drift/v1.html" not in c.hrefs  # no drift page claimed for v1


def test_index_without_anything_yet() -> None:
    page = reports.render_index(champion=None, latest_decisions=[], latest=[])
    assert "No champion deployed yet" in page and "No retraining runs yet" in page
    assert parse(page).hrefs == []
