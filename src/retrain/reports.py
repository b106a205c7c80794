"""Static HTML reports: plain HTML with inline CSS, no JavaScript, every value escaped.

The site is a directory tree under ``reports_prefix`` with relative links only, so it works the
same from S3 static website hosting, a presigned browse, or ``aws s3 sync`` to a laptop::

    index.html
    decisions/<version>.html
    drift/<version>.html
    validations/<batch>.html

Rendering functions are pure (dicts in, ``str`` out); ``publish_*`` functions take a storage.
Input dicts come from other stages, so the renderers accept a few shapes and never trust a
string: text goes through ``html.escape`` and links are kept only if relative or http(s).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from retrain.storage import S3Storage

HTML_CONTENT_TYPE = "text/html; charset=utf-8"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:64rem;padding:0 1rem;color:#1f2328;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.3rem}h2{font-size:1.2rem;margin-top:2rem}
nav{font-size:.9rem;margin-bottom:1rem}a{color:#0969da}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.95rem}
th,td{border:1px solid #d0d7de;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td{background:#ffebe9}tr.drifted td:first-child{font-weight:600}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:1rem;font-size:.85rem;
font-weight:600;color:#fff}
.ok{background:#1a7f37}.bad{background:#cf222e}.neutral{background:#6e7781}
.muted{color:#656d76;font-size:.9rem}code{background:#f6f8fa;padding:0 .2rem;
border-radius:3px;word-break:break-all}
""".strip()


@dataclass(frozen=True)
class ReportKeys:
    decision: str
    drift: str


