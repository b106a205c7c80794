"""Static HTML reports: plain HTML with inline CSS and inline SVG charts, no JavaScript, every
value escaped.

The site is a directory tree under ``reports_prefix`` with relative links only, so it works the
same from S3 static website hosting, a presigned browse, or ``aws s3 sync`` to a laptop::

    index.html                  (rendered by retrain.report_index)
    decisions/<version>.html    (a deploy's page also under its serving refit's id)
    drift/<version>.html
    validations/<batch>.html

Rendering functions are pure (dicts in, ``str`` out); ``publish_*`` functions take a storage.
Input dicts come from other stages, so the renderers accept a few shapes and never trust a
string. The markup lives in jinja2 templates beside this module (``templates/``: a shared
``base.html.j2`` layout with the CSS, ``_macros.html.j2``, ``_charts.html.j2`` for the SVG
charts and one template per page); this module turns the input into plain rows for them (and
the charts into coordinates), and the formatting helpers are jinja2 filters. Templates are
autoescaped, and links are kept only if relative or http(s) (the ``href`` filter).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlsplit

from retrain.clip import shown

if TYPE_CHECKING:
    import jinja2

    from retrain.storage import S3Storage

HTML_CONTENT_TYPE = "text/html; charset=utf-8"
TEMPLATES_DIR = Path(__file__).with_name("templates")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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


# -- templates and their filters ----------------------------------------------------------------


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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any) -> float | None:
    """A finite number as a float; None for anything else (None, NaN, text, bools)."""
    if not _is_number(value):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _num(value: Any, digits: int = 4) -> str:
    """Floats with ``digits`` decimals, ints as they are, anything else as text ("" for None)."""
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        return "" if value is None else str(value)
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _delta(new: Any, old: Any) -> str:
    """``new - old`` with a sign and 4 decimals, or "" unless both are numbers."""
    return f"{new - old:+.4f}" if _is_number(new) and _is_number(old) else ""


def _signed(value: Any, digits: int = 4) -> str:
    """A number with its sign ("+0.0123"); "" for None, the text of anything else ("nan")."""
    v = _finite(value)
    if v is None:
        return _num(value, digits)
    return f"{v:+.{digits}f}"


def _pct(value: Any, digits: int = 1) -> str:
    """A share as a percentage ("12.5%"); "" for None, the text of anything else."""
    v = _finite(value)
    return _num(value, digits) if v is None else f"{v * 100:.{digits}f}%"


def _when(value: Any) -> str:
    """An ISO 8601 time as "2026-11-30 08:00 UTC" (UTC, to the minute); anything else as is."""
    if not isinstance(value, str) or not value:
        return "" if value is None else str(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    if when.tzinfo is None:
        return f"{when:%Y-%m-%d %H:%M}"
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _json(value: Any, sort_keys: bool = True) -> str:
    return json.dumps(value, sort_keys=sort_keys, default=str)


def _is_structured(value: Any) -> bool:
    """Shown as JSON in a ``<code>`` rather than as a plain value."""
    return isinstance(value, Mapping | list | tuple)


def _finalize(value: Any) -> Any:
    """What ``{{ ... }}`` prints: ``None`` prints as nothing."""
    return "" if value is None else value


@functools.cache
def _environment() -> jinja2.Environment:
    """The template environment, made on first use: importing this module stays cheap (DAG
    files import modules that import it), and templates compile only when a page is rendered
    (then stay cached for the life of the process)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
        auto_reload=False,
    )
    env.filters.update(
        num=_num,
        delta=_delta,
        signed=_signed,
        pct=_pct,
        when=_when,
        json=_json,
        href=_safe_href,
    )
    env.tests["structured"] = _is_structured
    env.globals["page_link"] = _page_link
    return env


def _render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(context)


def render_page(template: str, **context: Any) -> str:
    """A page from one of ``templates/`` (for pages rendered outside this module: a run's view)."""
    return _render(template, **context)


# -- charts: coordinates for the inline SVG in templates/_charts.html.j2 -------------------------
#
# Every chart is computed here as plain numbers and short texts; the templates only draw them.
# A chart never breaks on missing values: None, NaN and text count as "no value" (no bar, a gap
# in a line, "n/a" in a tooltip), and a chart with nothing to draw is None (the page says so).


class _Tick(NamedTuple):
    pos: float  # x or y in the chart's coordinates
    label: str


class _Label(NamedTuple):
    x: float
    y: float
    text: str  # shortened to fit
    full: str  # the whole text, as a tooltip


class _Bar(NamedTuple):
    x: float
    y: float
    w: float
    h: float
    series: int  # 0: reference, 1: new
    tip: str


class _BarChart(NamedTuple):
    width: float
    height: float
    left: float
    right: float  # x where the plot ends
    base: float  # y of 0
    bars: list[_Bar]
    ticks: list[_Tick]  # y axis, as shares
    labels: list[_Label]  # under each group of bars
    rotate: bool  # labels slanted (many bins or long labels)
    title: str


class _IntervalChart(NamedTuple):
    width: float
    height: float
    axis_y: float
    top: float  # y where the vertical lines start
    left: float
    right: float
    zero_x: float
    margin_x: float | None  # -margin (non-inferiority), if known
    margin_label: str
    estimate_x: float
    estimate_label: str
    low_x: float | None  # the interval, if defined
    high_x: float | None
    low_label: str
    high_label: str
    bar_y: float
    ticks: list[_Tick]
    title: str


