"""What a DAG run's "Reports" tab shows, from the run's task results."""

from __future__ import annotations

from retrain import run_pages
from retrain.layout import run_token

RUN = "asset_triggered__2026-11-30T16:41:00.863732+00:00_TAe2pVJc"


def test_an_ingest_run_opens_its_batch_page():
    results = {"route": {"raw_keys": ["raw/a.csv"], "quarantined": [{"x": 1}, {"y": 2}]}}
    view = run_pages.view("ingest", RUN, "success", results, lambda path: True)
    assert view.redirect == f"validations/{run_token(RUN)}.html"
    assert view.links[0].note == "1 accepted, 2 quarantined"
    missing = run_pages.view("ingest", RUN, "running", {}, lambda path: False)
    assert missing.redirect is None
    html = run_pages.render_run(missing)
    assert "not written (yet)" in html and "State: running." in html


def test_a_retrain_run_lists_its_check_decision_and_drift():
    decision = {"version": "v1", "deploy": False, "reason": "hold: <b>no</b> drift"}
    view = run_pages.view(
        "retrain", RUN, "success", {"evaluate_and_decide": decision}, lambda p: "drift" not in p
    )
    assert [link.path for link in view.links] == [
        f"training/{run_token(RUN)}.html",
        "decisions/v1.html",
        "drift/v1.html",
    ]
    assert [link.present for link in view.links] == [True, True, False]
    assert view.redirect is None
    html = run_pages.render_run(view)
    assert 'href="../../decisions/v1.html"' in html
    assert "hold: &lt;b&gt;no&lt;/b&gt; drift" in html and "<b>no</b>" not in html
    assert "<script" not in html


def test_a_failed_retrain_run_says_no_decision_was_recorded():
    view = run_pages.view("retrain", RUN, "failed", {}, lambda p: True)
    assert "No decision recorded" in view.headline
    assert len(view.links) == 1


def test_score_and_watchdog_runs_show_their_results():
    scored = {
        "version": "v2",
        "rows": 6000,
        "feature_keys": ["features/a.parquet"],
        "prediction_keys": ["predictions/v2/a.parquet"],
        "manifest_key": "predictions/v2/manifest.json",
    }
    view = run_pages.view(
        "score", RUN, "success", {"score_newest": scored, "manifest": {"rows": 6000}}, bool
    )
    assert view.facts["rows scored"] == 6000 and view.facts["manifest: rows"] == 6000
    assert "predictions manifest" in run_pages.render_run(view)
    health = {"facts": {"data_age_hours": 1.5}, "active": ["watchdog:data_age"], "alerts": []}
    view = run_pages.view("watchdog", RUN, "success", {"check_health": health}, bool)
    assert view.items == ("watchdog:data_age",) and "1 finding(s) active" in view.headline
    assert "what the watchdog saw" in run_pages.render_run(view)


def test_a_reason_that_names_its_verdict_is_not_prefixed_twice():
    decision = {"version": "v1", "deploy": False, "reason": "hold: no drift"}
    view = run_pages.view("retrain", RUN, "success", {"evaluate_and_decide": decision}, bool)
    assert view.links[1].note == "hold: no drift"
