"""HTML reports of drift between two tables, and of a monitor's windows and alerts over time.

One self-contained file like the evaluation and deployment reports: Plotly's JavaScript is
embedded, so a report opens offline and can be kept as a CI artifact. Everything that comes
from the data or the store (column names, category labels, rule text, messages) is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from loopml.data.validation_report import escape, html_table, plot_text
from loopml.evaluation.report import chart_section, page, utc_text
from loopml.monitoring.alerts import FIRING, Rule

if TYPE_CHECKING:
    from loopml.monitoring.alerts import Alert
    from loopml.monitoring.monitors import Monitor, Window
    from loopml.monitoring.table_drift import DriftReport

MAX_CHARTS = 30  # distribution charts per page; past this a page is too slow to open
PERFORMANCE = ("accuracy", "f1", "roc_auc", "rmse", "mae")
HEADLINE = (
    "rows", "drift_share", "drifted_columns", "prediction_drift", *PERFORMANCE, "error_rate",
    "p99_ms",
)  # fmt: skip
SHARES = {"drift_share", "error_rate", "client_error_rate"}  # shown as percentages
TABLE_HEAD = [
    "column", "kind", "method", "statistic", "p-value", "effect", "threshold", "verdict",
    "note", "current rows", "null share (reference)", "null share (current)",
]  # fmt: skip


def render_drift(
    report: DriftReport,
    *,
    title: str = "LoopML drift report",
    reference: str = "reference",
    current: str = "current",
) -> str:
    """Return a drift report as an HTML document: the verdict, every column's test and each
    column's distribution on both sides, drifted columns first."""
    data = report.to_dict()
    body = [
        _drift_summary(data, reference, current),
        "<h2>Columns</h2>",
        _columns_table(data["columns"]),
        f"<h2>{escape(reference)} vs {escape(current)}</h2>",
        _distributions(data["columns"], report.distributions, reference, current),
    ]
    return page(title, "\n".join(body))


def render_monitor(monitor: Monitor, windows: Sequence[Window], alerts: Sequence[Alert]) -> str:
    """Return a monitor as an HTML document: its rules and their state, drift, prediction
    drift, performance and traffic over its windows, the latest window's columns and the
    alert events."""
    body = [_monitor_summary(monitor, windows), "<h2>Rules</h2>", _rules(monitor, alerts)]
    if not windows:
        body.append(
            f"<p>No windows yet: compute them with <code>loopml monitor run "
            f"{escape(monitor.name)}</code>.</p>"
        )
    else:
        body += _over_time(monitor, windows)
        body += _latest(windows)
    body += ["<h2>Alert events</h2>", _events(alerts)]
    return page(f"LoopML monitor {monitor.name}", "\n".join(body))


def _drift_summary(data: Mapping[str, Any], reference: str, current: str) -> str:
    judged = [c for c in data["columns"] if c["drift"] is not None]
    drifted, share, verdict = data["drifted"], data["share"], data["dataset_drift"]
    label = {True: "DRIFT", False: "NO DRIFT", None: "NO VERDICT"}[verdict]
    css = {True: " failed", False: " passed", None: ""}[verdict]
    if share is None:
        counts = f"no column could be judged (dataset drift at {data['drift_share']:.0%})"
    else:
        counts = (
            f"{len(drifted)} of {len(judged)} judged column(s) drifted ({share:.0%}; the "
            f"dataset counts as drifted at {data['drift_share']:.0%})"
        )
    names = f": {', '.join(drifted)}" if drifted else ""
    rows = f"{current}: {data['rows']} rows; {reference}: {data['reference_rows']} rows"
    return (
        f'<p class="summary{css}"><strong>{label}</strong> {escape(counts + names)}. '
        f"{escape(rows)}.</p>"
    )


def _columns_table(columns: Sequence[Mapping[str, Any]]) -> str:
    """Return one row per column's test, drifted rows marked, rows without a verdict noted."""
    cells, classes = [], []
    for c in columns:
        verdict = {True: "drifted", False: "stable", None: "no verdict"}[c["drift"]]
        cells.append(
            [
                c["column"],
                c["kind"],
                c["method"],
                _num(c["statistic"]),
                _num(c["p_value"]),
                _num(c["effect"]),
                _num(c["threshold"]),
                verdict,
                c["note"],
                str(c["current_rows"]),
                _num(c["reference_null_share"], ".1%"),
                _num(c["current_null_share"], ".1%"),
            ]
        )
        classes.append({True: "error", False: "", None: "warning"}[c["drift"]])
    return html_table(TABLE_HEAD, cells, classes)


def _distributions(
    columns: Sequence[Mapping[str, Any]],
    distributions: Mapping[str, Mapping[str, Any]],
    reference: str,
    current: str,
) -> str:
    """Return a chart of each column's distribution on both sides, drifted columns first."""
    ordered = sorted(
        (c for c in columns if c["column"] in distributions), key=lambda c: not c["drift"]
    )
    charts = []
    for i, column in enumerate(ordered[:MAX_CHARTS]):
        name = column["column"]
        chart = _distribution(distributions[name], reference, current)
        if chart is None:
            continue
        figure, caption = chart
        verdict = {True: ", drifted", False: "", None: ", no verdict"}[column["drift"]]
        heading = f"{name} ({column['method']}{verdict}){caption}"
        charts.append(chart_section(figure, f"distribution-{i}", heading, height=320))
    if len(ordered) > MAX_CHARTS:
        charts.append(f"<p>{len(ordered) - MAX_CHARTS} more column(s) not drawn.</p>")
    return "\n".join(charts) or "<p>No column has values to draw.</p>"


