"""The reports inside the Airflow UI, behind its login (issue: reports reviewed in Airflow).

Runs on the shared embedded stack after the story in test_stack (a model deployed, a drifted
week decided, files quarantined), with authentication on: the stack's users are named, with
roles (``E2E_USERS`` in conftest.py), not all admins. The plugin's routes are a security
boundary, so they are tested as one: who may read, and which paths can never reach the bucket.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import pytest

from retrain.layout import Layout
from retrain.local import follow
from retrain.local.devtools import open_browser
from retrain.report_links import PLUGIN_PREFIX

pytestmark = pytest.mark.e2e
PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOSTILE_NAME = "<img src=x onerror=alert(1)>report.csv"


def get(url: str, token: str | None = None, headers: dict[str, str] | None = None):
    """One request with the path sent exactly as given (no client-side normalization)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    try:
        conn.request("GET", target, headers=sent)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def tokens(stack) -> dict[str, str]:
    return {user: stack.token(user) for user in stack.users}


@pytest.fixture(scope="module")
def reports_url(stack) -> str:
    return f"{stack.api_url}{PLUGIN_PREFIX}"


def test_only_users_who_may_read_the_pipelines_dags_read_the_reports(stack, tokens, reports_url):
    assert stack.users["nobody"] == "", "a user without any role: no read access to any DAG"
    status, headers, body = get(f"{reports_url}/index.html")
    assert status == 401, body[:300]
    assert "log in" in body.decode() and "/auth/login?next=" in body.decode()
    assert get(f"{reports_url}/index.html", "not.a.token")[0] in (401, 403)
    status, _, body = get(f"{reports_url}/index.html", tokens["nobody"])
    assert status == 403, body[:300]
    for user in ("viewer", "admin"):
        status, headers, body = get(f"{reports_url}/index.html", tokens[user])
        assert status == 200, (user, body[:300])
        assert headers["content-type"].startswith("text/html")
        assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
        assert "default-src 'none'" in headers["content-security-policy"]
        assert b"<script" not in body.lower()
    # the run views authorize too
    run = stack.api.dag_runs("retrain")[0]
    view = f"{reports_url}/runs/retrain/{quote(run.run_id, safe='')}"
    assert get(view)[0] == 401
    assert get(view, tokens["nobody"])[0] == 403


def test_no_path_reaches_another_prefix_of_the_bucket(stack, cfg, storage, tokens, reports_url):
    """Traversal in every spelling: refused (400) or not a report (404), never another object."""
    secret = f"{cfg.storage.ledger_prefix}plugin-canary.json"
    storage.put_bytes(secret, b'{"sealed": "must never be served"}')
    storage.put_bytes(f"{cfg.storage.models_prefix}plugin-canary.json", b'{"sealed": 1}')
    try:
        _refused_every_spelling(cfg, tokens["admin"], reports_url)
    finally:
        storage.delete(secret)
        storage.delete(f"{cfg.storage.models_prefix}plugin-canary.json")


def _refused_every_spelling(cfg, admin: str, reports_url: str) -> None:
    attempts = [
        "../ledger/plugin-canary.json",
        "..%2Fledger%2Fplugin-canary.json",
        "%2e%2e/ledger/plugin-canary.json",
        "%2E%2E%2Fledger%2Fplugin-canary.json",
        "%252e%252e%252fledger%252fplugin-canary.json",
        "validations/../../ledger/plugin-canary.json",
        "validations/..%5C..%5Cledger%5Cplugin-canary.json",
        "/ledger/plugin-canary.json",
        "//ledger/plugin-canary.json",
        "%2Fledger%2Fplugin-canary.json",
        "ledger/plugin-canary.json",
        "models/plugin-canary.json",
        "raw/",
        f"s3:%2F%2F{cfg.storage.bucket}%2Fledger%2Fplugin-canary.json",
        "index.html%00../../ledger/plugin-canary.json",
        ".%2e/ledger/plugin-canary.json",
        "./index.html",
        "validations//x.html",
    ]
    for path in attempts:
        status, _, body = get(f"{reports_url}/{path}", admin)
        assert status in (400, 404), (path, status, body[:200])
        assert b"sealed" not in body, path
    # what remains readable is under the reports prefix only
    status, _, body = get(f"{reports_url}/index.html", admin)
    assert status == 200 and b"sealed" not in body


def test_reports_stream_with_their_etag(stack, tokens, reports_url):
    admin = tokens["admin"]
    status, headers, body = get(f"{reports_url}/index.html", admin)
    assert status == 200 and headers.get("etag")
    assert int(headers["content-length"]) == len(body)
    status, again, body = get(
        f"{reports_url}/index.html", admin, {"If-None-Match": headers["etag"]}
    )
    assert status == 304 and body == b"" and again["etag"] == headers["etag"]
    status, _, _ = get(f"{reports_url}/index.html", admin, {"If-None-Match": '"not-it"'})
    assert status == 200


def test_a_landed_file_named_with_html_renders_escaped(stack, cfg, storage, tokens, reports_url):
    key = cfg.storage.landing_prefix + HOSTILE_NAME
    seen = follow.run_ids(stack.api, "ingest", finished_only=True)
    storage.put_bytes(key, b"not,the,schema\n1,2,3\n")
    (routed,) = follow.wait_routed(storage, cfg, [key], 300)
    follow.wait_new_run(stack.api, "ingest", seen, 300)
    assert routed.valid is False
    batch = Layout.batch_of(routed.dest_key)
    status, _, body = get(f"{reports_url}/validations/{batch}.html", tokens["viewer"])
    assert status == 200
    page = body.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;report.csv" in page
    assert "<img src=x" not in page


