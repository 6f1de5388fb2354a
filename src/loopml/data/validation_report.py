"""HTML reports of data validation: a summary, the issues, and reference vs current per column.

One self-contained file, like the run reports: Plotly's JavaScript is embedded from the
installed package, so the page opens offline and can be kept as a CI artifact. Everything
that comes from the data (column names, category values, labels) is escaped.
"""

from __future__ import annotations

import html
from itertools import pairwise
from typing import Any

from loopml.data.profile import Profile
from loopml.data.validation import Issue, ValidationReport

MAX_BARS = 30  # category charts show the most common values; more would be unreadable


def render_html(
    report: ValidationReport,
    current_profile: Profile,
    reference_profile: Profile | None = None,
    *,
    title: str = "LoopML data validation",
) -> str:
    """Return the report as one HTML document, with a chart per column."""
    from plotly.offline import get_plotlyjs

    current = current_profile.get("columns", {})
    reference = reference_profile.get("columns", {}) if reference_profile else {}
    charts = []
    for row in report.columns:
        name = row["column"]
        chart = _chart(reference.get(name), current.get(name))
        if chart:
            charts.append(f'<section class="chart"><h3>{escape(name)}</h3>{chart}</section>')
    return _PAGE.format(
        title=escape(title),
        style=STYLE,
        plotly=get_plotlyjs(),
        summary=summary_html(report),
        issues=issues_html(report.issues),
        columns=_columns(report.columns),
        charts="\n".join(charts) or "<p>No column has values to plot.</p>",
    )


def summary_html(report: ValidationReport) -> str:
    verdict = "passed" if report.ok else "failed"
    against = "a schema" if report.against == "schema" else "a reference version"
    rows = f"{report.rows} rows"
    if report.reference_rows is not None:
        rows += f" (reference: {report.reference_rows})"
    table = f"{escape(report.table)}: " if report.table else ""
    return (
        f'<p class="summary {verdict}">{table}<strong>{verdict.upper()}</strong> against '
        f"{against}: {len(report.errors)} error(s), {len(report.warnings)} warning(s); "
        f"{rows}; skew threshold {report.skew_threshold:g}.</p>"
    )


def issues_html(issues: list[Issue]) -> str:
    if not issues:
        return "<p>No issues.</p>"
    cells = [
        [i.severity, "(table)" if i.column is None else i.column, i.check, i.message]
        for i in issues
    ]
    return html_table(
        ["severity", "column", "check", "message"], cells, [i.severity for i in issues]
    )


def _columns(rows: list[dict[str, Any]]) -> str:
    cells = [
        [
            r["column"],
            r["type"] or "",
            "" if r["null_share"] is None else f"{r['null_share']:.1%}",
            r["method"] or "",
            "" if r["score"] is None else f"{r['score']:.3f}",
            r["status"],
        ]
        for r in rows
    ]
    head = ["column", "type", "null share", "method", "score", "status"]
    return html_table(head, cells, [r["status"] for r in rows])


def html_table(head: list[str], rows: list[list[str]], classes: list[str]) -> str:
    top = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        f'<tr class="{escape(css)}">' + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"
        for cells, css in zip(rows, classes, strict=True)
    )
    return (
        f'<div class="grid"><table><thead><tr>{top}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def _chart(ref: dict[str, Any] | None, cur: dict[str, Any] | None) -> str | None:
    """Return one Plotly chart of the column's reference and current values, None if empty."""
    import plotly.graph_objects as go

    sides = [(label, col) for label, col in (("reference", ref), ("current", cur)) if col]
    if not any(col["count"] for _, col in sides):
        return None
    figure = go.Figure()
    few = all(len(col.get("categories") or {}) <= MAX_BARS for _, col in sides)
    if few and all("categories" in col for _, col in sides):
        _category_bars(figure, sides, "categories")
    elif any(col.get("histogram") for _, col in sides):
        _histogram_bars(figure, sides)
    elif any("categories" in col or "top" in col for _, col in sides):
        _category_bars(figure, sides, "categories" if few else "top")
    else:
        return None
    figure.update_layout(
        yaxis_title="share of values",
        height=320,
        template="plotly_white",
    )
    return str(figure.to_html(full_html=False, include_plotlyjs=False))


def _category_bars(figure: Any, sides: list[tuple[str, dict[str, Any]]], key: str) -> None:
    import plotly.graph_objects as go

    totals: dict[str, float] = {}
    for _, col in sides:
        for value, n in dict(col.get(key) or col.get("top") or []).items():
            totals[value] = totals.get(value, 0.0) + n / max(col["count"], 1)
    shown = sorted(totals, key=lambda v: (-totals[v], v))[:MAX_BARS]
    for label, col in sides:
        counts = dict(col.get(key) or col.get("top") or [])
        figure.add_trace(
            go.Bar(
                x=[plot_text(v) for v in shown],
                y=[counts.get(v, 0) / max(col["count"], 1) for v in shown],
                name=label,
            )
        )
    figure.update_layout(barmode="group", xaxis_type="category")


def _histogram_bars(figure: Any, sides: list[tuple[str, dict[str, Any]]]) -> None:
    import plotly.graph_objects as go

    for label, col in sides:
        histogram = col.get("histogram")
        if not histogram:
            continue
        edges, counts = histogram["edges"], histogram["counts"]
        total = max(sum(counts), 1)
        widths = [b - a for a, b in pairwise(edges)]
        figure.add_trace(
            go.Bar(
                x=[(a + b) / 2 for a, b in pairwise(edges)],
                y=[n / total for n in counts],
                width=widths if all(widths) else None,  # a constant column has one 0-wide bin
                name=label,
                opacity=0.6,
            )
        )
    figure.update_layout(barmode="overlay", bargap=0)


def escape(text: object) -> str:
    return html.escape(str(text))


def plot_text(text: str) -> str:
    # Plotly reads labels as HTML-like text and decodes &lt; back for display.
    return html.escape(text, quote=False)


# Shared by every LoopML HTML report: summary banners, tables, error and warning rows, charts.
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
.summary { font-size: 1.1rem; padding: .6rem .8rem; border-radius: 4px; }
.summary.passed { background: #e8f5e9; }
.summary.failed { background: #fdecea; }
.grid { overflow-x: auto; margin-bottom: 2rem; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
tr.error td { background: #fdecea; }
tr.warning td { background: #fff8e1; }
.chart { max-width: 60rem; }
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script>{plotly}</script>
<style>{style}</style></head>
<body><h1>{title}</h1>
{summary}
<h2>Issues</h2>
{issues}
<h2>Columns</h2>
{columns}
<h2>Reference vs current</h2>
{charts}
</body></html>
"""
