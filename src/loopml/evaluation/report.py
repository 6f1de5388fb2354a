"""HTML reports of an evaluation, of evaluations side by side, and of a gate's verdict.

One self-contained file, like the data validation report whose stylesheet and table helpers
these pages share: Plotly's JavaScript is embedded from the installed package, so a report
opens offline and can be kept as a CI artifact. Everything that comes from the data or the
model (column names, class labels, slice values, messages) is escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopml.data.validation import Issue, ValidationReport
from loopml.data.validation_report import (
    STYLE,
    escape,
    html_table,
    issues_html,
    plot_text,
    summary_html,
)
from loopml.errors import InvalidInput
from loopml.evaluation.fairness import METRICS as FAIRNESS_METRICS
from loopml.evaluation.metrics import lower_is_better

if TYPE_CHECKING:
    from loopml.evaluation.gates import GateResult
    from loopml.evaluation.records import Evaluation

MAX_FEATURES = 20  # importance charts show the largest drops; the tail is sampling noise
MISSING = "n/a"  # a metric that could not be computed (NaN is stored as None)
RATES = {  # each group's rates a fairness chart compares
    "selection_rate": "selection rate",
    "true_positive_rate": "true positive rate",
    "false_positive_rate": "false positive rate",
}


def render_evaluation(evaluation: Evaluation, *, title: str | None = None) -> str:
    """Return one evaluation as an HTML document: its metrics and a chart per detail."""
    heading = title or f"LoopML evaluation: {evaluation.model} on {evaluation.dataset}"
    return page(heading, _evaluation(evaluation))


def render_comparison(
    evaluations: Sequence[Evaluation], *, title: str = "LoopML model comparison"
) -> str:
    """Return evaluations side by side: every metric with the best value marked, and a bar
    chart of the metrics they all have."""
    import plotly.graph_objects as go

    if not evaluations:
        raise InvalidInput("a comparison needs at least one evaluation")
    labels = _labels(evaluations)
    rows, shared = [], []
    for name, metric, values in _comparable(evaluations):
        best = _best(metric, values)
        rows.append(
            [
                name,
                "lower" if lower_is_better(metric) else "higher",
                *(("★ " if i in best else "") + _fmt(v) for i, v in enumerate(values)),
            ]
        )
        if all(v is not None for v in values):
            shared.append((name, values))
    figure = go.Figure()
    for i, label in enumerate(labels):
        figure.add_trace(
            go.Bar(
                x=[plot_text(name) for name, _ in shared],
                y=[values[i] for _, values in shared],
                name=plot_text(label),
            )
        )
    figure.update_layout(barmode="group", xaxis_type="category")
    body = [
        "<h2>Evaluations</h2>",
        html_table(
            ["", "model", "dataset", "target", "task", "rows", "evaluated"],
            [
                [label, e.model, e.dataset, e.target, e.task, str(e.rows), utc_text(e.created_at)]
                for label, e in zip(labels, evaluations, strict=True)
            ],
            [""] * len(evaluations),
        ),
        "<h2>Metrics</h2><p>★ marks the best value of each metric.</p>",
        html_table(["metric", "better", *labels], rows, [""] * len(rows)),
        chart_section(figure, "comparison", "Metrics every evaluation has") if shared else "",
    ]
    return page(title, "\n".join(body))


def render_gate(
    result: GateResult,
    evaluation: Evaluation | None = None,
    validation: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    title: str | None = None,
) -> str:
    """Return a gate's verdict as an HTML document: each check, the gate's settings and, when
    given, the evaluation it judged and the data validation of each table (path -> the
    validation report's `to_dict()`)."""
    reports = [_validation_report(path, data) for path, data in (validation or {}).items()]
    failed_tables = [r for r in reports if not r.ok]
    verdict = "passed" if result.passed and not failed_tables else "failed"
    reasons = f"{len(result.checks)} check(s), {len(result.failures)} failed"
    if reports:
        reasons += f"; data validation: {len(failed_tables)} of {len(reports)} table(s) failed"
    checks = [
        [c.check, c.metric, _fmt(c.value), c.limit, "yes" if c.passed else "no", c.message]
        for c in result.checks
    ]
    body = [
        f'<p class="summary {verdict}"><strong>{verdict.upper()}</strong> '
        f"{escape(result.model)} on {escape(result.dataset)} (target {escape(result.target)}, "
        f"evaluation {escape(result.evaluation_id[:8])}): {escape(reasons)}.</p>",
        "<h2>Checks</h2>",
        html_table(
            ["check", "metric", "value", "limit", "passed", "message"],
            checks,
            ["" if c.passed else "error" for c in result.checks],
        ),
        "<h2>Gate</h2>",
        f"<pre>{escape(json.dumps(result.gate, indent=2, default=str))}</pre>",
    ]
    if evaluation is not None:
        body += ["<h2>Evaluation</h2>", _evaluation(evaluation)]
    if reports:
        body += ["<h2>Data validation</h2>"]
        body += [summary_html(r) + issues_html(r.issues) for r in reports]
    heading = title or f"LoopML gate: {result.model} on {result.dataset}"
    return page(heading, "\n".join(body))


def _evaluation(evaluation: Evaluation) -> str:
    """Return the sections of one evaluation: overview, metrics, plots and the details."""
    e, details = evaluation, evaluation.details
    head = ["model", "dataset", "target", "task", "rows", "evaluated", "by", "evaluation"]
    overview = [
        e.model,
        e.dataset,
        e.target,
        e.task,
        str(e.rows),
        utc_text(e.created_at),
        e.user,
        e.id,
    ]
    metric_rows = [
        [name, _fmt(value), "lower" if lower_is_better(name) else "higher"]
        for name, value in e.metrics.items()
    ]
    parts = [
        html_table(head, [overview], [""]),
        "<h2>Metrics</h2>",
        html_table(["metric", "value", "better"], metric_rows, [""] * len(metric_rows)),
    ]
    plots = details.get("plots") or {}
    charts = _classification_charts(plots, e.metrics) + _residual_chart(plots)
    if charts:
        parts += ["<h2>Plots</h2>", *charts]
    if slices := details.get("slices"):
        parts += ["<h2>Slices</h2>"]
        parts += [_slice(column, rows, i) for i, (column, rows) in enumerate(slices.items())]
    if fairness := details.get("fairness"):
        parts += ["<h2>Fairness</h2>"]
        parts += [_fairness(name, found, i) for i, (name, found) in enumerate(fairness.items())]
    if importance := details.get("importance"):
        parts += ["<h2>Permutation importance</h2>", _importance(importance)]
    if (explained := details.get("shap")) and explained.get("features"):
        parts += [f"<h2>SHAP ({escape(explained['explainer'])})</h2>", _shap(explained)]
    return "\n".join(parts)


def _classification_charts(plots: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    import plotly.graph_objects as go

    charts = []
    if "confusion_matrix" in plots:
        names = [plot_text(str(c)) for c in plots.get("classes", [])]
        figure = go.Figure(
            go.Heatmap(
                z=plots["confusion_matrix"],
                x=names,
                y=names,
                colorscale="Blues",
                texttemplate="%{z}",
                hovertemplate="actual %{y}, predicted %{x}: %{z}<extra></extra>",
            )
        )
        figure.update_layout(
            xaxis={"title": "predicted", "type": "category"},
            yaxis={"title": "actual", "type": "category", "autorange": "reversed"},
        )
        charts.append(chart_section(figure, "confusion-matrix", "Confusion matrix"))
    if roc := plots.get("roc_curve"):
        auc = _number(metrics.get("roc_auc"))
        figure = _diagonal(roc["fpr"], roc["tpr"], "ROC", "chance")
        figure.update_layout(xaxis_title="false positive rate", yaxis_title="true positive rate")
        heading = f"ROC curve, positive class {plots.get('positive_class')}"
        charts.append(
            chart_section(
                figure, "roc-curve", heading + ("" if auc is None else f" (AUC {auc:.4g})")
            )
        )
    if calibration := plots.get("calibration"):
        figure = _diagonal(
            calibration["predicted"], calibration["observed"], "model", "perfectly calibrated"
        )
        figure.update_layout(
            xaxis_title="mean predicted probability", yaxis_title="observed frequency"
        )
        charts.append(chart_section(figure, "calibration-curve", "Calibration curve"))
    return charts


def _residual_chart(plots: Mapping[str, Any]) -> list[str]:
    import plotly.graph_objects as go

    residuals = plots.get("residuals")
    if not residuals:
        return []
    figure = go.Figure(
        go.Scattergl(x=residuals["predicted"], y=residuals["residual"], mode="markers", opacity=0.6)
    )
    figure.add_hline(y=0, line_dash="dash", line_color="#888")
    figure.update_layout(xaxis_title="predicted", yaxis_title="actual - predicted")
    return [chart_section(figure, "residuals", "Residuals")]


def _diagonal(x: list[float], y: list[float], name: str, reference: str) -> Any:
    """Return a figure of a curve on the unit square with the diagonal to compare it to."""
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=reference, line={"dash": "dash"})
    )
    figure.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name))
    figure.update_layout(xaxis_range=[0, 1], yaxis_range=[0, 1.02])
    return figure