def _distribution(found: Mapping[str, Any], reference: str, current: str) -> tuple[Any, str] | None:
    """Return a figure of one distribution and a caption, None when it has nothing to draw."""
    import plotly.graph_objects as go

    figure, caption = go.Figure(), ""
    sides = ((reference, found["reference"]), (current, found["current"]))
    if found["kind"] == "numeric":
        edges = found["edges"]
        if len(edges) < 2:
            return None
        widths = [b - a for a, b in pairwise(edges)]
        for side, density in sides:
            figure.add_trace(
                go.Bar(
                    x=[(a + b) / 2 for a, b in pairwise(edges)],
                    y=density,
                    width=widths,
                    name=plot_text(side),
                    opacity=0.6,
                )
            )
        figure.update_layout(barmode="overlay", bargap=0, yaxis_title="density")
        low, high = found.get("current_low"), found.get("current_high")
        # The bins span the reference's range: current values outside it are not drawn.
        if low is not None and high is not None and (low < edges[0] or high > edges[-1]):
            caption = (
                f"; {current} values span {low:.4g} to {high:.4g}, beyond {reference}'s "
                f"{edges[0]:.4g} to {edges[-1]:.4g}"
            )
    else:
        if not found["labels"]:
            return None
        labels = [plot_text(str(label)) for label in found["labels"]]
        for side, shares in sides:
            figure.add_trace(go.Bar(x=labels, y=shares, name=plot_text(side)))
        figure.update_layout(barmode="group", xaxis_type="category", yaxis_title="share")
    return figure, caption


def _monitor_summary(monitor: Monitor, windows: Sequence[Window]) -> str:
    text = (
        f"<p><b>{escape(monitor.name)}</b> watches deployment <b>{escape(monitor.deployment)}"
        f"</b> (model {escape(monitor.model)}) against reference {escape(monitor.reference)}, "
        f"in windows of {escape(_duration(monitor.window_s))}"
    )
    if not windows:
        return text + ".</p>"
    with_rows = sum(1 for w in windows if w.rows)
    text += (
        f"; {len(windows)} window(s) from {escape(utc_text(windows[0].start_ms))} to "
        f"{escape(utc_text(windows[-1].end_ms))}, {with_rows} with rows.</p>"
    )
    complete = [w for w in windows if w.complete]
    if not complete:
        return text + "<p>No window is complete yet.</p>"
    last = complete[-1]
    names = [k for k in HEADLINE if k in last.metrics]
    values = [_num(last.metrics[k], ".1%" if k in SHARES else ".4g", "n/a") for k in names]
    return (
        text
        + f"<h2>Latest complete window ({escape(utc_text(last.start_ms))})</h2>"
        + html_table(names, [values], [""])
    )


def _rules(monitor: Monitor, alerts: Sequence[Alert]) -> str:
    """Return each rule with its state now: the latest event of that rule, if any."""
    rules = list(monitor.settings.get("rules", []))
    if not rules:
        return "<p>No alert rules.</p>"
    latest: dict[str, Alert] = {}
    for alert in sorted(alerts, key=lambda a: (a.created_at, a.id)):
        latest[alert.rule] = alert
    cells, classes = [], []
    for rule in rules:
        event = latest.get(rule)
        if event is None:
            cells.append([rule, "no event yet", "", "", ""])
        else:
            since = utc_text(event.window_start)
            cells.append([rule, event.state, since, _num(event.value), event.message])
        classes.append("error" if event is not None and event.state == FIRING else "")
    firing = [r for r, c in zip(rules, classes, strict=True) if c]
    verdict = "failed" if firing else "passed"
    banner = f"{len(firing)} of {len(rules)} rule(s) firing" + (
        f": {', '.join(firing)}" if firing else ""
    )
    head = ["rule", "state", "since window", "value", "message"]
    return f'<p class="summary {verdict}">{escape(banner)}.</p>' + html_table(head, cells, classes)