class _Point(NamedTuple):
    x: float
    y: float
    kind: str  # "deploy", "rollback", "challenger"
    tip: str


class _LineChart(NamedTuple):
    width: float
    height: float
    left: float
    right: float
    top: float
    base: float
    lines: list[str]  # polyline "x,y x,y" strings, split where a value is missing
    points: list[_Point]
    floor_y: float | None
    floor_label: str
    ticks: list[_Tick]  # y axis
    labels: list[_Label]  # under each point
    rotate: bool
    title: str


def _nice_step(span: float, count: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) cutting ``span`` into about ``count``."""
    raw = span / count if span > 0 and math.isfinite(span) else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9))


def _decimals(step: float) -> int:
    """Decimals that tell ticks ``step`` apart."""
    return min(6, max(0, math.ceil(round(-math.log10(step), 6))))


def _ticks(low: float, high: float, count: int = 4) -> tuple[list[float], float]:
    step = _nice_step(high - low, count)
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)], step


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _values(seq: Any) -> list[Any]:
    return list(seq) if isinstance(seq, list | tuple) else []


_CHAR_W = 6.2  # average width of an 11px label, for the layout


def _bar_chart(
    labels: Any, reference: Any, current: Any, *, title: str, names: tuple[str, str]
) -> _BarChart | None:
    """Grouped bars per bin: the reference share and the new share side by side."""
    ref = [_finite(v) for v in _values(reference)]
    new = [_finite(v) for v in _values(current)]
    labs = ["" if v is None else str(v) for v in _values(labels)]
    n = max(len(ref), len(new), len(labs))
    present = [v for v in ref + new if v is not None]
    if n == 0 or not present:
        return None
    ref += [None] * (n - len(ref))
    new += [None] * (n - len(new))
    labs += [""] * (n - len(labs))
    top = max(max(present), 0.01)
    ticks, step = _ticks(0.0, top)
    if ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 12))
    ymax = ticks[-1]
    digits = max(0, _decimals(step * 100))
    left, right_pad, top_pad, plot_h = 46.0, 8.0, 10.0, 120.0
    group = max(24.0, (480.0 - left - right_pad) / n)
    width = left + right_pad + group * n
    shown = [_short(lab, 16) for lab in labs]
    rotate = any(len(s) * _CHAR_W > group - 4 for s in shown)
    longest = max((len(s) for s in shown), default=0)
    label_h = longest * _CHAR_W * 0.65 + 16 if rotate else 20.0
    base = top_pad + plot_h
    bars = []
    for i in range(n):
        for series, values, offset in ((0, ref, 0.1), (1, new, 0.5)):
            v = values[i]
            h = 0.0 if v is None else plot_h * min(max(v, 0.0), ymax) / ymax
            tip = f"{names[series]}, {labs[i] or f'bin {i + 1}'}: " + (
                "n/a" if v is None else f"{v * 100:.1f}%"
            )
            x = left + group * i + group * offset
            bars.append(
                _Bar(
                    round(x, 1), round(base - h, 1), round(group * 0.4, 1), round(h, 1), series, tip
                )
            )
    return _BarChart(
        width=round(width, 1),
        height=round(base + label_h + 4, 1),
        left=left,
        right=round(width - right_pad, 1),
        base=base,
        bars=bars,
        ticks=[_Tick(round(base - plot_h * t / ymax, 1), f"{t * 100:.{digits}f}%") for t in ticks],
        labels=[
            _Label(round(left + group * (i + 0.5), 1), base + 13, shown[i], labs[i])
            for i in range(n)
        ],
        rotate=rotate,
        title=title,
    )


def _interval_chart(
    comparison: Mapping[str, Any] | None, margin: Any, *, metric: str
) -> _IntervalChart | None:
    """The difference challenger - champion on an axis around 0: the estimate, its confidence
    interval, the 0 line and the -margin line (non-inferiority). None without an estimate."""
    if not comparison:
        return None
    delta = _finite(comparison.get("delta"))
    new, old = _finite(comparison.get("challenger")), _finite(comparison.get("champion"))
    if delta is None and new is not None and old is not None:
        delta = new - old
    if delta is None:
        return None
    low, high = _finite(comparison.get("low")), _finite(comparison.get("high"))
    if low is None or high is None:
        low = high = None
    m = _finite(margin)
    neg_margin = -abs(m) if m is not None else None
    values = [0.0, delta] + [v for v in (low, high, neg_margin) if v is not None]
    lo, hi = min(values), max(values)
    span = hi - lo or max(abs(hi), 0.01)
    lo, hi = lo - span * 0.08, hi + span * 0.08
    width, left, right = 720.0, 120.0, 600.0

    def x(v: float) -> float:
        return round(left + (v - lo) / (hi - lo) * (right - left), 1)

    ticks, step = _ticks(lo, hi, 5)
    digits = _decimals(step)
    return _IntervalChart(
        width=width,
        height=122.0,
        axis_y=92.0,
        top=22.0,
        left=left,
        right=right,
        zero_x=x(0.0),
        margin_x=None if neg_margin is None else x(neg_margin),
        margin_label="" if neg_margin is None else f"-margin {neg_margin:+.4f}",
        estimate_x=x(delta),
        estimate_label=f"{delta:+.4f}",
        low_x=None if low is None else x(low),
        high_x=None if high is None else x(high),
        low_label=_signed(low),
        high_label=_signed(high),
        bar_y=58.0,
        ticks=[_Tick(x(t), "0" if t == 0 else f"{t:+.{digits}f}") for t in ticks],
        title=f"{metric}: challenger - champion "
        + (
            f"{delta:+.4f}, interval {low:+.4f} to {high:+.4f}"
            if low is not None and high is not None
            else f"{delta:+.4f}, interval undefined"
        ),
    )


def _by_time(entries: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Oldest first when every entry has an ``at`` (ISO 8601 sorts as text), else as given."""
    if entries and all(isinstance(h.get("at"), str) and h.get("at") for h in entries):
        return sorted(entries, key=lambda h: h["at"])
    return entries