def _slice(column: str, rows: list[Mapping[str, Any]], index: int) -> str:
    """Return a slice column's scores per slice: a grouped bar chart and the numbers."""
    import plotly.graph_objects as go

    names = list(dict.fromkeys(k for row in rows for k in row if k not in ("slice", "rows")))
    slices = ["(missing)" if row["slice"] is None else str(row["slice"]) for row in rows]
    figure = go.Figure()
    for name in names:
        figure.add_trace(
            go.Bar(
                x=[plot_text(s) for s in slices],
                y=[_number(row.get(name)) for row in rows],
                name=plot_text(name),
            )
        )
    figure.update_layout(barmode="group", xaxis={"title": plot_text(column), "type": "category"})
    cells = [
        [label, str(row["rows"]), *(_fmt(row.get(n)) for n in names)]
        for label, row in zip(slices, rows, strict=True)
    ]
    table = html_table(["slice", "rows", *names], cells, [""] * len(rows))
    return chart_section(figure, f"slices-{index}", f"By {column}") + table


def _fairness(feature: str, found: Mapping[str, Any], index: int) -> str:
    """Return a sensitive feature's fairness metrics and each group's rates."""
    import plotly.graph_objects as go

    groups = found.get("groups", [])
    figure = go.Figure()
    for key, label in RATES.items():
        figure.add_trace(
            go.Bar(
                x=[plot_text(str(g["group"])) for g in groups],
                y=[_number(g.get(key)) for g in groups],
                name=label,
            )
        )
    figure.update_layout(
        barmode="group",
        xaxis={"title": plot_text(feature), "type": "category"},
        yaxis_range=[0, 1],
    )
    summary = html_table(
        [m.replace("_", " ") for m in FAIRNESS_METRICS],
        [[_fmt(found.get(m)) for m in FAIRNESS_METRICS]],
        [""],
    )
    cells = [
        [str(g["group"]), str(g.get("rows", "")), *(_fmt(g.get(k)) for k in RATES)] for g in groups
    ]
    table = html_table(["group", "rows", *RATES.values()], cells, [""] * len(groups))
    return chart_section(figure, f"fairness-{index}", f"By {feature}") + summary + table