def _over_time(monitor: Monitor, windows: Sequence[Window]) -> list[str]:
    """Return the charts of metrics over the windows, rule thresholds drawn."""
    rules = [Rule.parse(text) for text in monitor.settings.get("rules", [])]
    columns = list(dict.fromkeys(k for w in windows for k in w.metrics if k.startswith("drift.")))
    labelled = [w for w in windows if w.details.get("baseline", {}).get("metrics")]
    baseline = labelled[-1].details["baseline"] if labelled else {}
    method = next(
        (w.details["prediction"]["method"] for w in windows if w.details.get("prediction")), ""
    )
    share = monitor.settings.get("drift_share")
    charts: list[_Chart] = [
        ("drift-share", "Share of drifted columns", {"drift_share": "drift share"}, "share"),
        (
            "drift-columns",
            "Drift statistic per column",
            {k: k.removeprefix("drift.") for k in columns},
            "statistic",
        ),
        (
            "prediction-drift",
            "Prediction drift",
            {"prediction_drift": "prediction"},
            f"{method} statistic".strip(),
        ),
        ("performance", "Performance on labelled predictions", {k: k for k in PERFORMANCE}, ""),
        ("requests", "Requests", {"requests": "requests", "labelled_rows": "labelled"}, ""),
        (
            "error-rate",
            "Error rate",
            {"error_rate": "server errors (5xx)", "client_error_rate": "client errors (4xx)"},
            "share of requests",
        ),
        ("latency", "Latency", {"p50_ms": "p50", "p95_ms": "p95", "p99_ms": "p99"}, "ms"),
    ]
    out = ["<h2>Over time</h2>"]
    found, version = baseline.get("metrics", {}), baseline.get("version")
    for chart in charts:
        lines: list[tuple[str, float]] = []
        if chart[0] == "drift-share" and share is not None:
            lines.append((f"dataset drift at {share:g}", share))
        if chart[0] == "performance":
            lines += [(f"baseline {k} ({version})", found[k]) for k in chart[2] if k in found]
        out.append(_series_chart(windows, chart, rules, lines))
    return out


_Chart = tuple[str, str, dict[str, str], str]  # div id, heading, metric -> trace name, y axis


def _series_chart(
    windows: Sequence[Window],
    chart: _Chart,
    rules: Sequence[Rule],
    baselines: Sequence[tuple[str, float]],
) -> str:
    """Return a chart of metrics over windows, or a line saying it is empty; a dashed red
    line per rule on a charted metric, a dotted grey one per baseline."""
    import plotly.graph_objects as go

    div_id, heading, series, axis = chart

    times = [_time(w.start_ms) for w in windows]
    hover = [f"{w.rows} rows" + ("" if w.complete else ", in progress") for w in windows]
    figure = go.Figure()
    for key, name in series.items():
        # A window with no rows has no values: a gap, not a zero (its request count is one).
        ys = [w.metrics.get(key) if w.rows or key == "requests" else None for w in windows]
        if all(y is None for y in ys):
            continue
        figure.add_trace(
            go.Scatter(x=times, y=ys, mode="lines+markers", name=plot_text(name), text=hover)
        )
    if not figure.data:
        return f"<h3>{escape(heading)}</h3><p>No window has a value yet.</p>"
    for rule in rules:
        if rule.metric in series:
            figure.add_hline(
                y=rule.value,
                line={"dash": "dash", "color": "#d62728"},
                annotation_text=plot_text(f"alert: {rule}"),
            )
    for label, value in baselines:
        figure.add_hline(
            y=value, line={"dash": "dot", "color": "#555"}, annotation_text=plot_text(label)
        )
    figure.update_layout(xaxis={"title": "window start (UTC)", "type": "date"}, yaxis_title=axis)
    return chart_section(figure, div_id, heading, height=340)


def _latest(windows: Sequence[Window]) -> list[str]:
    """Return the latest window with rows: its columns' drift, distributions, versions."""
    found = [w for w in windows if w.rows and w.details.get("drift")]
    if not found:
        why = "were read without their details" if any(w.rows for w in windows) else "have no rows"
        return [f"<h2>Latest window</h2><p>The windows {why}.</p>"]
    last = found[-1]
    drift = last.details["drift"]
    columns = list(drift["columns"])
    if last.details.get("prediction"):
        columns.append(last.details["prediction"])
    distributions = last.details.get("distributions", {})
    versions = last.details.get("versions", {})
    by_version = html_table(
        ["version", "requests", "error rate", "p50 ms", "p95 ms", "p99 ms"],
        [
            [name, _num(v.get("requests"), ".0f"), _num(v.get("error_rate"), ".1%")]
            + [_num(v.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms")]
            for name, v in versions.items()
        ],
        [""] * len(versions),
    )
    span = f"{utc_text(last.start_ms)} to {utc_text(last.end_ms)}"
    return [
        f"<h2>Latest window with rows: {escape(span)}</h2>",
        _drift_summary(drift, "reference", "window"),
        by_version if versions else "",
        _columns_table(columns),
        _distributions(columns, distributions, "reference", "window"),
    ]


def _events(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return "<p>No alert events yet.</p>"
    newest = sorted(alerts, key=lambda a: (a.created_at, a.id), reverse=True)
    cells = [
        [
            utc_text(a.created_at),
            utc_text(a.window_start),
            a.rule,
            a.state,
            _num(a.value),
            a.message,
        ]
        for a in newest
    ]
    classes = ["error" if a.state == FIRING else "" for a in newest]
    return html_table(["when", "window", "rule", "state", "value", "message"], cells, classes)


def _num(value: object, spec: str = ".4g", missing: str = "") -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return missing
    return format(value, spec)


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: int) -> str:
    """Return seconds as people write them: 90s, 15m, 1h30m, 1d."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
