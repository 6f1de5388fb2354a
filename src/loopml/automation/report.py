"""The HTML report of a continuous-training policy: its settings, loops, monitors and timeline.

One self-contained page like the monitor and deployment reports: Plotly's JavaScript is
embedded, so a report opens offline. Everything that comes from the store (names, trigger
reasons, rule text, errors) is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from loopml.automation.policy import Policy, Trigger
from loopml.data.validation_report import escape, html_table, plot_text
from loopml.evaluation.report import chart_section, page, utc_text
from loopml.monitoring.alerts import Rule

if TYPE_CHECKING:
    from loopml.automation.loops import Event, Loop
    from loopml.core.workspace import Workspace
    from loopml.monitoring.monitors import Window

# Events drawn on the monitor charts, with their colour.
MARKED = {
    "triggered": "#1f77b4",
    "promoted": "#2ca02c",
    "gate_failed": "#d62728",
    "rolled_back": "#d62728",
}
# The table row class of a loop's status and of an event's kind: green, red, yellow.
STATUS_CLASS = {
    "succeeded": "passed",
    "blocked": "error",
    "rolled_back": "error",
    "failed": "error",
    "waiting": "warning",
}
KIND_CLASS = {
    "promoted": "passed",
    "gate_passed": "passed",
    "succeeded": "passed",
    "gate_failed": "error",
    "rolled_back": "error",
    "failed": "error",
    "approval_requested": "warning",
}
# The shared report style colours error and warning rows; a report of outcomes needs green too.
_STYLE = "<style>tr.passed td { background: #e8f5e9; }</style>"


def render_policy(
    policy: Policy,
    loops: Sequence[Loop],
    events: Sequence[Event],
    windows: Mapping[str, Sequence[Window]],
) -> str:
    """Return a policy as an HTML document: its settings and latest loop, every loop, the
    metrics its drift and performance triggers watch (loop events marked), and its timeline."""
    newest = sorted(loops, key=lambda loop: loop.number, reverse=True)
    body = [
        _STYLE,
        _banner(policy, newest),
        _settings(policy),
        "<h2>Loops</h2>",
        _loops(policy, newest),
        "<h2>Watched monitors</h2>",
        *_monitors(policy, events, windows),
        "<h2>Timeline</h2>",
        _timeline(events),
    ]
    return page(f"LoopML policy {policy.name}", "\n".join(body))


def render_stored(ws: Workspace, policy: Policy, *, last: int = 500) -> str:
    """Return the report of a stored policy: its loops and timeline from the store, and the
    newest `last` windows of each monitor it watches (one deleted since is left out)."""
    from loopml.automation import loops
    from loopml.errors import NotFound
    from loopml.monitoring import monitors

    watched = {}
    for name in policy.monitors:
        try:
            watched[name] = monitors.windows(ws, name, limit=last, details=False)
        except NotFound:
            continue
    return render_policy(policy, loops.of(ws, policy), loops.events(ws, policy), watched)


def _banner(policy: Policy, newest: Sequence[Loop]) -> str:
    """Return where the policy stands: its latest loop, or that none has run."""
    if not newest:
        return (
            f"<p>No loops yet: a loop starts when a trigger fires, or now with "
            f"<code>loopml loop trigger {escape(policy.name)}</code>.</p>"
        )
    last = newest[0]
    state = f"{last.status} at {last.step}" if last.active else last.status
    text = f"Latest loop #{last.number}: {state}" + (f": {last.error}" if last.error else "")
    css = {"passed": " passed", "error": " failed"}.get(STATUS_CLASS.get(last.status, ""), "")
    return f'<p class="summary{css}">{escape(text)}.</p>'


def _settings(policy: Policy) -> str:
    rollout = policy.rollout
    if rollout is None:
        release = f"none: {policy.register_as}@champion moves directly once a model passes its gate"
    else:
        steps = ", ".join(f"{s}%" for s in rollout.steps)
        release = (
            f"canary on deployment {rollout.deployment}: {steps}, a step every "
            f"{_span(rollout.interval_s)}"
        )
    target = policy.evaluation.get("target")
    approval = (
        f"manual: loopml loop approve {policy.name}" if policy.approval == "manual" else "none"
    )
    rows = [
        ["pipeline", policy.pipeline],
        ["params", ", ".join(f"{k}={v}" for k, v in policy.params.items())],
        ["model", policy.model],
        ["register as", policy.register_as],
        ["gate", policy.gate],
        ["evaluation data", policy.evaluation["data"] + (f" (target {target})" if target else "")],
        ["rollout", release],
        ["cooldown", _span(policy.cooldown_s) if policy.cooldown_s else "none"],
        ["approval", approval],
        ["executor", policy.executor],
        ["triggers", "; ".join(t.key for t in policy.triggers)],
        ["applied", f"from {policy.source or 'Python'} by {policy.user or '?'}"],
    ]
    if policy.updated_at:
        rows[-1][1] += f" at {utc_text(policy.updated_at)}"
    return html_table(["setting", "value"], rows, [""] * len(rows))


def _loops(policy: Policy, newest: Sequence[Loop]) -> str:
    """Return one row per loop, newest first, coloured by how it ended."""
    if not newest:
        return "<p>No loops yet.</p>"
    cells = []
    for loop in newest:
        finished = loop.finished_at
        cells.append(
            [
                f"#{loop.number}",
                f"{loop.status} ({loop.step})" if loop.active else loop.status,
                str(loop.trigger.get("reason", "")),
                loop.model or "",
                (loop.run_id or "")[:8],
                utc_text(loop.started_at),
                utc_text(finished) if finished else "",
                _span((finished - loop.started_at) / 1000) if finished else "",
                loop.error,
            ]
        )
    head = ["loop", "status", "trigger", "model", "run", "started", "finished", "took", "error"]
    return html_table(head, cells, [STATUS_CLASS.get(loop.status, "") for loop in newest])


def _monitors(
    policy: Policy, events: Sequence[Event], windows: Mapping[str, Sequence[Window]]
) -> list[str]:
    """Return a chart per monitor the policy's triggers watch: each watched metric over the
    windows with rows, its threshold dashed, and the loops' events marked."""
    watched: dict[str, list[tuple[Trigger, Rule]]] = {}
    for trigger in policy.triggers:
        if trigger.kind in ("drift", "performance"):
            rule = Rule.parse(trigger.settings["when"])
            watched.setdefault(trigger.settings["monitor"], []).append((trigger, rule))
    if not watched:
        return ["<p>No trigger of this policy watches a monitor.</p>"]
    marks = [e for e in events if e.kind in MARKED]
    return [
        _monitor_chart(f"monitor-{i}", name, rules, windows.get(name, ()), marks)
        for i, (name, rules) in enumerate(watched.items())
    ]