def _line_chart(
    history: Sequence[Any], *, metric: str, floor: Any, challenger: Any
) -> _LineChart | None:
    """The champion's metric at each move of the pointer, oldest first, with this challenger's
    metric as a last, distinct point and the floor as a dashed line when it is in range."""
    entries = _by_time([h for h in history if isinstance(h, Mapping)])
    values = [_finite(h.get("metric")) for h in entries]
    new = _finite(challenger)
    if all(v is None for v in values):
        return None
    present = [v for v in values if v is not None] + ([new] if new is not None else [])
    lo, hi = min(present), max(present)
    span = hi - lo or 0.02
    lo, hi = lo - span * 0.2, hi + span * 0.2
    ticks, step = _ticks(lo, hi, 4)
    digits = _decimals(step)
    left, right, top, base = 56.0, 704.0, 12.0, 132.0
    slots = len(entries) + (1 if new is not None else 0)
    slot = (right - left) / slots

    def x(i: int) -> float:
        return round(left + slot * (i + 0.5), 1)

    def y(v: float) -> float:
        return round(base - (v - lo) / (hi - lo) * (base - top), 1)

    lines, run, points, labels = [], [], [], []
    for i, (h, v) in enumerate(zip(entries, values, strict=True)):
        version, at = str(h.get("version", "?")), h.get("at") or ""
        kind = "rollback" if h.get("kind") == "rollback" else "deploy"
        labels.append(_Label(x(i), base + 14, str(at)[:10] or _short(version, 10), version))
        if v is None:
            if len(run) > 1:
                lines.append(" ".join(run))
            run = []
            continue
        run.append(f"{x(i)},{y(v)}")
        points.append(_Point(x(i), y(v), kind, f"{version} ({kind} {at}): {metric} {v:.4f}"))
    if len(run) > 1:
        lines.append(" ".join(run))
    if new is not None:
        i = len(entries)
        points.append(_Point(x(i), y(new), "challenger", f"this challenger: {metric} {new:.4f}"))
        labels.append(_Label(x(i), base + 14, "challenger", "this challenger"))
    rotate = any(len(lab.text) * _CHAR_W > slot - 4 for lab in labels)
    label_h = max((len(lab.text) for lab in labels), default=0) * _CHAR_W * 0.65 + 18
    fl = _finite(floor)
    return _LineChart(
        width=720.0,
        height=round(base + (label_h if rotate else 22.0) + 4, 1),
        left=left,
        right=right,
        top=top,
        base=base,
        lines=lines,
        points=points,
        floor_y=y(fl) if fl is not None and lo <= fl <= hi else None,
        floor_label="" if fl is None else f"floor {fl:.4f}",
        ticks=[_Tick(y(t), f"{t:.{digits}f}") for t in ticks],
        labels=labels,
        rotate=rotate,
        title=f"the champion's {metric} over its last {len(entries)} moves",
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# -- drift --------------------------------------------------------------------------------------


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _drift_items(drift: Mapping[str, Any]) -> list[tuple[str, Any]]:
    raw = drift.get("features", drift.get("psi", {}))
    items: list[tuple[str, Any]] = []
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping):
                items.append((str(item.get("feature", item.get("name", "?"))), item))
    return items


def _listed(drift: Mapping[str, Any]) -> list[str] | None:
    listed = drift.get("drifted")
    return [str(n) for n in listed] if isinstance(listed, list | tuple) else None


def _is_drifted(
    flag: Any, name: str, psi: float | None, listed: list[str] | None, threshold: float | None
) -> bool:
    if isinstance(flag, bool):
        return flag
    if listed is not None:
        return name in listed
    return psi is not None and threshold is not None and psi > threshold


def _psi_key(psi: float | None) -> tuple[bool, float]:
    """Sorts the worst PSI first, missing (None, NaN) last."""
    missing = psi is None or math.isnan(psi)
    return missing, 0.0 if missing or psi is None else -psi


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
    listed = _listed(drift)
    rows = []
    for name, value in _drift_items(drift):
        flag = None
        if isinstance(value, Mapping):
            flag = value.get("drifted")
            value = value.get("psi")
        psi = _as_float(value)
        rows.append((name, psi, _is_drifted(flag, name, psi, listed, threshold)))
    rows.sort(key=lambda r: (*_psi_key(r[1]), r[0]))
    return threshold, rows