def _urls(value) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in _urls(v)]
    return [value] if isinstance(value, str) and value.startswith(("http://", "https://")) else []


def test_every_link_in_alerts_and_status_opens_with_a_token(stack, cfg, storage, tokens):
    env = {**os.environ, **stack.env()}
    done = subprocess.run(
        [Path(sys.executable).parent / "retrain", "--root", str(stack.root), "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=True,
    )
    status = json.loads(done.stdout)
    urls = _urls(status)
    assert status["reports"]["url"] == f"{stack.api_url}{PLUGIN_PREFIX}/index.html"
    assert status["reports"]["uri"].startswith("s3://")
    assert status["last_decision"]["page"]["url"].startswith(f"{stack.api_url}{PLUGIN_PREFIX}/")
    # the alerts as sent: every report link in an SNS message is a plugin URL with its URI beside
    from retrain.alerts import Incidents
    from retrain.report_links import WebLinks

    web = WebLinks(stack.api_url, cfg.storage.bucket, cfg.storage.reports_prefix)
    history = Incidents(storage, Layout.of(cfg)).history(limit=20)
    assert history, "the story sent alerts"
    for alert in history:
        for link in alert.get("links") or ():
            if str(link).startswith(f"s3://{cfg.storage.bucket}/{cfg.storage.reports_prefix}"):
                assert web.url(link), link
                urls.append(web.url(link))
            elif str(link).startswith("http"):
                urls.append(str(link))
    plugin_urls = [u for u in urls if PLUGIN_PREFIX in u]
    assert len(plugin_urls) >= 3, urls
    for url in dict.fromkeys(urls):
        status_code, _, body = get(url, tokens["admin"])
        if status_code == 303:  # a run view opening its one page
            status_code, _, body = get(
                urljoin(url, _location(url, tokens["admin"])), tokens["admin"]
            )
        assert status_code == 200, (url, status_code, body[:200])


def _location(url: str, token: str) -> str:
    return get(url, token)[1]["location"]


def test_each_pipeline_run_opens_its_reports(stack, tokens, reports_url):
    admin = tokens["admin"]
    ingest = next(r for r in stack.api.dag_runs("ingest") if r.state == "success")
    status, headers, _ = get(f"{reports_url}/runs/ingest/{quote(ingest.run_id, safe='')}", admin)
    assert status == 303 and re.fullmatch(
        r"\.\./\.\./validations/[0-9a-f]{12}\.html", headers["location"]
    )
    retrain = next(r for r in stack.api.dag_runs("retrain") if r.state == "success")
    status, _, body = get(f"{reports_url}/runs/retrain/{quote(retrain.run_id, safe='')}", admin)
    page = body.decode()
    assert status == 200 and "training-set check" in page and "decisions/" in page
    for href in re.findall(r'href="(\.\./\.\./[^"]+)"', page):
        target = urljoin(f"{reports_url}/runs/retrain/x", href)
        assert get(target, admin)[0] == 200, target
    score = next(r for r in stack.api.dag_runs("score") if r.state == "success")
    status, _, body = get(f"{reports_url}/runs/score/{quote(score.run_id, safe='')}", admin)
    assert status == 200 and "predictions manifest" in body.decode()
    watchdog = [r for r in stack.api.dag_runs("watchdog") if r.state == "success"]
    if watchdog:
        run_id = quote(watchdog[0].run_id, safe="")
        status, _, body = get(f"{reports_url}/runs/watchdog/{run_id}", admin)
        assert status == 200 and "what the watchdog saw" in body.decode()
    assert get(f"{reports_url}/runs/ingest/no-such-run", admin)[0] == 404
    assert get(f"{reports_url}/runs/not_ours/x", admin)[0] == 404


def test_a_person_logs_in_and_reads_the_reports_inside_the_airflow_ui(
    stack, tmp_path_factory, reports_url
):
    """Headless Chromium: Airflow's login form, the nav entry, a retrain run's Reports tab."""
    password = json.loads((stack.airflow_home / "passwords.json").read_text())["viewer"]
    retrain = next(r for r in stack.api.dag_runs("retrain") if r.state == "success")
    shots = Path(os.environ.get("RETRAIN_SCREENSHOT_DIR") or tmp_path_factory.mktemp("shots"))
    with open_browser() as page:
        page.goto(f"{reports_url}/index.html")  # as from an alert: the login page first
        page.wait_for("!!document.querySelector('input[name=username]')", 60, "the login form")
        page.fill("input[name=username]", "viewer")
        page.fill("input[name=password]", password)
        page.evaluate("document.querySelector('button[type=submit]').click()")
        page.wait_for(f"location.pathname === '{PLUGIN_PREFIX}/index.html'", 60, "the index")
        assert "Model retraining reports" in page.evaluate("document.title")
        page.goto(f"{stack.api_url}/plugin/retrain-reports")  # the nav entry's page
        page.wait_for("document.body.innerText.includes('Retraining reports')", 60, "nav entry")
        html = page.wait_for_frame("Model retraining reports", 60)
        assert "Needs attention" in html or "needs attention" in html.lower()
        page.screenshot(shots / "reports-in-airflow.png")
        run_id = quote(retrain.run_id, safe="")
        page.goto(f"{stack.api_url}/dags/retrain/runs/{run_id}/plugin/retrain-reports-run")
        html = page.wait_for_frame("training-set check", 60)
        assert "decision" in html and "decisions/" in html
        page.screenshot(shots / "run-reports-in-airflow.png")
