from __future__ import annotations

import html
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict
from html.parser import HTMLParser
from typing import Any

import pytest
from jinja2 import meta

from retrain import report_index, reports, run_pages
from retrain.config import DriftConfig, GateConfig
from retrain.decision import Evidence, decide
from retrain.evaluation import Comparison

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


def test_decision_says_when_the_challenger_learned_from_a_sample() -> None:
    record = {"training_rows": 20_000_000, "n_train": 2_270_000, "sampled_from": 16_000_000}
    sampled = reports.render_decision(
        "v1", record | {"memory": {"budget_mb": 1024}}, {}, None, None
    )
    assert "seeded sample of 2270000 of its 16000000 training rows" in sampled
    assert "1024 MB" in sampled
    whole = reports.render_decision("v1", record | {"sampled_from": 0}, {}, None, None)
    assert "seeded sample" not in whole


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
    key = report_index.publish_index(
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
    page = report_index.render_index(champion=None, latest_decisions=[], latest=[])
    assert "No champion deployed yet" in page and "No retraining runs yet" in page
    assert parse(page).hrefs == []


def test_history_page_links_backwards_only() -> None:
    entries = [
        {
            "at": "t2",
            "kind": "file",
            "name": "landing/b.csv",
            "status": "quarantined",
            "link": "validations/b/b.html",
            "reason": "not unique",
        },
        {"at": "t1", "kind": "training", "name": "run1", "status": "passed", "link": None},
    ]
    first = parse(reports.render_history_page(0, entries))
    assert first.hrefs == ["../index.html", "../validations/b/b.html"]
    assert [cells[2] for _, cells in first.rows[1:]] == ["landing/b.csv", "run1"]
    third = parse(reports.render_history_page(2, []))
    assert third.hrefs == ["../index.html", "page-000001.html"]


def test_validation_result_lists_expectations() -> None:
    result = {
        "success": False,
        "summary": "1 of 2 expectations failed",
        "suite": "raw",
        "result": {
            "results": [
                {
                    "success": True,
                    "expectation_config": {
                        "type": "expect_column_to_exist",
                        "kwargs": {"column": "id", "batch_id": "hidden"},
                    },
                    "result": {"observed_value": 7},
                },
                {
                    "success": False,
                    "expectation_config": {"type": "expect_column_values_to_be_unique"},
                    "result": {"unexpected_count": 3, "partial_unexpected_list": [1, 1, 2]},
                },
            ]
        },
    }
    page = reports.render_validation_result(result, ["landing/a.csv"], root="../")
    c = assert_safe(page)
    assert c.hrefs == ["../index.html"]
    assert c.rows[1:] == [
        ("", ["ok", "expect_column_to_exist", '{"column": "id"}', "7", ""]),
        ("", ["failed", "expect_column_values_to_be_unique", "{}", "3", "1, 2"]),
    ]
    assert "1 file(s): landing/a.csv" in page and "hidden" not in page


# Every page kind, fed HOSTILE wherever a caller's text ends up on the page.
PAGES: dict[str, Callable[[], str]] = {
    "decision": lambda: reports.render_decision(
        HOSTILE,
        {"promoted": False, "reason": HOSTILE, "note": HOSTILE_ATTR, "extra": [HOSTILE]},
        {HOSTILE: 1.0},
        {HOSTILE: 0.5},
        DRIFT,
    ),
    "drift": lambda: reports.render_drift(HOSTILE, {**DRIFT, "note": HOSTILE_ATTR}),
    "validation_summary": lambda: reports.render_validation_summary(
        [{"file": HOSTILE, "status": HOSTILE, "reason": HOSTILE_ATTR, "result": HOSTILE}]
    ),
    "history_page": lambda: reports.render_history_page(
        1,
        [
            {
                "at": HOSTILE,
                "kind": HOSTILE,
                "name": HOSTILE,
                "status": HOSTILE,
                "link": "javascript:alert(1)",
                "reason": HOSTILE_ATTR,
            },
        ],
    ),
    "validation_result": lambda: reports.render_validation_result(
        {
            "success": True,
            "summary": HOSTILE,
            "suite": HOSTILE_ATTR,
            "result": {
                "results": [
                    {
                        "success": False,
                        "expectation_config": {"type": HOSTILE, "kwargs": {"column": HOSTILE}},
                        "result": {"observed_value": HOSTILE, "partial_unexpected_list": [HOSTILE]},
                    }
                ]
            },
        },
        [HOSTILE],
    ),
    "index": lambda: report_index.render_index(
        champion={
            "version": HOSTILE,
            "deployed_at": HOSTILE_ATTR,
            "reason": HOSTILE,
            "metrics": {HOSTILE: {"nested": HOSTILE}},
        },
        latest_decisions=[{"version": HOSTILE, "outcome": HOSTILE, "drift": True}],
        latest=[{"at": HOSTILE, "name": HOSTILE, "status": HOSTILE, "link": HOSTILE}],
        history_page="javascript:alert(1)",
    ),
    "run": lambda: run_pages.render_run(
        run_pages.view(
            "watchdog",
            HOSTILE,
            HOSTILE_ATTR,
            {"check_health": {"facts": {HOSTILE: HOSTILE}, "active": [HOSTILE], "alerts": []}},
            lambda path: True,
        )
    ),
}


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_script_is_escaped_on_every_page_kind(kind: str) -> None:
    page = PAGES[kind]()
    c = assert_safe(page)
    assert "&lt;script&gt;" in page
    assert HOSTILE in html.unescape(page)  # shown, as text
    assert "javascript" not in page.lower()
    assert_relative(c.hrefs)


def test_every_template_compiles_and_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file under templates/ ships (package data is ``templates/*.j2``), compiles, and is
    rendered by some page, directly or through extends/import."""
    files = sorted(p.name for p in reports.TEMPLATES_DIR.iterdir())
    assert files and all(name.endswith(".j2") for name in files), files
    env = reports._environment()
    for name in files:
        env.get_template(name)  # compiles, or raises TemplateSyntaxError

    rendered: list[str] = []
    render = reports._render

    def spy(template: str, **context: Any) -> str:
        rendered.append(template)
        return render(template, **context)

    monkeypatch.setattr(reports, "_render", spy)
    for make in PAGES.values():
        make()
    used: set[str] = set()
    todo = list(rendered)
    while todo:
        name = todo.pop()
        if name not in used:
            used.add(name)
            source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
            todo += [n for n in meta.find_referenced_templates(env.parse(source)) if n]
    assert used == set(files)


def test_import_stays_cheap() -> None:
    """DAG files import modules that import reports: no jinja2, no templates until a render."""
    code = (
        "import sys, retrain.reports as r; "
        "assert 'jinja2' not in sys.modules, 'jinja2 imported'; "
        "assert r._environment.cache_info().currsize == 0"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the decision page: verdict, clauses, interval, history -----------------------------------

GATE = GateConfig(metric="auc", min_metric=0.6, non_inferiority_margin=0.01)
POLICY = {"gate": asdict(GATE), "drift": asdict(DriftConfig())}


def feature(
    name: str,
    psi: float,
    drifted: bool,
    *,
    monitored: bool = True,
    kind: str = "numeric",
    bins: int = 4,
) -> dict[str, Any]:
    labels = [f"({i}, {i + 1}]" for i in range(bins)] if kind == "numeric" else ["a", "b", "c"]
    n = len(labels)
    return {
        "name": name,
        "kind": kind,
        "psi": psi,
        "distance": psi / 2,
        "distance_name": "wasserstein_norm" if kind == "numeric" else "jensen_shannon",
        "drifted": drifted,
        "monitored": monitored,
        "labels": labels,
        "reference": [1 / n] * n,
        "current": [0.5] + [0.5 / (n - 1)] * (n - 1),
        "unseen": None if kind == "numeric" else 0.02,
        "n_reference": 8000,
        "n_current": 2000,
    }


def new_drift(data_drifted: bool, n_stable: int = 3) -> dict[str, Any]:
    features = [
        feature("monthly_charges", 0.45, True),
        feature("contract", 0.21, True, kind="categorical"),
        feature("customer_id_hash", 0.9, True, monitored=False),
    ] + [feature(f"stable_{i:02d}", 0.01 * i, False) for i in range(n_stable)]
    return {
        "features": features,
        "drifted": ["monthly_charges", "contract"],
        "share": 0.4 if data_drifted else 0.1,
        "data_drifted": data_drifted,
        "rule": "share",
        "prediction": {**feature("score", 0.05, False, bins=5), "name": "score"},
        "prediction_drifted": False,
        "max_psi": 0.9,
    }


def record(
    cmp: Comparison | None,
    *,
    challenger: float | None = None,
    data_drifted: bool = False,
    at_training: float | None = 0.82,
) -> dict[str, Any]:
    """A decision record as ``steps.retrain.evaluate_and_decide`` writes it."""
    value = challenger if challenger is not None else (cmp.challenger if cmp else 0.8)
    d = decide(Evidence(value, cmp, at_training if cmp else None, data_drifted=data_drifted), GATE)
    return {
        "version": "v1",
        **d.as_dict(),
        "policy": POLICY,
        "comparison": cmp.as_dict() if cmp else None,
        "challenger_metrics": {"auc": value, "logloss": 0.4},
        "champion_version": "v0" if cmp else None,
        "champion_metrics": {"auc": cmp.champion, "logloss": 0.41} if cmp else None,
        "drift": new_drift(data_drifted) if cmp else None,
        "decided_at": "2026-11-22T01:30:00+00:00",
        "evaluated_on": "new data" if cmp else "time",
        "training_rows": 12000,
        "replaced_rows": 3,
        "serving_version": None,
    }


def render(rec: dict[str, Any], **kw: Any) -> str:
    return reports.render_decision(
        rec["version"],
        rec,
        rec["challenger_metrics"],
        rec["champion_metrics"],
        rec["drift"],
        **kw,
    )


def clauses(page: str) -> dict[str, tuple[str, str, str]]:
    """The policy table: clause -> (row class, inputs, result)."""
    return {
        cells[1]: (cls, cells[2], cells[3])
        for cls, cells in parse(page).rows
        if cls in ("clause", "decisive")
    }


def svgs(page: str) -> list[ET.Element]:
    """Every inline SVG of the page, parsed (they are well-formed XML)."""
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", page, re.S)]


def texts(svg: ET.Element) -> list[str]:
    """The visible texts of an SVG (a ``<title>`` inside a text is its tooltip)."""
    return [((t.text or "") + "".join(c.tail or "" for c in t)).strip() for t in svg.iter("text")]


def banner(page: str) -> tuple[str, str]:
    m = re.search(r'<div class="banner banner-(\w+)">\s*<span class="verdict">([^<]*)<', page)
    assert m, "no verdict banner"
    return m.group(1), m.group(2)


def test_decision_page_for_a_deploy() -> None:
    rec = record(Comparison("auc", 0.84, 0.80, 0.04, 0.02, 0.06, 0.95, 1000, 2000))
    assert rec["rule"] == "better"
    page = render(rec)
    assert_safe(page)
    assert banner(page) == ("ok", "deployed")
    assert "deploy: better with confidence" in page  # the rule, in words
    c = clauses(page)
    assert c["Clears the floor"] == ("clause", "challenger auc 0.8400 \u2265 floor 0.6000", "pass")
    assert c["Better with confidence"] == ("decisive", "lower bound +0.0200 > 0", "pass")
    assert c["Something changed"][2] == "no" and c["Data drifted"][2] == "no"
    assert c["Champion degraded"][1] == (
        "auc now 0.8000 vs at training 0.8200 - margin 0.0200 = 0.8000"
    )
    assert "+0.0400 [+0.0200, +0.0600]" in page  # the metrics table: delta and interval
    assert "95% confidence interval" in page and "1000 paired bootstrap rounds on 2000" in page


def test_decision_page_for_a_hold_not_better() -> None:
    rec = record(Comparison("auc", 0.812, 0.807, 0.005, -0.004, 0.014, 0.95, 1000, 2400))
    assert rec["rule"] == "not_better"
    page = render(rec)
    assert banner(page) == ("warn", "held")  # amber: the policy doing its job
    c = clauses(page)
    assert c["Better with confidence"] == ("decisive", "lower bound -0.0040 \u2264 0", "fail")
    assert c["Something changed"] == ("decisive", "any of the three above", "no")
    assert c["Non-inferior (after a change)"][2] == "pass"  # met, but nothing changed
    assert "<strong>-0.0040</strong> to <strong>+0.0140</strong>" in page


def test_decision_page_for_an_inferior_after_change_hold() -> None:
    rec = record(
        Comparison("auc", 0.78, 0.81, -0.03, -0.045, -0.015, 0.95, 1000, 2000), data_drifted=True
    )
    assert rec["rule"] == "inferior_after_change"
    page = render(rec)
    assert banner(page) == ("bad", "held")  # red: as loud as a deploy is green
    c = clauses(page)
    assert c["Data drifted"][2] == "yes"
    assert (
        "2 of 5 monitored features drifted: 40.0% (threshold 30.0%, rule: share)"
        in (c["Data drifted"][1])
    )
    assert c["Something changed"] == ("decisive", "any of the three above", "yes")
    assert c["Non-inferior (after a change)"] == (
        "decisive",
        "lower bound -0.0450 \u2264 -margin -0.0100",
        "fail",
    )
    assert "../drift/v1.html" in parse(page).hrefs


def test_decision_page_for_a_first_model() -> None:
    rec = record(None)
    assert rec["rule"] == "first_model"
    page = render(rec, champion_history=[])
    assert_safe(page)
    assert banner(page) == ("ok", "deployed")
    c = clauses(page)
    assert c["Clears the floor"] == (
        "decisive",
        "challenger auc 0.8000 \u2265 floor 0.6000",
        "pass",
    )
    assert (
        c["Against the champion"][2] == "n/a" and "no champion yet" in c["Against the champion"][1]
    )
    assert "No champion yet" in page and "No champion before this decision" in page
    assert svgs(page) == []  # no interval, no history to draw
    assert not any("drift/" in h for h in parse(page).hrefs)


def test_decision_page_for_floor_and_undefined_holds() -> None:
    below = record(Comparison("auc", 0.55, 0.5, 0.05, 0.03, 0.07, 0.95, 1000, 2000))
    assert below["rule"] == "below_floor"
    c = clauses(render(below))
    assert c["Clears the floor"] == ("decisive", "challenger auc 0.5500 < floor 0.6000", "fail")
    assert c["Against the champion"][1] == "not evaluated: the floor decides first"
    nan = math.nan
    undefined = record(Comparison("auc", nan, 0.8, nan, nan, nan, 0.95, 1000, 50), challenger=nan)
    assert undefined["rule"] == "undefined"
    page = render(undefined)
    assert banner(page) == ("bad", "held")
    assert clauses(page)["Clears the floor"][2] == "fail"
    assert svgs(page) == [] and "No estimate: the metric is undefined" in page


def test_interval_svg_holds_the_estimate_the_bounds_zero_and_the_margin() -> None:
    rec = record(Comparison("auc", 0.812, 0.807, 0.005, -0.004, 0.014, 0.95, 1000, 2400))
    (svg,) = svgs(render(rec))
    labels = texts(svg)
    for text in ("+0.0050", "-0.0040", "+0.0140", "0", "-margin -0.0100"):
        assert text in labels, (text, labels)
    x = {ln.get("class"): float(ln.get("x1") or 0) for ln in svg.iter("line")}
    caps = sorted(float(ln.get("x1") or 0) for ln in svg.iter("line") if ln.get("class") == "cap")
    (dot,) = [c for c in svg.iter("circle") if c.get("class") == "estimate"]
    assert x["margin"] < caps[0] < x["zero"] < float(dot.get("cx") or 0) < caps[1]
    ci = next(ln for ln in svg.iter("line") if ln.get("class") == "ci")
    assert (float(ci.get("x1") or 0), float(ci.get("x2") or 0)) == tuple(caps)
    assert "interval -0.0040 to +0.0140" in "".join(ci.itertext())


def test_interval_svg_without_bounds_or_margin() -> None:
    chart = reports._interval_chart(
        {"delta": 0.01, "low": math.nan, "high": None}, None, metric="auc"
    )
    assert chart is not None and chart.low_x is None and chart.margin_x is None
    assert "interval undefined" in chart.title
    page = reports._render("_charts.html.j2")  # the macros alone render nothing
    assert page.strip() == ""
    assert reports._interval_chart({"delta": math.nan}, 0.01, metric="auc") is None
    assert reports._interval_chart(None, 0.01, metric="auc") is None
    flat = reports._interval_chart({"delta": 0.0, "low": 0.0, "high": 0.0}, 0.0, metric="auc")
    assert flat is not None and flat.left <= flat.zero_x <= flat.right


HISTORY = [
    {"version": "c1", "at": "2026-11-01T00:00:00+00:00", "metric": 0.80, "kind": "deploy"},
    {"version": "c2", "at": "2026-11-08T00:00:00+00:00", "metric": None, "kind": "deploy"},
    {"version": "c3", "at": "2026-11-15T00:00:00+00:00", "metric": 0.79, "kind": "deploy"},
    {"version": "c1", "at": "2026-11-16T00:00:00+00:00", "metric": 0.81, "kind": "rollback"},
    {"version": "c4", "at": "2026-11-20T00:00:00+00:00", "metric": math.nan, "kind": "deploy"},
]


def test_champion_history_is_drawn_and_listed() -> None:
    rec = record(Comparison("auc", 0.84, 0.80, 0.04, 0.02, 0.06, 0.95, 1000, 2000))
    page = render(rec, champion_history=list(reversed(HISTORY)))  # any order: sorted by time
    _, line = svgs(page)
    circles = [c for c in line.iter("circle")]
    assert [c.get("class") for c in circles] == ["deploy", "deploy", "rollback"]
    assert "".join(circles[0].itertext()) == "c1 (deploy 2026-11-01T00:00:00+00:00): auc 0.8000"
    (challenger,) = [r for r in line.iter("rect") if r.get("class") == "challenger"]
    assert "this challenger: auc 0.8400" in "".join(challenger.itertext())
    (polyline,) = list(line.iter("polyline"))  # c1 alone, c3 - c1 joined, c4 missing
    assert len((polyline.get("points") or "").split()) == 2
    rows = [cells for cls, cells in parse(page).rows if cells and cells[0] in ("c1", "c2")]
    assert rows[0] == ["c1", "2026-11-01 00:00 UTC", "deploy", "0.8000"]
    assert rows[1][3] == "\u2014"  # no metric recorded
    assert line.findtext("title") == "the champion's auc over its last 5 moves"
    assert render(rec).count("<svg") == 1  # None: no history section


def test_charts_survive_missing_values() -> None:
    assert reports._bar_chart([], [], [], title="t", names=("a", "b")) is None
    assert reports._bar_chart(["x"], [None], [math.nan], title="t", names=("a", "b")) is None
    odd = reports._bar_chart(["x"], [0.5, "junk", 0.2], [math.inf], title="t", names=("a", "b"))
    assert odd is not None and len(odd.bars) == 6 and len(odd.labels) == 3
    assert [b.h for b in odd.bars if b.series == 1] == [0.0, 0.0, 0.0]
    assert "n/a" in odd.bars[1].tip and "bin 2" in odd.bars[2].tip
    assert reports._line_chart([], metric="auc", floor=0.6, challenger=0.8) is None
    assert reports._line_chart([{"metric": None}], metric="auc", floor=0.6, challenger=None) is None
    one = reports._line_chart([{"metric": 0.7}], metric="auc", floor=None, challenger=None)
    assert one is not None and one.lines == [] and len(one.points) == 1
    broken = {
        "features": [{"name": "x", "labels": None, "reference": "no", "current": [None]}],
        "data_drifted": True,
        "drifted": ["x"],
        "share": math.nan,
        "prediction": {"psi": None, "labels": [], "reference": [], "current": []},
    }
    page = reports.render_drift("v1", broken)
    assert_safe(page) and "<svg" not in page and "no distribution recorded" in page
    rec = record(Comparison("auc", 0.8, 0.8, 0.0, math.nan, math.nan, 0.95, 1000, 10))
    page = render(rec | {"drift": broken}, champion_history=[{"metric": "x"}, "junk"])  # type: ignore[list-item]
    assert "confidence interval undefined" in page


# -- the drift page -----------------------------------------------------------------------------


def test_drift_page_draws_each_drifted_feature_side_by_side() -> None:
    drift = new_drift(True, n_stable=22)  # 25 features
    page = reports.render_drift("v1", drift, policy=POLICY["drift"])
    c = assert_safe(page)
    assert banner(page) == ("bad", "data drifted")
    assert "2 of 24 monitored features drifted: 40.0% (threshold 30.0%, rule: share)" in page
    given = {f["name"]: f for f in drift["features"]}
    for anchor, name in (("feature-0", "monthly_charges"), ("feature-1", "contract")):
        assert f"#{anchor}" in c.hrefs
        figure = re.search(rf'<div id="{anchor}">.*?</svg>', page, re.S)
        assert figure and name in figure.group(0)
        (svg,) = svgs(figure.group(0))
        reference = [r for r in svg.iter("rect") if r.get("class") == "s0"]
        new = [r for r in svg.iter("rect") if r.get("class") == "s1"]
        labels = given[name]["labels"]
        assert len(reference) == len(new) == len(labels)  # one pair of bars per bin
        for ref_bar, new_bar in zip(reference, new, strict=True):  # side by side
            assert float(ref_bar.get("x") or 0) < float(new_bar.get("x") or 0)
            assert ref_bar.get("y") != new_bar.get("y")  # 1/n vs the new shares
        tips = ["".join(r.itertext()) for r in reference + new]
        assert tips[0] == f"training reference, {labels[0]}: {100 / len(labels):.1f}%"
        assert tips[len(labels)] == f"new data, {labels[0]}: 50.0%"
        assert [t for t in texts(svg) if not t.endswith("%")] == labels  # under the bars
    assert page.count('<div id="feature-') == 2  # not the unmonitored one, not the stable ones
    rows = {cells[0]: (cls, cells) for cls, cells in c.rows if cls}
    assert len(rows) == 25
    cls, cells = rows["customer_id_hash"]
    assert cls == "unmonitored" and "not counted" in cells
    assert rows["monthly_charges"][0] == "drifted" and rows["stable_03"][0] == "stable"
    ordered = [cells[0] for cls, cells in c.rows if cls]
    assert ordered[:2] == ["monthly_charges", "contract"]  # the drifted ones, worst first
    assert '<div id="scores">' in page and "The champion's scores" in page
    assert "PSI 0.0500 vs threshold 0.200" in page


def test_drift_page_without_drift() -> None:
    drift = new_drift(False) | {"features": [feature("a", 0.01, False)], "drifted": []}
    page = reports.render_drift("v1", drift)
    assert banner(page) == ("ok", "no data drift")
    assert page.count("<svg") == 1  # only the scores
    assert "Drifted features" not in page


def test_old_shape_drift_renders_as_before() -> None:
    drift = {"psi": {"a": 0.5, "b": math.nan, "c": 0.01}, "drifted": ["a"], "threshold": 0.2}
    page = reports.render_drift("v1", drift)
    c = assert_safe(page)
    assert [(cls, cells) for cls, cells in c.rows if cls] == [
        ("drifted", ["a", "0.5000", "yes"]),
        ("stable", ["c", "0.0100", "no"]),
        ("stable", ["b", "nan", "no"]),
    ]
    assert "<svg" not in page and 'class="banner' not in page and "0.200" in page
    decision = reports.render_decision("v1", {"deploy": True}, {"auc": 0.8}, {"auc": 0.7}, drift)
    assert "1 of 3 features drifted (PSI &gt; 0.200): a." in decision


# -- the index ----------------------------------------------------------------------------------


def test_index_puts_incidents_holds_and_rejections_first() -> None:
    held = record(
        Comparison("auc", 0.78, 0.81, -0.03, -0.045, -0.015, 0.95, 1000, 2000), data_drifted=True
    )
    held["version"] = "v3"
    deployed = record(Comparison("auc", 0.84, 0.80, 0.04, 0.02, 0.06, 0.95, 1000, 2000)) | {
        "version": "v2"
    }
    older_hold = {"version": "v1", "deploy": False, "rule": "not_better", "reason": "old"}
    page = report_index.render_index(
        champion={"version": "v2-refit", "decision_version": "v2", "deployed_at": "x"},
        latest_decisions=[held, deployed, older_hold],
        latest=[
            {
                "at": "t3",
                "kind": "training set",
                "name": "run-3",
                "status": "rejected",
                "reason": "too few rows",
                "link": "training/r3.html",
            },
            {"at": "t2", "kind": "training set", "name": "run-2", "status": "passed"},
            {"at": "t1", "kind": "training set", "name": "run-1", "status": "rejected"},
        ],
        incidents=[
            {
                "name": "dag:retrain",
                "reason": "train_challenger: boom",
                "since": "2026-11-30T08:00:00+00:00",
                "runs": 2,
                "links": ["http://airflow:8080/dags/retrain/runs/r1", "s3://b/raw/x.csv"],
            },
            {"name": "watchdog:data_age", "reason": "no data for 3 days", "since": "s", "runs": 1},
        ],
        alerts=[
            {
                "at": "a1",
                "status": "failed",
                "title": "retrain failed",
                "reason": "boom",
                "links": ["decisions/v3.html", "javascript:alert(1)"],
            }
        ],
        streak={"runs": 2, "since": "s", "reason": "hold"},
        published_at="2026-11-30T10:00:00+00:00",
    )
    c = assert_safe(page)
    assert "javascript" not in page
    attention = [cells for cls, cells in c.rows if cls == "attention"]
    assert [cells[0] for cells in attention] == [
        "failed run",
        "watchdog",
        "retrain streak",
        "held (inferior_after_change)",  # since the last deploy only: not v1
        "training set rejected",  # since the last check that passed only: not run-1
    ]
    assert attention[0][1:5] == [
        "dag:retrain",
        "2026-11-30 08:00 UTC",
        "2",
        "train_challenger: boom",
    ]
    assert attention[0][5] == "Airflow, s3://b/raw/x.csv"  # the s3 URI as text, not a link
    assert attention[3][1] == "v3" and attention[4][1] == "run-3"
    for href in (
        "decisions/v3.html",
        "training/r3.html",
        "http://airflow:8080/dags/retrain/runs/r1",
    ):
        assert href in c.hrefs
    assert "decisions/v2.html" in c.hrefs and "decisions/v2-refit.html" not in c.hrefs
    # the latest decision, a hold, as loud as a deploy
    assert re.search(r'banner-bad">\s*<h3>Latest decision</h3>\s*<span class="verdict">held', page)
    decisions = {
        cells[0]: cells for cls, cells in c.rows if cells and cells[0] in ("v1", "v2", "v3")
    }
    # one line each: the clause that decided and the numbers; the full reason is on its page
    assert decisions["v3"][1:3] == [
        "held",
        "something changed but the challenger is not non-inferior; auc 0.7800 vs 0.8100, "
        "-0.0300 [-0.0450, -0.0150]",
    ]
    assert decisions["v2"][1] == "deployed" and decisions["v2"][2].startswith("better with")
    assert held["reason"] not in page and deployed["reason"] not in page
    assert 'class="badge bad">held<' in page and 'class="badge warn">held<' in page
    assert 'class="badge ok">deployed<' in page
    assert "Open incidents" in page and "Published 2026-11-30 10:00 UTC." in page


def test_index_all_clear() -> None:
    page = report_index.render_index(
        champion=None,
        latest_decisions=[{"version": "v1", "deploy": True, "rule": "first_model"}],
        latest=[],
        incidents=[],
        alerts=[],
    )
    assert "nothing open" in page and "No alerts sent yet" in page
    assert re.search(r'banner-ok">\s*<h3>Open incidents</h3>\s*<span class="verdict">0<', page)


def hostile_drift() -> dict[str, Any]:
    drift = new_drift(True)
    drift["features"][0] |= {"name": HOSTILE, "labels": [HOSTILE, HOSTILE_ATTR, "x", "y"]}
    drift["features"][2] |= {"name": HOSTILE_ATTR, "kind": HOSTILE}
    return drift | {"drifted": [HOSTILE, "contract"], "rule": HOSTILE, "summary": HOSTILE}


def hostile_decision() -> str:
    rec = record(
        Comparison("auc", 0.78, 0.81, -0.03, -0.045, -0.015, 0.95, 1000, 2000), data_drifted=True
    )
    rec |= {"reason": HOSTILE, "decided_at": HOSTILE_ATTR, "serving_version": HOSTILE}
    history = [{"version": HOSTILE, "at": HOSTILE_ATTR, "metric": 0.8, "kind": HOSTILE}]
    return reports.render_decision(
        HOSTILE,
        rec,
        {HOSTILE: 1.0, "auc": 0.78},
        {"auc": 0.81},
        hostile_drift(),
        champion_history=history,
    )


PAGES["decision_new_shape"] = hostile_decision
PAGES["drift_new_shape"] = lambda: reports.render_drift(
    HOSTILE, hostile_drift(), policy={"rule": HOSTILE, "share_threshold": 0.3}
)
PAGES["index_attention"] = lambda: report_index.render_index(
    champion={"version": HOSTILE, "decision_version": HOSTILE_ATTR, "deployed_at": HOSTILE},
    latest_decisions=[{"version": HOSTILE, "deploy": False, "rule": HOSTILE, "reason": HOSTILE}],
    latest=[{"kind": "training set", "status": "rejected", "name": HOSTILE, "link": HOSTILE}],
    incidents=[{"name": HOSTILE, "reason": HOSTILE, "since": HOSTILE, "links": [HOSTILE_ATTR]}],
    alerts=[{"at": HOSTILE, "status": HOSTILE, "title": HOSTILE, "links": ["javascript:x"]}],
    streak={"runs": 1, "since": HOSTILE, "reason": HOSTILE},
    published_at=HOSTILE,
)


@pytest.mark.parametrize("kind", ["decision_new_shape", "drift_new_shape", "index_attention"])
def test_script_is_escaped_on_the_new_shapes(kind: str) -> None:
    test_script_is_escaped_on_every_page_kind(kind)


# -- issue 20: flags, one model identity, an index that stays short ---------------------------

JULY = Comparison("auc", 0.7700, 0.7738, -0.0038, -0.0058, -0.0018, 0.95, 1000, 5000)
SEPTEMBER = Comparison("auc", 0.594, 0.580, 0.014, 0.006, 0.022, 0.95, 1000, 5000)


def july() -> dict[str, Any]:
    """Deployed after a change although worse with confidence, within the margin (0.01)."""
    r = record(JULY, data_drifted=True) | {"version": "v7"}
    assert (r["deploy"], r["rule"]) == (True, "non_inferior_after_change")
    return r


def september() -> dict[str, Any]:
    """Held on the floor while the champion scored lower still on the same rows."""
    r = record(SEPTEMBER) | {"version": "v9"}
    assert (r["deploy"], r["rule"]) == (False, "below_floor")
    return r


def test_the_decision_page_says_what_needs_a_look() -> None:
    page = reports.render_decision("v7", july(), {"auc": 0.77}, {"auc": 0.7738}, None)
    assert_safe(page)
    assert "Needs a look" in page
    assert "deployed although worse with confidence (within the margin)" in page
    assert "-0.0058 to -0.0018" in page and "worse with 95% confidence" in page
    page = reports.render_decision("v9", september(), {"auc": 0.594}, {"auc": 0.58}, None)
    assert "held on the floor while the champion is also below it on the same rows" in page
    assert "The champion scored 0.5800 on the same rows, below the floor 0.6000" in page
    assert "beat it by +0.0140" in page
    plain = record(Comparison("auc", 0.84, 0.80, 0.04, 0.02, 0.06, 0.95, 1000, 2000))
    assert "Needs a look" not in reports.render_decision("v1", plain, {"auc": 0.84}, None, None)


def test_the_decision_page_says_what_the_serving_refit_learned_from() -> None:
    r = july() | {
        "serving_version": "v7-refit",
        "serving_n_train": 4_070_000,
        "serving_sampled_from": 20_000_000,
    }
    page = reports.render_decision("v7", r, {"auc": 0.77}, {"auc": 0.7738}, None)
    text = html.unescape(re.sub(r"\s+", " ", page))
    assert "Deployed as v7-refit" in text
    assert "a seeded sample of 4070000 of 20000000 rows" in text
    r = r | {"serving_n_train": 12000, "serving_sampled_from": 0}
    text = re.sub(r"\s+", " ", reports.render_decision("v7", r, {"auc": 0.77}, None, None))
    assert "(12000 rows)" in text and "seeded sample of" not in text.split("Deployed as")[1][:200]


def test_a_decision_page_is_published_under_both_ids() -> None:
    store = FakeStorage()
    r = july() | {"serving_version": "v7-refit"}
    key = reports.publish_decision(
        store,  # type: ignore[arg-type]
        "reports/",
        "v7",
        r,
        r["challenger_metrics"],
        r["champion_metrics"],
        None,
        also_as=("v7-refit",),
    )
    assert key == "reports/decisions/v7.html"
    assert set(store.objects) == {"reports/decisions/v7.html", "reports/decisions/v7-refit.html"}
    assert store.objects[key] == store.objects["reports/decisions/v7-refit.html"]
    assert_relative(parse(store.objects[key][0].decode()).hrefs)


def test_the_index_flags_decisions_and_names_one_model() -> None:
    deployed = july() | {"serving_version": "v7-refit"}
    held = september()
    page = report_index.render_index(
        champion={"version": "v7-refit", "decision_version": "v7", "deployed_at": "x"},
        latest_decisions=[held, deployed],
        latest=[],
    )
    c = assert_safe(page)
    attention = [cells for cls, cells in c.rows if cls == "attention"]
    assert [(a[0], a[1]) for a in attention] == [
        ("flagged: held (below_floor)", "v9"),
        ("flagged: deployed", "v7"),  # the model in service: down to the last deploy
    ]
    assert attention[0][4] == (
        "held on the floor while the champion is also below it on the same rows"
    )
    rows = {cells[0]: cells for cls, cells in c.rows if cls == "decision"}
    assert set(rows) == {"v9", "v7serving v7-refit"}, "a deploy is one row, its refit an attribute"
    assert "deployed although worse with confidence" in rows["v7serving v7-refit"][2]
    assert "decisions/v7.html" in c.hrefs and "decisions/v7-refit.html" not in c.hrefs
    assert re.search(r"v7</a></span>\s*<p>serving v7-refit, deployed", page)
    # each reason once: the decisions' reasons are on their pages, not here
    assert deployed["reason"] not in page and held["reason"] not in page


def test_the_index_lists_files_quarantined_since_the_last_accepted_one() -> None:
    def file(n: int, status: str) -> dict[str, Any]:
        return {
            "at": f"2026-11-30T10:{n:02d}:00+00:00",
            "kind": "file",
            "name": f"landing/m{n}.csv",
            "status": status,
            "reason": f"12 of 40 expectations failed ({n})",
            "link": f"validations/b/m{n}.html",
        }

    latest = [file(9, "quarantined"), file(8, "quarantined"), file(7, "passed")]
    latest += [file(6, "quarantined")]  # before an accepted file: nothing to look at now
    c = parse(report_index.render_index(champion=None, latest_decisions=[], latest=latest))
    attention = [cells for cls, cells in c.rows if cls == "attention"]
    assert [(a[0], a[1]) for a in attention] == [
        ("quarantined", "landing/m9.csv"),
        ("quarantined", "landing/m8.csv"),
    ]
    assert attention[0][4] == "12 of 40 expectations failed (9)"
    assert "validations/b/m9.html" in c.hrefs
    # a batch has no order: its quarantined files count beside its accepted one
    batch = [file(5, "passed") | {"batch": "b5"}, file(4, "quarantined") | {"batch": "b5"}]
    batch += [file(3, "quarantined") | {"batch": "b3"}]
    c = parse(report_index.render_index(champion=None, latest_decisions=[], latest=batch))
    assert [cells[1] for cls, cells in c.rows if cls == "attention"] == ["landing/m4.csv"]
    many = [file(n, "quarantined") for n in range(20, 8, -1)]
    c = parse(report_index.render_index(champion=None, latest_decisions=[], latest=many))
    attention = [cells for cls, cells in c.rows if cls == "attention"]
    assert len(attention) == report_index.ATTENTION_LIMIT + 1
    assert attention[-1][1] == "and 7 more since the last accepted file"


def test_the_index_prints_an_alert_reason_once_and_shortens_long_ones() -> None:
    reason = "deploy: the data drifted, and the challenger is non-inferior: auc 0.77 vs 0.77"
    long = "x" * 1000
    page = report_index.render_index(
        champion=None,
        latest_decisions=[],
        latest=[{"kind": "file", "name": "a.csv", "status": "quarantined", "reason": long}],
        alerts=[
            {
                "at": "a",
                "status": "notice",
                "title": f"retrain deployed v7: {reason}",
                "reason": reason,
            },
            {
                "at": "b",
                "status": "notice",
                "title": "2 file(s) quarantined",
                "reason": "bad.csv: x",
            },
        ],
    )
    assert page.count(reason) == 1
    assert "2 file(s) quarantined: bad.csv: x" in html.unescape(re.sub(r"\s+", " ", page))
    assert long not in page and "x" * (report_index.INDEX_REASON - 1) + "\u2026" in page


def test_the_index_shows_a_bounded_part_of_the_history() -> None:
    latest = [
        {"at": "t", "kind": "file", "name": f"f{n}.csv", "status": "passed"} for n in range(50)
    ]
    c = parse(report_index.render_index(champion=None, latest_decisions=[], latest=latest))
    names = [cells[2] for cls, cells in c.rows if len(cells) == 5 and cells[1] == "file"]
    assert names == [f"f{n}.csv" for n in range(report_index.INDEX_HISTORY_ROWS)]


def test_a_history_page_links_to_the_newest_page_it_does_not_show() -> None:
    rows = [{"at": "t", "kind": "file", "name": "a.csv", "status": "passed"}]
    assert 'href="page-000003.html">older' in reports.render_history_page(9, rows, older=3)
    assert "older" not in reports.render_history_page(9, rows, older=None)
    assert "older" not in reports.render_history_page(9, rows, older=-1)
    assert 'href="page-000008.html">older' in reports.render_history_page(9, rows)


def test_index_rendering_lives_in_its_own_module() -> None:
    from pathlib import Path

    assert len(Path(report_index.__file__).read_text().splitlines()) < 600
    assert not hasattr(reports, "render_index") and not hasattr(reports, "publish_index")