_DISTANCES = {
    "wasserstein_norm": "Wasserstein (in reference SDs)",
    "jensen_shannon": "Jensen-Shannon",
}
_SERIES = ("training reference", "new data")


class _Feature(NamedTuple):
    name: str
    kind: str
    psi: float | None
    distance: float | None
    distance_name: str
    drifted: bool
    monitored: bool
    unseen: float | None
    n_reference: Any
    n_current: Any
    row_class: str  # "drifted", "stable" or "unmonitored"
    anchor: str  # id of its chart on the page ("" when it has none)
    chart: _BarChart | None


def _feature(
    name: str,
    value: Any,
    *,
    drifted: bool,
    anchor: str = "",
    with_chart: bool = False,
) -> _Feature:
    d = _mapping(value) if isinstance(value, Mapping) else {"psi": value}
    monitored = d.get("monitored") is not False
    chart = None
    if with_chart:
        chart = _bar_chart(
            d.get("labels"),
            d.get("reference"),
            d.get("current"),
            title=f"{name}: share of rows per bin, training reference vs new data",
            names=_SERIES,
        )
    distance_name = str(d.get("distance_name") or "")
    return _Feature(
        name=name,
        kind=str(d.get("kind") or ""),
        psi=_as_float(d.get("psi")),
        distance=_as_float(d.get("distance")),
        distance_name=_DISTANCES.get(distance_name, distance_name),
        drifted=drifted,
        monitored=monitored,
        unseen=_finite(d.get("unseen")),
        n_reference=d.get("n_reference"),
        n_current=d.get("n_current"),
        row_class="unmonitored" if not monitored else "drifted" if drifted else "stable",
        anchor=anchor if chart is not None else "",
        chart=chart,
    )


def _features(drift: Mapping[str, Any]) -> list[_Feature]:
    """Every feature of a drift result, drifted monitored ones first (in the result's "worst
    first" order when it gives one, else by PSI), then the rest by PSI; charts for the first."""
    threshold = _as_float(drift.get("threshold", drift.get("psi_threshold")))
    listed = _listed(drift)
    rank = {name: i for i, name in enumerate(listed or [])}
    rows = []
    for name, value in _drift_items(drift):
        d = value if isinstance(value, Mapping) else {"psi": value}
        psi = _as_float(d.get("psi"))
        drifted = _is_drifted(d.get("drifted"), name, psi, listed, threshold)
        alarm = drifted and d.get("monitored") is not False
        key = (0 if alarm else 1, rank.get(name, len(rank)) if alarm else 0, *_psi_key(psi), name)
        rows.append((key, name, value, drifted, alarm))
    rows.sort(key=lambda r: r[0])
    return [
        _feature(name, value, drifted=drifted, anchor=f"feature-{i}", with_chart=alarm)
        for i, (_, name, value, drifted, alarm) in enumerate(rows)
    ]


class _DriftInfo(NamedTuple):
    new_shape: bool  # a verdict on the data (``data_drifted``), not only PSI per feature
    threshold: float | None  # PSI above this counts as drift
    distance_threshold: float | None
    total: int
    monitored: int
    drifted: list[str]  # drifted monitored features, worst first
    data_drifted: bool | None
    share: float | None
    share_threshold: float | None
    rule: str
    share_text: str  # "3 of 12 monitored features drifted: 25.0% (threshold 30.0%)"
    prediction_drifted: bool | None
    prediction_psi: float | None
    prediction_threshold: float | None
    summary: str


def _drift_info(
    drift: Mapping[str, Any], policy: Mapping[str, Any] | None, features: list[_Feature]
) -> _DriftInfo:
    """The verdicts of a drift result, with the thresholds from the result or the ``[drift]``
    policy the decision applied (``policy``)."""
    pol = _mapping(policy)
    threshold = _as_float(drift.get("threshold", drift.get("psi_threshold")))
    if threshold is None:
        threshold = _as_float(pol.get("psi_threshold"))
    monitored = [f for f in features if f.monitored]
    drifted = [f.name for f in monitored if f.drifted]
    share = _as_float(drift.get("share"))
    share_threshold = _as_float(drift.get("share_threshold", pol.get("share_threshold")))
    rule = str(drift.get("rule") or pol.get("rule") or "")
    counted = f"{len(drifted)} of {len(monitored)} monitored features drifted"
    if share is None:
        share_text = f"{len(drifted)} of {len(features)} features drifted"
    elif rule == "importance":
        share_text = f"{counted}, carrying {_pct(share)} of the model's gain"
    else:
        share_text = f"{counted}: {_pct(share)}"
    if share is not None and share_threshold is not None:
        share_text += f" (threshold {_pct(share_threshold)}, rule: {rule or '?'})"
    elif share is not None and rule:
        share_text += f" (rule: {rule})"
    prediction = _mapping(drift.get("prediction"))
    predicted = drift.get("prediction_drifted")
    if not isinstance(predicted, bool):
        predicted = (
            prediction.get("drifted") if isinstance(prediction.get("drifted"), bool) else None
        )
    data_drifted = drift.get("data_drifted")
    return _DriftInfo(
        new_shape=isinstance(data_drifted, bool),
        threshold=threshold,
        distance_threshold=_as_float(pol.get("distance_threshold")),
        total=len(features),
        monitored=len(monitored),
        drifted=drifted,
        data_drifted=data_drifted if isinstance(data_drifted, bool) else None,
        share=share,
        share_threshold=share_threshold,
        rule=rule,
        share_text=share_text,
        prediction_drifted=predicted,
        prediction_psi=_as_float(prediction.get("psi")),
        prediction_threshold=_as_float(pol.get("prediction_psi_threshold")),
        summary=str(drift.get("summary") or ""),
    )