def _monitor_chart(
    div_id: str,
    monitor: str,
    rules: Sequence[tuple[Trigger, Rule]],
    windows: Sequence[Window],
    marks: Sequence[Event],
) -> str:
    import plotly.graph_objects as go

    metrics = list(dict.fromkeys(rule.metric for _, rule in rules))
    heading = f"Monitor {monitor}: {', '.join(metrics)}"
    drawn = sorted((w for w in windows if w.rows), key=lambda w: w.start_ms)
    if not drawn:
        return f"<h3>{escape(heading)}</h3><p>No window with rows yet.</p>"
    times = [_time(w.start_ms) for w in drawn]
    hover = [f"{w.rows} rows" + ("" if w.complete else ", in progress") for w in drawn]
    figure, charted = go.Figure(), set()
    for metric in metrics:
        ys = [w.metrics.get(metric) for w in drawn]
        if all(y is None for y in ys):
            continue
        charted.add(metric)
        figure.add_trace(
            go.Scatter(x=times, y=ys, mode="lines+markers", name=plot_text(metric), text=hover)
        )
    if not charted:
        return f"<h3>{escape(heading)}</h3><p>No window has a value yet.</p>"
    for trigger, rule in rules:
        if rule.metric in charted:
            figure.add_hline(
                y=rule.value,
                line={"dash": "dash", "color": "#d62728"},
                annotation_text=plot_text(f"{trigger.kind} trigger: {rule}"),
            )
    # Events before the first charted window are left out: they would squeeze the windows
    # into a corner. Later ones stay: a trigger fires just after the window that moved.
    for event in (e for e in marks if e.created_at >= drawn[0].start_ms):
        at, colour = _time(event.created_at), MARKED[event.kind]
        label = event.kind if event.loop is None else f"#{event.loop} {event.kind}"
        figure.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=at,
            x1=at,
            y0=0,
            y1=1,
            line={"dash": "dot", "color": colour, "width": 1},
        )
        figure.add_annotation(
            x=at,
            xref="x",
            y=1,
            yref="paper",
            text=plot_text(label),
            hovertext=plot_text(event.reason),
            showarrow=False,
            textangle=-90,
            xanchor="right",
            yanchor="top",
            font={"color": colour, "size": 10},
        )
    figure.update_layout(xaxis={"title": "window start (UTC)", "type": "date"})
    return chart_section(figure, div_id, heading, height=360)


def _timeline(events: Sequence[Event]) -> str:
    """Return every event, oldest first, coloured by outcome."""
    if not events:
        return "<p>No events yet.</p>"
    ordered = sorted(events, key=lambda e: (e.created_at, e.id))
    cells = [
        [utc_text(e.created_at), "" if e.loop is None else f"#{e.loop}", e.kind, e.reason]
        for e in ordered
    ]
    classes = [KIND_CLASS.get(e.kind, "") for e in ordered]
    return html_table(["when (UTC)", "loop", "event", "reason"], cells, classes)


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _span(seconds: float) -> str:
    """Return seconds as people write them: 1.5s, 42s, 5m, 1h30m, 1d."""
    if seconds < 60:
        return f"{seconds:.3g}s"
    parts, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
