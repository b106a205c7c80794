"""Which request paths may name a report, and the browser URLs of report links."""

from __future__ import annotations

import pytest

from retrain.report_links import (
    UnsafePath,
    WebLinks,
    report_key,
    report_path,
    report_url,
    run_url,
    url_of_uri,
)

AIRFLOW = "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    "path",
    [
        "index.html",
        "history/page-000012.html",
        "validations/0a1b2c3d4e5f.html",
        "validations/0a1b2c3d4e5f/group-0123456789abcdef.json",
        "decisions/20261130T164107Z-16eeea.html",
        "alerts/20261130T164107123456Z-dag.retrain.json",
        "training/0a1b2c3d4e5f.html",
    ],
)
def test_every_kind_of_report_key_is_a_valid_path(path):
    assert report_path(path) == path
    assert report_key("reports/", path) == f"reports/{path}"
    assert report_key("reports", path) == f"reports/{path}"


@pytest.mark.parametrize(
    "path",
    [
        "",
        "..",
        "../ledger/x.json",
        "validations/../../ledger/x.json",
        "./index.html",
        ".hidden",
        "/ledger/x.json",
        "a//b",
        "validations\\..\\ledger",
        "%2e%2e/ledger",
        "index.html%00",
        "index.html\x00",
        "index.html\n",
        "s3://bucket/ledger/x.json",
        "runs/ingest/x",
        "é.html",
        "a/" * 9 + "x",
        "x" * 600,
    ],
)
def test_anything_else_is_refused_before_the_bucket_is_asked(path):
    with pytest.raises(UnsafePath):
        report_key("reports/", path)


def test_urls_of_reports_under_the_airflow_url():
    assert report_url(AIRFLOW + "/", "index.html") == f"{AIRFLOW}/retrain-reports/index.html"
    assert report_url("", "index.html") == ""
    assert report_url("s3://b/", "index.html") == ""
    uri = "s3://b/reports/decisions/v1.html"
    assert (
        url_of_uri(AIRFLOW, "b", "reports/", uri) == f"{AIRFLOW}/retrain-reports/decisions/v1.html"
    )
    assert url_of_uri(AIRFLOW, "b", "reports/", "s3://b/quarantine/x.csv") == ""
    assert url_of_uri(AIRFLOW, "other", "reports/", uri) == ""
    assert url_of_uri(AIRFLOW, "b", "reports/", "s3://b/reports/../ledger/x") == ""
    run = run_url(AIRFLOW, "retrain", "asset_triggered__2026-11-30T16:41:00+00:00_x")
    assert run == (
        f"{AIRFLOW}/retrain-reports/runs/retrain/"
        "asset_triggered__2026-11-30T16%3A41%3A00%2B00%3A00_x"
    )


def test_links_keep_their_uri_beside_the_url():
    web = WebLinks(AIRFLOW, "b", "reports/")
    links = [
        web.link(link)
        for link in ("s3://b/reports/index.html", "s3://b/quarantine/x.csv", f"{AIRFLOW}/dags/x")
    ]
    assert links == [
        {"url": f"{AIRFLOW}/retrain-reports/index.html", "uri": "s3://b/reports/index.html"},
        {"url": "", "uri": "s3://b/quarantine/x.csv"},
        {"url": f"{AIRFLOW}/dags/x", "uri": ""},
    ]
    assert web.look("s3://b/reports/index.html") == (
        f"{AIRFLOW}/retrain-reports/index.html (s3://b/reports/index.html)"
    )
    assert web.look("s3://b/quarantine/x.csv") == "s3://b/quarantine/x.csv"
    assert WebLinks("", "b", "reports/").look("s3://b/reports/i.html") == "s3://b/reports/i.html"