def _check_name(name: str, what: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid {what} for a report file name: {name!r}")
    return name


def _norm_prefix(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def report_keys(reports_prefix: str, version: str) -> ReportKeys:
    """S3 keys of a model version's decision and drift pages."""
    p, v = _norm_prefix(reports_prefix), _check_name(version, "version")
    return ReportKeys(decision=f"{p}decisions/{v}.html", drift=f"{p}drift/{v}.html")


def index_key(reports_prefix: str) -> str:
    return f"{_norm_prefix(reports_prefix)}index.html"


def validations_prefix(reports_prefix: str) -> str:
    return f"{_norm_prefix(reports_prefix)}validations/"


def validation_summary_key(reports_prefix: str, batch_id: str) -> str:
    return f"{validations_prefix(reports_prefix)}{_check_name(batch_id, 'batch id')}.html"


# -- small HTML helpers -------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _safe_href(link: Any, root: str = "") -> str | None:
    """An href that is relative (prefixed with ``root``) or http(s); anything else is dropped."""
    if not isinstance(link, str) or not link.strip():
        return None
    link = link.strip()
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in link):
        return None
    parts = urlsplit(link)
    if parts.scheme:
        return link if parts.scheme.lower() in ("http", "https") and parts.netloc else None
    if link.startswith(("//", "\\")):
        return None
    return link if link.startswith(("/", "#")) else root + link


def _page_link(kind: str, version: str) -> str:
    """Relative link from the reports root to a version's page; the version is URL-quoted."""
    return f"{kind}/{quote(version, safe='')}.html"


def _a(link: Any, text: Any, root: str = "") -> str:
    href = _safe_href(link, root)
    return f'<a href="{_e(href)}">{_e(text)}</a>' if href else _e(text)


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _e(value)
    if isinstance(value, float) and not math.isfinite(value):
        return _e(value)
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _value(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        return f"<code>{_e(json.dumps(value, sort_keys=True, default=str))}</code>"
    return _num(value)


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{_e(text)}</span>'


def _table(headers: Iterable[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _page(title: str, body: str, *, root: str = "") -> str:
    nav = "" if not root else f'<nav><a href="{_e(root)}index.html">&larr; All reports</a></nav>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>{nav}<h1>{_e(title)}</h1>\n{body}\n</body></html>\n"
    )


def _kv_table(items: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    skip = set(skip)
    rows = [
        f"<tr><th>{_e(k)}</th><td>{_value(v)}</td></tr>" for k, v in items.items() if k not in skip
    ]
    return f"<table><tbody>{''.join(rows)}</tbody></table>" if rows else ""


# -- decisions ----------------------------------------------------------------------------------


def decision_outcome(decision: Mapping[str, Any]) -> tuple[str, str]:
    """(label, css kind) from ``promoted``/``deploy`` (bool) or a free-text ``outcome``/``status``.

    ``deploy`` is what ``retrain.decision.Decision.as_dict()`` produces.
    """
    if isinstance(decision.get("promoted"), bool):
        return ("promoted", "ok") if decision["promoted"] else ("rejected", "bad")
    if isinstance(decision.get("deploy"), bool):
        return ("deployed", "ok") if decision["deploy"] else ("held", "bad")
    label = str(decision.get("outcome") or decision.get("status") or "unknown")
    low = label.lower()
    kind = "ok" if low in ("promoted", "deployed", "accepted", "passed") else "neutral"
    if low in ("rejected", "failed", "blocked", "quarantined"):
        kind = "bad"
    return label, kind


def _metrics_table(challenger: Mapping[str, Any], champion: Mapping[str, Any] | None) -> str:
    names = sorted(set(challenger) | set(champion or {}))
    if not names:
        return '<p class="muted">No metrics.</p>'
    rows = []
    for name in names:
        new = challenger.get(name)
        old = (champion or {}).get(name)
        delta = ""
        if all(isinstance(x, int | float) and not isinstance(x, bool) for x in (new, old)):
            delta = f"{new - old:+.4f}"
        rows.append(
            f"<tr><td>{_e(name)}</td><td class='num'>{_num(new)}</td>"
            f"<td class='num'>{_num(old) if champion is not None else '&mdash;'}</td>"
            f"<td class='num'>{delta}</td></tr>"
        )
    return _table(["metric", "challenger", "champion", "delta"], rows)


def render_decision(
    version: str,
    decision: Mapping[str, Any],
    challenger_metrics: Mapping[str, Any],
    champion_metrics: Mapping[str, Any] | None,
    drift: Mapping[str, Any] | None,
) -> str:
    """The gate's verdict on ``version``; lives at ``decisions/<version>.html``."""
    label, kind = decision_outcome(decision)
    parts = [f"<p>Outcome: {_badge(label, kind)}</p>"]
    if reason := decision.get("reason"):
        parts.append(f"<p><strong>Reason:</strong> {_e(reason)}</p>")
    parts.append("<h2>Challenger vs champion</h2>")
    if champion_metrics is None:
        parts.append('<p class="muted">No champion yet: the challenger faced only the floor.</p>')
    parts.append(_metrics_table(challenger_metrics, champion_metrics))
    if drift is not None:
        threshold, rows = drift_rows(drift)
        drifted = [r[0] for r in rows if r[2]]
        link = _a(_page_link("drift", version), "full drift report", root="../")
        summary = f"{len(drifted)} of {len(rows)} features drifted"
        if threshold is not None:
            summary += f" (PSI &gt; {_num(threshold, 3)})"
        listing = f": {', '.join(_e(d) for d in drifted)}" if drifted else ""
        parts.append(f"<h2>Drift</h2><p>{summary}{listing}. See the {link}.</p>")
    details = _kv_table(decision, skip=("reason",))
    if details:
        parts.append(f"<h2>Decision details</h2>{details}")
    return _page(f"Decision for model {version}", "\n".join(parts), root="../")


# -- drift --------------------------------------------------------------------------------------


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def drift_rows(
    drift: Mapping[str, Any],
) -> tuple[float | None, list[tuple[str, float | None, bool]]]:
    """Normalise a drift result to ``(threshold, [(feature, psi, drifted)])``, worst first.

    Accepts ``features``/``psi`` as ``{name: psi}``, ``{name: {"psi": .., "drifted": ..}}`` or a
    list of ``{"feature"|"name": .., "psi": .., "drifted": ..}``; ``threshold`` or
    ``psi_threshold`` at the top level. An explicit ``drifted`` flag, or a top-level ``drifted``
    list of names (``retrain.drift.DriftReport.as_dict()``), wins over the threshold.
    """
    threshold = _as_float(drift.get("threshold", drift.get("psi_threshold")))
    listed = drift.get("drifted")
    listed = {str(n) for n in listed} if isinstance(listed, list | tuple) else None
    raw = drift.get("features", drift.get("psi", {}))
    items: list[tuple[str, Any]] = []
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping):
                items.append((str(item.get("feature", item.get("name", "?"))), item))
    rows = []
    for name, value in items:
        flag = None
        if isinstance(value, Mapping):
            flag = value.get("drifted")
            value = value.get("psi")
        psi = _as_float(value)
        if isinstance(flag, bool):
            drifted = flag
        elif listed is not None:
            drifted = name in listed
        else:
            drifted = psi is not None and threshold is not None and psi > threshold
        rows.append((name, psi, drifted))
    rows.sort(key=lambda r: (r[1] is None or math.isnan(r[1]), -(r[1] or 0.0), r[0]))
    return threshold, rows


def render_drift(version: str, drift: Mapping[str, Any]) -> str:
    """PSI per feature against the reference profile; lives at ``drift/<version>.html``."""
    threshold, rows = drift_rows(drift)
    n_drifted = sum(1 for r in rows if r[2])
    thr = _num(threshold, 3) if threshold is not None else "not set"
    parts = [
        f"<p>Threshold: PSI &gt; <strong>{thr}</strong> counts as drift. "
        f"{_badge(f'{n_drifted} drifted', 'bad' if n_drifted else 'ok')} "
        f"of {len(rows)} features.</p>",
        '<p class="muted">PSI: &lt; 0.1 stable, 0.1&ndash;0.2 moderate, &gt; 0.2 significant '
        "shift.</p>",
    ]
    table_rows = [
        f'<tr class="{"drifted" if drifted else "stable"}"><td>{_e(name)}</td>'
        f"<td class='num'>{_num(psi)}</td><td>{'yes' if drifted else 'no'}</td></tr>"
        for name, psi, drifted in rows
    ]
    parts.append(_table(["feature", "PSI", "drifted"], table_rows))
    extra = {
        k: v
        for k, v in drift.items()
        if k not in ("features", "psi", "threshold", "psi_threshold", "drifted")
    }
    if extra:
        parts.append(f"<h2>Details</h2>{_kv_table(extra)}")
    return _page(f"Drift for model {version}", "\n".join(parts), root="../")


# -- validations --------------------------------------------------------------------------------


def _validations_table(entries: Iterable[Mapping[str, Any]], root: str) -> str:
    rows = []
    for entry in entries:
        status = str(entry.get("status", "unknown"))
        kind = {"passed": "ok", "quarantined": "bad"}.get(status.lower(), "neutral")
        result = entry.get("result")
        docs_cell = _a(result, "GX result", root) if result else "&mdash;"
        rows.append(
            f"<tr><td>{_e(entry.get('file', '?'))}</td><td>{_badge(status, kind)}</td>"
            f"<td>{_e(entry.get('reason') or '')}</td><td>{docs_cell}</td></tr>"
        )
    if not rows:
        return '<p class="muted">No files validated yet.</p>'
    return _table(["file", "status", "reason", "report"], rows)


def render_validation_summary(entries: list[Mapping[str, Any]], *, root: str = "../") -> str:
    """One row per checked file: ``file``, ``status`` (passed/quarantined), ``reason``,
    ``result`` (link to the GX result, relative to the reports root or http(s)).

    ``root`` is the path from this page back to the reports root (``../`` for
    ``validations/<batch>.html``).
    """
    passed = sum(1 for e in entries if str(e.get("status", "")).lower() == "passed")
    body = (
        f"<p>{passed} passed, {len(entries) - passed} quarantined or failed.</p>"
        + _validations_table(entries, root)
    )
    return _page("Validation summary", body, root=root)


# -- history and one file's result --------------------------------------------------------------


def _history_table(entries: Iterable[Mapping[str, Any]], root: str) -> str:
    rows = []
    for entry in entries:
        status = str(entry.get("status", "unknown"))
        kind = {"passed": "ok", "quarantined": "bad", "rejected": "bad"}.get(status, "neutral")
        link = entry.get("link")
        rows.append(
            f"<tr><td>{_e(entry.get('at', ''))}</td><td>{_e(entry.get('kind', ''))}</td>"
            f"<td>{_a(link, entry.get('name', '?'), root) if link else _e(entry.get('name'))}</td>"
            f"<td>{_badge(status, kind)}</td><td>{_e(entry.get('reason') or '')}</td></tr>"
        )
    if not rows:
        return '<p class="muted">Nothing landed yet.</p>'
    return _table(["when", "what", "name", "status", "reason"], rows)


def render_history_page(number: int, entries: list[Mapping[str, Any]]) -> str:
    """One page of the history (``history/page-<n>.html``), entries newest first, linking to
    the page before it (pages never change once written, so they link backwards only)."""
    from retrain.layout import history_page_name

    older = f"<p>{_a(history_page_name(number - 1, 'html'), 'older')}</p>" if number > 0 else ""
    body = _history_table(entries, root="../") + older
    return _page(f"Files and training-set checks, publication {number + 1}", body, root="../")


def render_validation_result(
    result: Mapping[str, Any], files: Sequence[str], *, root: str = "../../"
) -> str:
    """A GX validation result (``GateResult.to_dict()``) of ``files`` as a page: the verdict
    and one row per expectation. ``root``: ``../../`` for ``validations/<batch>/<name>.html``,
    ``../`` for a training set's ``training/<run>.html``."""
    names = ", ".join(files)
    outcome = "passed" if result.get("success") else "failed"
    parts = [
        f"<p>{_badge(outcome, 'ok' if result.get('success') else 'bad')} "
        f"{_e(result.get('summary') or '')}</p>",
        f"<p>Suite <code>{_e(result.get('suite', '?'))}</code>; "
        f"{len(files)} file(s): {_e(names)}</p>",
    ]
    rows = []
    gx = result.get("result") or {}
    for item in gx.get("results") or []:
        config = item.get("expectation_config") or {}
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        details = item.get("result") or {}
        seen = details.get("observed_value", details.get("unexpected_count", ""))
        examples = list(dict.fromkeys(map(repr, details.get("partial_unexpected_list") or [])))
        ok = bool(item.get("success"))
        arguments = json.dumps(kwargs, default=str)
        rows.append(
            f"<tr><td>{_badge('ok' if ok else 'failed', 'ok' if ok else 'bad')}</td>"
            f"<td>{_e(config.get('type', '?'))}</td><td><code>{_e(arguments)}</code></td>"
            f"<td>{_e(seen)}</td><td>{_e(', '.join(examples[:5]))}</td></tr>"
        )
    if rows:
        parts.append(
            _table(["", "expectation", "arguments", "observed / unexpected", "e.g."], rows)
        )
    return _page("Validation result", "\n".join(parts), root=root)


# -- index --------------------------------------------------------------------------------------


def render_index(
    *,
    champion: Mapping[str, Any] | None,
    latest_decisions: list[Mapping[str, Any]],
    latest: list[Mapping[str, Any]],
    history_page: str | None = None,
) -> str:
    """The landing page. Decision entries: ``version``, ``promoted``/``outcome``, ``reason``,
    optional ``decided_at`` and ``drift`` (truthy when a drift page exists); ``latest``: the
    newest history entries (:mod:`retrain.history`), newest first; ``history_page``: the
    newest history page, relative to the root (where "everything, page by page" starts)."""
    parts = ["<h2>Champion</h2>"]
    if champion:
        version = str(champion.get("version", "?"))
        link = _a(_page_link("decisions", version), version)
        parts.append(
            f"<p>Model {link}, deployed {_e(champion.get('deployed_at', '?'))}"
            + (f" &mdash; {_e(champion['reason'])}" if champion.get("reason") else "")
            + "</p>"
        )
        if metrics := champion.get("metrics"):
            parts.append(_kv_table(metrics))
    else:
        parts.append('<p class="muted">No champion deployed yet.</p>')

    parts.append("<h2>Latest decisions</h2>")
    rows = []
    for d in latest_decisions:
        version = str(d.get("version", "?"))
        label, kind = decision_outcome(d)
        drift = _a(_page_link("drift", version), "drift") if d.get("drift") else "&mdash;"
        rows.append(
            f"<tr><td>{_a(_page_link('decisions', version), version)}</td>"
            f"<td>{_badge(label, kind)}</td><td>{_e(d.get('reason') or '')}</td>"
            f"<td>{_e(d.get('decided_at') or '')}</td><td>{drift}</td></tr>"
        )
    if rows:
        parts.append(_table(["version", "outcome", "reason", "when", "drift"], rows))
    else:
        parts.append('<p class="muted">No retraining runs yet.</p>')

    parts.append("<h2>Latest files and training-set checks</h2>")
    if history_page:
        parts.append(f"<p>{_a(history_page, 'Everything, page by page')}</p>")
    parts.append(_history_table(latest, root=""))
    return _page("Model retraining reports", "\n".join(parts))


def _publish(storage: S3Storage, key: str, page: str) -> str:
    storage.put_bytes(key, page.encode("utf-8"), content_type=HTML_CONTENT_TYPE)
    return key


def publish_index(
    storage: S3Storage,
    reports_prefix: str,
    *,
    champion: Mapping[str, Any] | None,
    latest_decisions: list[Mapping[str, Any]],
    latest: list[Mapping[str, Any]],
    history_page: str | None = None,
) -> str:
    """Write ``<reports_prefix>index.html``; return its key."""
    page = render_index(
        champion=champion,
        latest_decisions=latest_decisions,
        latest=latest,
        history_page=history_page,
    )
    return _publish(storage, index_key(reports_prefix), page)


def publish_decision(
    storage: S3Storage,
    reports_prefix: str,
    version: str,
    decision: Mapping[str, Any],
    challenger_metrics: Mapping[str, Any],
    champion_metrics: Mapping[str, Any] | None,
    drift: Mapping[str, Any] | None,
) -> str:
    page = render_decision(version, decision, challenger_metrics, champion_metrics, drift)
    return _publish(storage, report_keys(reports_prefix, version).decision, page)


def publish_drift(
    storage: S3Storage, reports_prefix: str, version: str, drift: Mapping[str, Any]
) -> str:
    return _publish(
        storage, report_keys(reports_prefix, version).drift, render_drift(version, drift)
    )


def publish_validation_summary(
    storage: S3Storage, reports_prefix: str, batch_id: str, entries: list[Mapping[str, Any]]
) -> str:
    """Write the batch's page and, beside it, its entries as JSON for the index to read back."""
    key = validation_summary_key(reports_prefix, batch_id)
    storage.put_json(
        key.removesuffix(".html") + ".json", {"batch_id": batch_id, "entries": entries}
    )
    return _publish(storage, key, render_validation_summary(entries, root="../"))