def _importance(importance: Mapping[str, Any]) -> str:
    """Return a horizontal bar chart of the features whose shuffling costs the most."""
    import plotly.graph_objects as go

    top = importance.get("features", [])[:MAX_FEATURES]
    figure = go.Figure(
        go.Bar(
            x=[_number(f.get("importance")) for f in top],
            y=[plot_text(str(f["feature"])) for f in top],
            error_x={"type": "data", "array": [_number(f.get("std")) for f in top]},
            orientation="h",
        )
    )
    figure.update_layout(
        xaxis_title=plot_text(f"drop in {importance.get('metric', 'score')} when shuffled"),
        yaxis={"type": "category", "autorange": "reversed"},
    )
    heading = f"Top {len(top)} features"
    return chart_section(figure, "importance", heading, height=max(320, 120 + 24 * len(top)))


def _shap(explained: Mapping[str, Any]) -> str:
    """Return a horizontal bar chart of the features with the largest mean |SHAP value|."""
    import plotly.graph_objects as go

    top = explained["features"][:MAX_FEATURES]
    figure = go.Figure(
        go.Bar(
            x=[_number(f.get("mean_abs_shap")) for f in top],
            y=[plot_text(str(f["feature"])) for f in top],
            orientation="h",
        )
    )
    figure.update_layout(
        xaxis_title=f"mean |SHAP value| over {explained.get('rows', '?')} rows",
        yaxis={"type": "category", "autorange": "reversed"},
    )
    return chart_section(
        figure, "shap", f"Top {len(top)} features", height=max(320, 120 + 24 * len(top))
    )


