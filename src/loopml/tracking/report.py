"""HTML reports of runs: metrics over steps, one chart per metric, and a params/metrics table.

One self-contained file: Plotly's JavaScript is embedded from the installed package, so the
report opens offline and can be mailed or archived as is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, NotFound
from loopml.tracking import runs
from loopml.tracking.entities import RunRecord


def write_report(
    ws: Workspace,
    run_ids: Sequence[str],
    path: Path | str,
    *,
    metrics: Sequence[str] | None = None,
    title: str = "LoopML runs",
) -> Path:
    """Write an HTML report comparing `run_ids` and return its path."""
    if not run_ids:
        raise InvalidInput("a report needs at least one run")
    records = [runs.get(ws, run_id) for run_id in run_ids]
    keys = list(metrics) if metrics else sorted({k for r in records for k in r.metrics})
    missing = [k for k in keys if not any(k in r.metrics for r in records)]
    if missing:
        raise NotFound(f"none of the runs has metric(s) {', '.join(map(repr, missing))}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(ws, records, keys, title), encoding="utf-8")
    return out


def render(ws: Workspace, records: Sequence[RunRecord], keys: Sequence[str], title: str) -> str:
    """Return the report as one HTML document."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    charts = []
    for key in keys:
        series = [
            (record, runs.metric_history(ws, record.id, key))
            for record in records
            if key in record.metrics
        ]
        figure = go.Figure()
        if all(len(points) == 1 for _, points in series):
            # One value per run (a final score): bars compare runs better than lone dots.
            figure.add_trace(
                go.Bar(
                    x=[_label(record) for record, _ in series],
                    y=[_finite(points[0].value) for _, points in series],
                )
            )
            figure.update_layout(xaxis_title="run")
        else:
            for record, points in series:
                figure.add_trace(
                    go.Scatter(
                        x=[p.step for p in points],
                        y=[_finite(p.value) for p in points],
                        mode="lines+markers" if len(points) < 50 else "lines",
                        name=_label(record),
                    )
                )
            figure.update_layout(xaxis_title="step")
        figure.update_layout(title=key, yaxis_title=key, height=380, template="plotly_white")
        charts.append(figure.to_html(full_html=False, include_plotlyjs=False))
    return _PAGE.format(
        title=html.escape(title),
        plotly=get_plotlyjs(),
        table=_table(records),
        charts="\n".join(f'<section class="chart">{c}</section>' for c in charts),
    )


def _label(record: RunRecord) -> str:
    return f"{record.name} ({record.id[:8]})"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # Plotly leaves a gap for None


def _table(records: Sequence[RunRecord]) -> str:
    params = sorted({k for r in records for k in r.params})
    metrics = sorted({k for r in records for k in r.metrics})
    head = "".join(
        f"<th>{html.escape(h)}</th>"
        for h in ["run", "status", *(f"params.{p}" for p in params), *metrics]
    )
    rows = []
    for r in records:
        cells = [_label(r), r.status]
        cells += [r.params.get(p, "") for p in params]
        cells += [f"{r.metrics[m]:.6g}" if m in r.metrics else "" for m in metrics]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="runs">{table}</div>'


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script>{plotly}</script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
.runs {{ overflow-x: auto; margin-bottom: 2rem; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ddd; padding: .3rem .6rem; text-align: left; }}
th {{ background: #f4f4f4; }}
.chart {{ max-width: 60rem; }}
</style></head>
<body><h1>{title}</h1>
{table}
{charts}
</body></html>
"""