_DRIFT_SHOWN = frozenset(
    {
        "features",
        "psi",
        "threshold",
        "psi_threshold",
        "drifted",
        "share",
        "share_threshold",
        "data_drifted",
        "rule",
        "prediction",
        "prediction_drifted",
        "summary",
    }
)


def render_drift(
    version: str, drift: Mapping[str, Any], *, policy: Mapping[str, Any] | None = None
) -> str:
    """The drift of the newest data against the champion's training-time reference; lives at
    ``drift/<version>.html``. ``policy``: the ``[drift]`` settings the decision applied (the
    record's ``policy["drift"]``), for the thresholds the result itself does not carry.

    A summary (did the data drift, share vs threshold, rule), then for each drifted monitored
    feature its reference and new distributions side by side, a table of every feature
    (features the config does not monitor greyed) and the champion's scores, reference vs new.
    An older result (PSI per feature only) shows the summary and the table."""
    features = _features(drift)
    info = _drift_info(drift, policy, features)
    prediction = drift.get("prediction")
    score = None
    if isinstance(prediction, Mapping):
        score = _feature(
            str(prediction.get("name") or "score"),
            prediction,
            drifted=bool(info.prediction_drifted),
            anchor="scores",
            with_chart=True,
        )
    return _render(
        "drift.html.j2",
        root="../",
        version=version,
        info=info,
        features=features,
        charted=[f for f in features if f.chart is not None],
        has_kind=any(f.kind for f in features),
        has_distance=any(f.distance is not None for f in features),
        has_rows=any(f.n_reference is not None or f.n_current is not None for f in features),
        score=score,
        series=_SERIES,
        extra={k: v for k, v in drift.items() if k not in _DRIFT_SHOWN},
    )


# -- decisions ----------------------------------------------------------------------------------

_NOTABLE_HOLDS = frozenset({"undefined", "below_floor", "inferior_after_change"})


def decision_outcome(decision: Mapping[str, Any]) -> tuple[str, str]:
    """(label, css kind) from ``promoted``/``deploy`` (bool) or a free-text ``outcome``/``status``.

    ``deploy`` is what ``retrain.decision.Decision.as_dict()`` produces; a hold is "bad" (red),
    or "warn" (amber) when the policy simply found the challenger not better (``not_better``).
    """
    if isinstance(decision.get("promoted"), bool):
        return ("promoted", "ok") if decision["promoted"] else ("rejected", "bad")
    if isinstance(decision.get("deploy"), bool):
        if decision["deploy"]:
            return "deployed", "ok"
        return "held", "warn" if decision.get("rule") == "not_better" else "bad"
    label = str(decision.get("outcome") or decision.get("status") or "unknown")
    low = label.lower()
    kind = "ok" if low in ("promoted", "deployed", "accepted", "passed") else "neutral"
    if low in ("rejected", "failed", "blocked", "quarantined"):
        kind = "bad"
    return label, kind


