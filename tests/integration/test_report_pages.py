"""The reports open in a real headless browser from a copy of the bucket, offline: the index,
a quarantined file's result page, a decision page and a drift page render their content and
charts, styled, with nothing fetched."""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from retrain import reports
from retrain.alerts import Incidents
from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.decision import Evidence, decide
from retrain.evaluation import Comparison
from retrain.history import Entry, History
from retrain.layout import Layout
from retrain.local import browser
from retrain.local.demo import download_reports
from retrain.registry import ModelRegistry
from retrain.steps import ingest, reporting
from retrain.storage import S3Storage

# a reference a page would have to fetch: anything absolute in src/href/url()
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""")


def test_index_and_a_quarantined_files_page_render_offline(
    config: Config, storage: S3Storage, tmp_path: Path
) -> None:
    cfg = replace(config, storage=replace(config.storage, bucket=storage.bucket))
    start = datetime(2026, 10, 1)
    for name, scenario in (("good.csv", "normal"), ("broken.csv", "corrupt")):
        df = generate(300, seed=len(name), scenario=scenario, start=start)
        storage.put_bytes(f"landing/{name}", write_batch(df, "csv"))
    batch = ingest.ingest_batch(storage, cfg, ingest.landed_files(storage, cfg), batch_id="b1")
    (bad,) = batch.quarantined
    site = tmp_path / "site"
    index = download_reports(storage, cfg, site)
    # the quarantined file needs attention, and its alert is already listed: the notice was
    # recorded before the index was published
    html = index.read_text()
    attention = html[html.index("Needs attention") : html.index("Recent alerts")]
    assert "landing/broken.csv" in attention and "landing/good.csv" not in attention
    alerts = html[html.index("Recent alerts") : html.index("Latest decisions")]
    assert "1 file(s) quarantined in batch b1" in alerts
    assert (
        batch.notice is not None
        and ingest.alert_quarantined(Incidents(storage, Layout.of(cfg)), storage, batch)
        is batch.notice
    ), "the DAG sends the notice route_batch recorded, not a second one"
    page = site / bad.result_key[len(cfg.storage.reports_prefix) :].removesuffix(".json")
    page = page.with_suffix(".html")
    for path, expected in (
        (index, ["landing/broken.csv", "landing/good.csv", "quarantined", "passed"]),
        (page, ["broken.csv", "failed", "expect_column_values_to_be_unique"]),
    ):
        html = path.read_text()
        assert not EXTERNAL.findall(html), f"{path.name} references the internet"
        dom = browser.rendered_dom(path)
        for text in expected:
            assert text in dom, f"{path.name}: {text!r} not rendered"
        shot = browser.screenshot(path, tmp_path / f"{path.stem}.png")
        assert browser.png_colours(shot) >= 8, f"{path.name} rendered blank"


def _version(registry: ModelRegistry, version: str, record: dict[str, Any] | None) -> None:
    registry.save_version(
        version, model_text="m", metadata={"metrics": {"auc": 0.8}}, reference_profile={}
    )
    if record is not None:
        registry.record_decision(version, record)


def test_index_shows_incidents_holds_and_rejections_and_the_decision_pages_draw(
    config: Config, storage: S3Storage, tmp_path: Path
) -> None:
    """The index as ``steps.reporting.publish_index`` gathers it: open incidents, the streak,
    recent alerts, a hold as loud as a deploy, a deploy's refit listed once, a rejected
    training set; then a decision and a drift page with their charts, in the browser."""
    cfg = replace(config, storage=replace(config.storage, bucket=storage.bucket))
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    gate = cfg.gate
    policy = {"gate": asdict(gate), "drift": asdict(cfg.drift)}
    first = {"version": "v1", "deploy": True, "rule": "first_model", "reason": "deploy: first"}
    better = Comparison("auc", 0.84, 0.80, 0.04, 0.02, 0.06, 0.95, 1000, 2000)
    deployed = {
        "version": "v2",
        **decide(Evidence(0.84, better, 0.81), gate).as_dict(),
        "comparison": better.as_dict(),
        "policy": policy,
    }
    worse = Comparison("auc", 0.78, 0.81, -0.03, -0.045, -0.015, 0.95, 1000, 2000)
    held = {
        "version": "v3",
        **decide(Evidence(0.78, worse, 0.82, data_drifted=True), gate).as_dict(),
        "comparison": worse.as_dict(),
        "policy": policy,
        "drift": {"data_drifted": True, "features": [], "drifted": []},
    }
    _version(registry, "20261101T000000Z-v1", first | {"version": "20261101T000000Z-v1"})
    _version(registry, "20261102T000000Z-v2", deployed | {"version": "20261102T000000Z-v2"})
    refit = deployed | {
        "version": "20261102T000000Z-v2",
        "serving_version": "20261102T000100Z-r2",
    }
    _version(registry, "20261102T000100Z-r2", refit)  # the serving refit: the same record
    _version(registry, "20261103T000000Z-v3", held | {"version": "20261103T000000Z-v3"})
    _version(registry, "20261104T000000Z-v4", None)  # trained, not decided yet
    champion = registry.promote(
        "20261102T000100Z-r2", expected=None, reason="deploy: better", metrics={"auc": 0.84}
    )
    layout = Layout.of(cfg)
    incidents = Incidents(storage, layout)
    incidents.failed(
        "dag:retrain",
        "retrain failed",
        f"train_challenger: boom, see {storage.uri(cfg.storage.reports_prefix)}training/t.html",
        run="r9",
        links=("http://localhost:8080/dags/retrain/runs/r9", "s3://elsewhere/raw/x.csv"),
    )
    incidents.bump_streak("r9", "failed")
    incidents.notice(
        "retrain:held",
        "retrain held the champion",
        "hold: inferior",
        links=(storage.uri(reports.report_keys(cfg.storage.reports_prefix, "v3").decision),),
    )
    History(storage, layout).append(
        [
            Entry(
                at="2026-11-05T00:00:00+00:00",
                kind="training set",
                name="run-9",
                status="rejected",
                reason="only 120 rows",
                link="training/t.html",
            )
        ]
    )
    reporting.publish_index(storage, cfg)
    history = reporting.champion_history(registry, gate.metric)
    assert history == [
        {"version": champion.version, "at": champion.promoted_at, "metric": 0.84, "kind": "deploy"}
    ]

    site = tmp_path / "site"
    index = download_reports(storage, cfg, site)
    page = index.read_text()
    # nothing fetched: the only absolute references are links to the failed run in Airflow
    absolute = re.findall(r'\b(?:src|href)="((?:https?:)?//[^"]*)"', page)
    assert set(absolute) == {"http://localhost:8080/dags/retrain/runs/r9"}  # incident, alert
    assert "url(" not in page
    dom = browser.rendered_dom(index)
    for text in (
        "Needs attention",
        "failed run",
        "train_challenger: boom",
        "retrain streak",
        "held (inferior_after_change)",
        "training set rejected",
        "Recent alerts",
        "retrain held the champion",
        "s3://elsewhere/raw/x.csv",  # as text
    ):
        assert text in dom, text
    assert 'href="http://localhost:8080/dags/retrain/runs/r9"' in page
    assert 'href="decisions/v3.html"' in page  # the alert's s3:// link, made relative
    assert page.count('href="decisions/20261102T000000Z-v2.html"') == 3  # card, table, champion
    assert "20261102T000100Z-r2.html" not in page  # the refit has no page of its own
    assert "20261104T000000Z-v4" not in page
    shot = browser.screenshot(index, tmp_path / "index.png", size=(1200, 1400))
    assert browser.png_colours(shot) >= 8

    drift = {
        "features": [
            {
                "name": f"f{i}",
                "kind": "numeric",
                "psi": 0.3 if i < 2 else 0.01,
                "distance": 0.2,
                "distance_name": "wasserstein_norm",
                "drifted": i < 2,
                "monitored": i != 5,
                "labels": ["(0, 1]", "(1, 2]", "missing"],
                "reference": [0.5, 0.5, 0.0],
                "current": [0.2, 0.7, 0.1],
                "unseen": None,
                "n_reference": 100,
                "n_current": 50,
            }
            for i in range(22)
        ],
        "drifted": ["f0", "f1"],
        "share": 2 / 21,
        "data_drifted": False,
        "rule": "share",
        "prediction": None,
        "prediction_drifted": False,
    }
    record = held | {"drift": drift}
    reports.publish_decision(
        storage,
        cfg.storage.reports_prefix,
        "v3",
        record,
        {"auc": 0.78},
        {"auc": 0.81},
        drift,
        champion_history=history,
    )
    reports.publish_drift(storage, cfg.storage.reports_prefix, "v3", drift, policy=policy["drift"])
    download_reports(storage, cfg, site)
    margin = f"-margin -{cfg.gate.non_inferiority_margin:.4f}"
    for path, expected in (
        (site / "decisions" / "v3.html", ["held", "Non-inferior", "-0.0450", margin]),
        (site / "drift" / "v3.html", ["no data drift", "f0", "f1", "not counted", "drift = false"]),
    ):
        html = path.read_text()
        assert not EXTERNAL.findall(html), f"{path.name} references the internet"
        dom = browser.rendered_dom(path)
        assert "<svg" in dom
        for text in expected:
            assert text in dom, f"{path}: {text!r} not rendered"
        shot = browser.screenshot(path, tmp_path / f"{path.parent.name}.png", size=(1200, 1400))
        assert browser.png_colours(shot) >= 8


def test_flagged_decisions_alert_with_their_flags_and_the_index_lists_the_alert(
    config: Config, storage: S3Storage
) -> None:
    """record_outcome: the notice of a flagged decision says the flag first, and the index it
    publishes afterwards already lists that alert, its reason once."""
    from retrain.steps.retrain import DeployResult, record_outcome

    cfg = replace(config, storage=replace(config.storage, bucket=storage.bucket))
    incidents = Incidents(storage, Layout.of(cfg))
    gate, policy = cfg.gate, {"gate": asdict(cfg.gate)}
    july_cmp = Comparison("auc", 0.7700, 0.7738, -0.0038, -0.0058, -0.0018, 0.95, 1000, 5000)
    july = {
        "version": "v7",
        **decide(Evidence(0.77, july_cmp, 0.78, prediction_drifted=True), gate).as_dict(),
        "comparison": july_cmp.as_dict(),
        "policy": policy,
    }
    assert july["rule"] == "non_inferior_after_change", "the margin must allow this deploy"
    sent = record_outcome(
        incidents, storage, cfg, july, DeployResult("v7-r", True, july["reason"], "v6"), run="r7"
    )
    assert sent is not None
    assert sent.subject == "[retrain] NOTICE: retrain deployed v7-r although worse with confidence"
    assert sent.reason.startswith(
        "FLAGGED: deployed although worse with confidence (within the margin). deploy: "
    )
    sep_cmp = Comparison("auc", 0.594, 0.580, 0.014, 0.006, 0.022, 0.95, 1000, 5000)
    september = {
        "version": "v9",
        **decide(Evidence(0.594, sep_cmp, 0.62), replace(gate, min_metric=0.6)).as_dict(),
        "comparison": sep_cmp.as_dict(),
        "policy": policy,
    }
    held = record_outcome(
        incidents,
        storage,
        cfg,
        september,
        DeployResult("v9", False, september["reason"], "v7-r"),
        run="r9",
    )
    assert held is not None and held.reason.startswith(
        "FLAGGED: held on the floor while the champion is also below it on the same rows."
    )
    index = storage.get_bytes(f"{cfg.storage.reports_prefix}index.html").decode()
    alerts = index[index.index("Recent alerts") :]
    assert "retrain deployed v7-r although worse with confidence" in alerts
    assert "retrain held the champion (1 run(s) in a row without a deploy)" in alerts
    assert index.count("FLAGGED: held on the floor") == 1
    attention = index[index.index("Needs attention") : index.index("Recent alerts")]
    assert "retrain streak" in attention, "the streak bumped before the index was published"