def _comparable(
    evaluations: Sequence[Evaluation],
) -> list[tuple[str, str, list[float | None]]]:
    """Return (row label, metric, value per evaluation) for every metric any of them has,
    fairness metrics labelled with their sensitive feature."""
    found: dict[str, tuple[str, list[float | None]]] = {}
    for i, evaluation in enumerate(evaluations):
        values = [(name, name, v) for name, v in evaluation.metrics.items()]
        for feature, scores in evaluation.details.get("fairness", {}).items():
            values += [(f"{m} ({feature})", m, scores.get(m)) for m in FAIRNESS_METRICS]
        for label, metric, value in values:
            row = found.setdefault(label, (metric, [None] * len(evaluations)))
            row[1][i] = _number(value)
    return [(label, metric, values) for label, (metric, values) in found.items()]


def _best(metric: str, values: list[float | None]) -> set[int]:
    """Return the positions of the best value, none when fewer than two differ."""
    known = [v for v in values if v is not None]
    if len(set(known)) < 2:
        return set()
    top = min(known) if lower_is_better(metric) else max(known)
    return {i for i, v in enumerate(values) if v == top}


def _labels(evaluations: Sequence[Evaluation]) -> list[str]:
    labels = [f"{e.model} on {e.dataset}" for e in evaluations]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({e.id[:8]})" for label, e in zip(labels, evaluations, strict=True)]
    return labels


def _validation_report(path: str, data: Mapping[str, Any]) -> ValidationReport:
    """Return the ValidationReport `data` (its `to_dict()`) describes."""
    try:
        return ValidationReport(
            issues=[Issue(**issue) for issue in data["issues"]],
            columns=list(data.get("columns", [])),
            rows=data["rows"],
            against=data["against"],
            skew_threshold=data["skew_threshold"],
            table=data.get("table") or path,
            reference_rows=data.get("reference_rows"),
        )
    except (KeyError, TypeError) as exc:
        raise InvalidInput(
            f"validation of {path!r} is not a data validation report's to_dict() "
            f"({type(exc).__name__}: {exc}); pass {{path: report.to_dict()}}"
        ) from None


def chart_section(figure: Any, div_id: str, heading: str, *, height: int = 380) -> str:
    figure.update_layout(height=height, template="plotly_white", margin={"t": 30})
    chart = figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)
    return f'<section class="chart"><h3>{escape(heading)}</h3>{chart}</section>'


def _number(value: object) -> float | None:
    """Return `value` as a finite float, None for a missing or non-finite one."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: object) -> str:
    number = _number(value)
    return MISSING if number is None else f"{number:.6g}"


def utc_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC") if ms else ""


def page(title: str, body: str) -> str:
    from plotly.offline import get_plotlyjs

    return _PAGE.format(title=escape(title), plotly=get_plotlyjs(), style=STYLE, body=body)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script>{plotly}</script>
<style>{style}pre {{ background: #f4f4f4; padding: .6rem .8rem; overflow-x: auto; }}
</style></head>
<body><h1>{title}</h1>
{body}
</body></html>
"""
