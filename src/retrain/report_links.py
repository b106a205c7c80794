"""Links a person can open: the reports as the Airflow plugin serves them, behind Airflow's login.

The bucket is private (on AWS it blocks public access), so an ``s3://`` URI opens nothing in a
browser. The api-server serves ``reports/`` through the plugin (``retrain_plugin``) under
:data:`PLUGIN_PREFIX`; this module turns report keys and URIs into those URLs, and says which
request paths may be read at all. Pure: no Airflow, no network.

The path rule is a whitelist, not a blacklist: a request path is a few ``/``-separated segments
of letters, digits and ``._=+-``, none starting with a dot. So ``..``, ``.``, empty segments,
backslashes, percent signs (double encoding), control characters and absolute keys never reach
the bucket, and the key read is always the reports prefix plus that path: no other prefix of the
bucket (``ledger/``, ``models/``, ``raw/``) can be named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

PLUGIN_PREFIX = "/retrain-reports"  # where the plugin's FastAPI app is mounted on the api-server
RUNS = "runs"  # PLUGIN_PREFIX/runs/<dag_id>/<run_id>: a DAG run's reports (not a bucket key)
MAX_PATH = 512
MAX_SEGMENTS = 8
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=+-]{0,254}")


class UnsafePath(ValueError):
    """A request path that does not name a report: refused before the bucket is asked."""


def report_path(path: str) -> str:
    """``path`` checked against the whitelist; raises :class:`UnsafePath` with the reason."""
    if not isinstance(path, str) or not path:
        raise UnsafePath("empty path")
    if len(path) > MAX_PATH:
        raise UnsafePath(f"path longer than {MAX_PATH} characters")
    segments = path.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise UnsafePath(f"more than {MAX_SEGMENTS} path segments")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise UnsafePath(
                "path segments may hold only letters, digits and ._=+- and may not start with a dot"
            )
    if segments[0] == RUNS:
        raise UnsafePath(f"{RUNS}/ names DAG runs, not reports")
    return path


def report_key(reports_prefix: str, path: str) -> str:
    """The bucket key of a checked request path: always under ``reports_prefix``."""
    prefix = (
        reports_prefix
        if not reports_prefix or reports_prefix.endswith("/")
        else (reports_prefix + "/")
    )
    return prefix + report_path(path)


def base_of(airflow_url: str) -> str:
    """The plugin's root URL under the Airflow UI's URL (``[alerts] airflow_url`` or ``[api]
    base_url``); "" when that is unknown (then callers keep the ``s3://`` URI alone)."""
    url = (airflow_url or "").strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        return ""
    return url + PLUGIN_PREFIX


def report_url(airflow_url: str, path: str) -> str:
    """The URL of a report page, ``path`` relative to the reports root ("" when no URL)."""
    base = base_of(airflow_url)
    return f"{base}/{quote(report_path(path), safe='/=+')}" if base else ""


def url_of_uri(airflow_url: str, bucket: str, reports_prefix: str, uri: str) -> str:
    """The plugin URL of an ``s3://<bucket>/<reports_prefix>...`` URI; "" for any other URI
    (a quarantined file, a model) or a path the plugin would refuse."""
    root = f"s3://{bucket}/{reports_prefix}"
    if not isinstance(uri, str) or not uri.startswith(root) or len(uri) == len(root):
        return ""
    try:
        return report_url(airflow_url, uri[len(root) :])
    except UnsafePath:
        return ""


def run_url(airflow_url: str, dag_id: str, run_id: str) -> str:
    """The plugin's view of one DAG run's reports ("" when no URL)."""
    base = base_of(airflow_url)
    if not base:
        return ""
    return f"{base}/{RUNS}/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


@dataclass(frozen=True)
class WebLinks:
    """Where a deployment's reports open in a browser: the Airflow UI's URL and the bucket's
    reports root. ``look`` is how a link is written for a person (alerts, ``retrain status``)."""

    airflow_url: str
    bucket: str
    reports_prefix: str

    def link(self, link: str) -> dict[str, str]:
        """The link with its browser URL beside it: ``{"url": ..., "uri": ...}``. An http(s)
        link is its own URL; an ``s3://`` report URI gets the plugin URL and keeps the URI for
        scripts; any other ``s3://`` URI (a quarantined file) keeps only its URI."""
        text = str(link)
        if text.startswith(("http://", "https://")):
            return {"url": text, "uri": ""}
        return {
            "url": url_of_uri(self.airflow_url, self.bucket, self.reports_prefix, text),
            "uri": text,
        }

    def url(self, link: str) -> str:
        """The browser URL of a link ("" when it has none: a quarantined file, no Airflow URL)."""
        return self.link(link)["url"]

    def look(self, link: str) -> str:
        """``<url> (<s3 uri>)`` for a report, the link itself otherwise."""
        url = self.url(link)
        return f"{url} ({link})" if url and url != link else str(link)
