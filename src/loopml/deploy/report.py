"""The HTML report of a deployment: its traffic split over time and what each analysis saw."""

from __future__ import annotations

from collections.abc import Sequence

from loopml.data.validation_report import escape, html_table
from loopml.deploy.deployments import Deployment, DeploymentEvent
from loopml.evaluation.report import chart_section, page, utc_text


def render_deployment(deployment: Deployment, events: Sequence[DeploymentEvent]) -> str:
    """Return one self-contained HTML page: candidate weight, error rate and p99 per analysis
    (candidate against stable), A/B and shadow results, and the full history."""
    import plotly.graph_objects as go

    times = [utc_text(e.created_at) for e in events]
    weights = go.Figure(
        go.Scatter(
            x=times,
            y=[e.routing.weight if e.routing.candidate else 0 for e in events],
            mode="lines+markers",
            line_shape="hv",
            text=[f"{e.kind}: {e.routing.describe()}" for e in events],
            name="candidate share (%)",
        )
    )
    weights.update_yaxes(title="% of traffic to the candidate", range=[-5, 105])
    charts = [chart_section(weights, "traffic-share", "Traffic to the candidate")]
    judged = [e for e in events if "candidate" in e.details and "stable" in e.details]
    for metric, label in (("error_rate", "Error rate"), ("p99_ms", "p99 latency (ms)")):
        if not judged:
            break
        figure = go.Figure()
        for side in ("stable", "candidate"):
            figure.add_trace(
                go.Scatter(
                    x=[utc_text(e.created_at) for e in judged],
                    y=[e.details[side].get(metric) for e in judged],
                    mode="lines+markers",
                    name=side,
                    text=[e.reason for e in judged],
                )
            )
        figure.update_yaxes(title=label)
        charts.append(chart_section(figure, f"analysis-{metric}", f"{label} at each analysis"))
    rows = [
        [utc_text(e.created_at), str(e.revision), e.kind, e.routing.describe(), e.reason, e.user]
        for e in events
    ]
    history = html_table(
        ["when", "revision", "event", "routing", "reason", "user"], rows, [""] * len(rows)
    )
    summary = (
        f"<p><b>{escape(deployment.name)}</b> at http://{escape(deployment.host)}:"
        f"{deployment.port}: {escape(deployment.routing.describe())} (revision "
        f"{deployment.revision})</p>"
    )
    body = summary + "\n".join(charts) + "<h2>History</h2>" + history
    return page(f"LoopML deployment {deployment.name}", body)