def _flag_notes(decision: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(flag, what it means here) for each of ``retrain.decision.flags(decision)``."""
    from retrain.decision import FLAG_CHAMPION_BELOW_FLOOR, FLAG_WORSE, champion_vs_floor, flags

    cmp = _mapping(decision.get("comparison"))
    out = []
    for flag in flags(decision):
        note = ""
        if flag == FLAG_WORSE:
            conf = _finite(cmp.get("confidence"))
            note = (
                f"The whole interval of challenger - champion is below 0 "
                f"({_signed(cmp.get('low'))} to {_signed(cmp.get('high'))}): the challenger is "
                f"worse{f' with {conf:.0%} confidence' if conf is not None else ''}. It deployed "
                "because something changed and the difference is within the non-inferiority "
                "margin."
            )
        elif flag == FLAG_CHAMPION_BELOW_FLOOR:
            pair = champion_vs_floor(decision)
            if pair is not None:
                note = (
                    f"The champion scored {pair[0]:.4f} on the same rows, below the floor "
                    f"{pair[1]:.4f}: the model left in service is below the bar too"
                    + (
                        f", and the challenger beat it by {_signed(cmp.get('delta'))}."
                        if (_finite(cmp.get("delta")) or 0) > 0
                        else "."
                    )
                )
        out.append((flag, note))
    return out


def _rules() -> dict[str, str]:
    from retrain.decision import RULES  # numpy and the config: only when a page is rendered

    return RULES


def _interval_text(comparison: Mapping[str, Any] | None) -> str:
    """``+0.0123 [-0.0050, +0.0300]``: the difference and its interval, "" without one."""
    cmp = _mapping(comparison)
    delta = _finite(cmp.get("delta"))
    if delta is None:
        return ""
    low, high = _finite(cmp.get("low")), _finite(cmp.get("high"))
    interval = "interval undefined" if low is None or high is None else f"{low:+.4f}, {high:+.4f}"
    return f"{delta:+.4f} [{interval}]"


class _Clause(NamedTuple):
    name: str
    inputs: str
    result: str  # "pass", "fail", "yes", "no" or "n/a"
    badge: str
    mark: str  # a check mark, a cross, a dot (yes), a circle (no), a dash (n/a)
    decisive: bool  # one of the clauses that decided (the rule)


_RESULT_BADGE = {"pass": "ok", "fail": "bad", "yes": "warn", "no": "neutral", "n/a": "neutral"}
_GE, _LE = "\u2265", "\u2264"
_RESULT_MARK = {
    "pass": "\u2713",
    "fail": "\u2717",
    "yes": "\u25cf",
    "no": "\u25cb",
    "n/a": "\u2013",
}
_DECISIVE = {
    "undefined": ("floor",),
    "below_floor": ("floor",),
    "first_model": ("floor", "champion"),
    "better": ("better",),
    "non_inferior_after_change": ("changed", "non_inferior"),
    "inferior_after_change": ("changed", "non_inferior"),
    "not_better": ("changed", "better"),
}


def _clauses(
    decision: Mapping[str, Any], metric: str, challenger: Any, drift: _DriftInfo | None
) -> list[_Clause]:
    """The policy's clauses with their inputs and results, from the record's ``conditions``
    (``retrain.decision.decide``); [] for a record without them (an older shape)."""
    cond = _mapping(decision.get("conditions"))
    rule = str(decision.get("rule") or "")
    if not cond and rule not in _DECISIVE:
        return []
    gate = _mapping(_mapping(decision.get("policy")).get("gate"))
    decisive = set(_DECISIVE.get(rule, ()))
    out: list[_Clause] = []

    def add(key: str, name: str, inputs: str, ok: bool | None, yes_no: bool = False) -> None:
        if ok is None:
            result = "n/a"
        elif yes_no:
            result = "yes" if ok else "no"
        else:
            result = "pass" if ok else "fail"
        out.append(
            _Clause(
                name, inputs, result, _RESULT_BADGE[result], _RESULT_MARK[result], key in decisive
            )
        )

    floor = _mapping(cond.get("floor"))
    new, low_bar = floor.get("challenger", challenger), floor.get("floor", gate.get("min_metric"))
    passed = floor.get("passed")
    if rule == "undefined" or _finite(new) is None:
        add(
            "floor",
            "Clears the floor",
            f"challenger {metric} undefined (the newest rows hold one class)",
            False,
        )
    else:
        if not isinstance(passed, bool):
            passed = None if _finite(low_bar) is None else float(new) >= float(low_bar)
        sign = "vs" if passed is None else _GE if passed else "<"
        add(
            "floor",
            "Clears the floor",
            f"challenger {metric} {_num(new)} {sign} floor {_num(low_bar) or '?'}",
            passed,
        )
    if "changed" not in cond:
        if rule == "first_model" or (passed and decision.get("comparison") is None):
            add(
                "champion",
                "Against the champion",
                "no champion yet: the first model deploys on the floor alone",
                None,
            )
        else:
            add("rest", "Against the champion", "not evaluated: the floor decides first", None)
        return out
    data = cond.get("data_drifted")
    add(
        "data",
        "Data drifted",
        drift.share_text if drift else "no drift report",
        data if isinstance(data, bool) else None,
        yes_no=True,
    )
    scores = cond.get("prediction_drifted")
    if drift and drift.prediction_psi is not None:
        inputs = f"PSI of the champion's scores {_num(drift.prediction_psi)}"
        if drift.prediction_threshold is not None:
            inputs += f" vs threshold {_num(drift.prediction_threshold)}"
    else:
        inputs = "the champion's scores, newest rows vs training time"
    add(
        "scores",
        "Scores drifted",
        inputs,
        scores if isinstance(scores, bool) else None,
        yes_no=True,
    )
    degraded = _mapping(cond.get("champion_degraded"))
    now, then, margin = (_finite(degraded.get(k)) for k in ("now", "at_training", "margin"))
    if then is not None and margin is not None:
        inputs = (
            f"{metric} now {_num(now) or 'n/a'} vs at training {then:.4f} - margin "
            f"{margin:.4f} = {then - margin:.4f}"
        )
    else:
        inputs = f"{metric} now {_num(now) or 'n/a'}; at training unknown"
    flag = degraded.get("degraded")
    add(
        "degraded",
        "Champion degraded",
        inputs,
        flag if isinstance(flag, bool) else None,
        yes_no=True,
    )
    changed = cond.get("changed")
    add(
        "changed",
        "Something changed",
        "any of the three above",
        changed if isinstance(changed, bool) else None,
        yes_no=True,
    )
    ni = _mapping(cond.get("non_inferior"))
    low, m, met = _finite(ni.get("low")), _finite(ni.get("margin")), ni.get("met")
    met = met if isinstance(met, bool) else None
    add(
        "non_inferior",
        "Non-inferior (after a change)",
        f"lower bound {_signed(low) or 'undefined'} {'>' if met else _LE} -margin "
        f"{_signed(-m) if m is not None else '?'}",
        met,
    )
    better = _mapping(cond.get("better"))
    low, met = _finite(better.get("low")), better.get("met")
    met = met if isinstance(met, bool) else None
    add(
        "better",
        "Better with confidence",
        f"lower bound {_signed(low) or 'undefined'} {'>' if met else _LE} 0",
        met,
    )
    return out


class _Comparison(NamedTuple):
    metric: str
    challenger: float | None
    champion: float | None
    delta: float | None
    low: float | None
    high: float | None
    confidence: float | None
    rounds: Any
    n_rows: Any


class _HistoryPoint(NamedTuple):
    version: str
    at: Any
    kind: str
    badge: str
    metric: float | None


def render_decision(
    version: str,
    decision: Mapping[str, Any],
    challenger_metrics: Mapping[str, Any],
    champion_metrics: Mapping[str, Any] | None,
    drift: Mapping[str, Any] | None,
    *,
    champion_history: list[dict[str, Any]] | None = None,
) -> str:
    """The gate's verdict on ``version``; lives at ``decisions/<version>.html``.

    A verdict banner with the reason, the policy's clauses with their inputs and results, the
    difference challenger - champion with its confidence interval (drawn), both models' metrics
    on the same rows, the champion's metric over its last moves and the drift in short.
    ``champion_history``: the champion's moves, ``{"version", "at", "metric", "kind"}`` each
    (``steps.reporting.champion_history``); None leaves the section out.
    """
    label, kind = decision_outcome(decision)
    rule = str(decision.get("rule") or "")
    champion = champion_metrics or {}
    names = sorted(set(challenger_metrics) | set(champion))
    policy = _mapping(decision.get("policy"))
    gate = _mapping(policy.get("gate"))
    cmp = _mapping(decision.get("comparison"))
    metric = str(cmp.get("metric") or gate.get("metric") or "auc")
    info = None
    if drift is not None:
        info = _drift_info(drift, _mapping(policy.get("drift")), _features(drift))
    comparison = None
    if cmp:
        comparison = _Comparison(
            metric=metric,
            challenger=_finite(cmp.get("challenger")),
            champion=_finite(cmp.get("champion")),
            delta=_finite(cmp.get("delta")),
            low=_finite(cmp.get("low")),
            high=_finite(cmp.get("high")),
            confidence=_finite(cmp.get("confidence")),
            rounds=cmp.get("rounds"),
            n_rows=cmp.get("n_rows"),
        )
    challenger = challenger_metrics.get(metric, cmp.get("challenger"))
    history = None
    chart = None
    if champion_history is not None:
        points = _by_time([h for h in champion_history if isinstance(h, Mapping)])
        history = [
            _HistoryPoint(
                version=str(h.get("version", "?")),
                at=h.get("at") or "",
                kind=str(h.get("kind") or "deploy"),
                badge="warn" if h.get("kind") == "rollback" else "ok",
                metric=_finite(h.get("metric")),
            )
            for h in points
        ]
        chart = _line_chart(
            points, metric=metric, floor=gate.get("min_metric"), challenger=challenger
        )
    interval = _interval_text(cmp)
    shown = (
        "reason",
        "conditions",
        "comparison",
        "challenger_metrics",
        "champion_metrics",
        "drift",
    )
    return _render(
        "decision.html.j2",
        root="../",
        version=version,
        outcome=label,
        outcome_kind=kind,
        rule=rule,
        rule_text=_rules().get(rule, ""),
        reason=decision.get("reason"),
        decided_at=decision.get("decided_at"),
        champion_version=decision.get("champion_version"),
        serving_version=decision.get("serving_version"),
        serving_n_train=decision.get("serving_n_train"),
        serving_sampled_from=decision.get("serving_sampled_from"),
        flags=_flag_notes(decision),
        evaluated_on=decision.get("evaluated_on"),
        training_rows=decision.get("training_rows"),
        replaced_rows=decision.get("replaced_rows"),
        sampled_from=decision.get("sampled_from"),
        n_train=decision.get("n_train"),
        budget_mb=(decision.get("memory") or {}).get("budget_mb"),
        clauses=_clauses(decision, metric, challenger, info),
        metric=metric,
        comparison=comparison,
        interval_chart=_interval_chart(cmp, gate.get("non_inferiority_margin"), metric=metric),
        has_champion=champion_metrics is not None,
        metrics=[
            (
                name,
                challenger_metrics.get(name),
                champion.get(name),
                interval if name == metric else "",
            )
            for name in names
        ],
        history=history,
        history_chart=chart,
        drift=info,
        details={k: v for k, v in decision.items() if k not in shown},
    )


# -- validations --------------------------------------------------------------------------------


class _ValidationRow(NamedTuple):
    file: Any
    status: str
    badge: str
    reason: Any
    result: Any


def render_validation_summary(entries: list[Mapping[str, Any]], *, root: str = "../") -> str:
    """One row per checked file: ``file``, ``status`` (passed/quarantined), ``reason``,
    ``result`` (link to the GX result, relative to the reports root or http(s)).

    ``root`` is the path from this page back to the reports root (``../`` for
    ``validations/<batch>.html``).
    """
    rows = []
    for entry in entries:
        status = str(entry.get("status", "unknown"))
        kind = {"passed": "ok", "quarantined": "bad"}.get(status.lower(), "neutral")
        rows.append(
            _ValidationRow(
                entry.get("file", "?"), status, kind, entry.get("reason") or "", entry.get("result")
            )
        )
    passed = sum(1 for e in entries if str(e.get("status", "")).lower() == "passed")
    return _render("validation_summary.html.j2", root=root, rows=rows, passed=passed)


# -- history and one file's result --------------------------------------------------------------


class _HistoryRow(NamedTuple):
    at: Any
    kind: Any
    name: Any
    link: Any
    status: str
    badge: str
    reason: Any


def _history_rows(entries: Sequence[Mapping[str, Any]]) -> list[_HistoryRow]:
    rows = []
    for entry in entries:
        status = str(entry.get("status", "unknown"))
        kind = {"passed": "ok", "quarantined": "bad", "rejected": "bad"}.get(status, "neutral")
        link = entry.get("link")
        rows.append(
            _HistoryRow(
                at=entry.get("at", ""),
                kind=entry.get("kind", ""),
                name=entry.get("name", "?") if link else entry.get("name"),
                link=link,
                status=status,
                badge=kind,
                reason=entry.get("reason") or "",
            )
        )
    return rows


_PREVIOUS = object()  # render_history_page's default: the page just before


def render_history_page(
    number: int, entries: list[Mapping[str, Any]], *, older: Any = _PREVIOUS
) -> str:
    """One page of the history (``history/page-<n>.html``), entries newest first (this
    publication's and those carried forward from earlier ones), linking to ``older``: the
    newest page whose rows this one does not show (default ``number - 1``; None or a negative
    number: none). Pages never change once written, so they link backwards only."""
    from retrain.layout import history_page_name

    if older is _PREVIOUS:
        older = number - 1
    return _render(
        "history_page.html.j2",
        root="../",
        number=number,
        rows=_history_rows(entries),
        older=history_page_name(older, "html") if older is not None and older >= 0 else None,
    )


class _ExpectationRow(NamedTuple):
    ok: bool
    expectation: Any
    arguments: dict[str, Any]
    seen: Any
    examples: list[str]


def render_validation_result(
    result: Mapping[str, Any], files: Sequence[str], *, root: str = "../../"
) -> str:
    """A GX validation result (``GateResult.to_dict()``) of ``files`` as a page: the verdict
    and one row per expectation. ``root``: ``../../`` for ``validations/<batch>/<name>.html``,
    ``../`` for a training set's ``training/<run>.html``."""
    rows = []
    gx = result.get("result") or {}
    for item in gx.get("results") or []:
        config = item.get("expectation_config") or {}
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        details = item.get("result") or {}
        # Bounded already by validation.bounds; cut again for results written before that.
        examples = list(
            dict.fromkeys(
                repr(shown(v)) if isinstance(v, str) else shown(repr(v))
                for v in (details.get("partial_unexpected_list") or [])[:50]
            )
        )
        rows.append(
            _ExpectationRow(
                ok=bool(item.get("success")),
                expectation=config.get("type", "?"),
                arguments=kwargs,
                seen=_clipped(details.get("observed_value", details.get("unexpected_count", ""))),
                examples=examples[:5],
            )
        )
    return _render(
        "validation_result.html.j2",
        root=root,
        success=bool(result.get("success")),
        summary=result.get("summary") or "",
        suite=result.get("suite", "?"),
        files=list(files),
        rows=rows,
    )


def _clipped(value: Any, limit: int = 200) -> Any:
    """``value`` as is, or cut to text of ~``limit`` characters when it prints longer."""
    return value if len(text := str(value)) <= limit else shown(text, limit)


def _publish(storage: S3Storage, key: str, page: str) -> str:
    storage.put_bytes(key, page.encode("utf-8"), content_type=HTML_CONTENT_TYPE)
    return key


def publish_decision(
    storage: S3Storage,
    reports_prefix: str,
    version: str,
    decision: Mapping[str, Any],
    challenger_metrics: Mapping[str, Any],
    champion_metrics: Mapping[str, Any] | None,
    drift: Mapping[str, Any] | None,
    *,
    champion_history: list[dict[str, Any]] | None = None,
    also_as: Sequence[str] = (),
) -> str:
    """Write ``decisions/<version>.html``, and the same page under each of ``also_as`` (a
    deploy's serving refit: one decision, reachable by either id; its links are relative to
    ``decisions/`` and name ``version``'s pages, so the copy works as is). Returns the first
    key."""
    page = render_decision(
        version,
        decision,
        challenger_metrics,
        champion_metrics,
        drift,
        champion_history=champion_history,
    )
    key = _publish(storage, report_keys(reports_prefix, version).decision, page)
    for other in also_as:
        _publish(storage, report_keys(reports_prefix, other).decision, page)
    return key


def publish_drift(
    storage: S3Storage,
    reports_prefix: str,
    version: str,
    drift: Mapping[str, Any],
    *,
    policy: Mapping[str, Any] | None = None,
) -> str:
    return _publish(
        storage,
        report_keys(reports_prefix, version).drift,
        render_drift(version, drift, policy=policy),
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
