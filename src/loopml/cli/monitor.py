"""`loopml monitor`: drift, performance and alerts of a deployment, window by window."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from loopml.core.workspace import Workspace
    from loopml.monitoring.monitors import Monitor, Window

app = typer.Typer(
    help="Monitors: data and prediction drift, live performance and alerts of a deployment.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[str, typer.Argument(help="The monitor's name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
# The numbers a window table shows, in order, with their headings, by the model's task.
SHOWN = {
    "classification": (
        ("rows", "ROWS"),
        ("drift_share", "DRIFT"),
        ("prediction_drift", "PRED"),
        ("accuracy", "ACC"),
        ("error_rate", "ERR"),
        ("p99_ms", "P99 MS"),
    ),
    "regression": (
        ("rows", "ROWS"),
        ("drift_share", "DRIFT"),
        ("prediction_drift", "PRED"),
        ("rmse", "RMSE"),
        ("error_rate", "ERR"),
        ("p99_ms", "P99 MS"),
    ),
}


def _ws() -> Workspace:
    from loopml.core.workspace import set_workspace

    return set_workspace()


@app.command()
def create(
    name: NameArg,
    deployment: Annotated[str, typer.Option("--deployment", "-d", help="The deployment watched.")],
    reference: Annotated[
        str,
        typer.Option("--reference", "-r", help="Reference rows: a dataset version or a file."),
    ],
    file: Annotated[
        str | None, typer.Option("--file", help="The file of a dataset version with several.")
    ] = None,
    window: Annotated[str, typer.Option("--window", help="Window length: 15m, 1h, 1d.")] = "1h",
    alert: Annotated[
        list[str] | None,
        typer.Option("--alert", help="A rule, e.g. 'drift_share > 0.3' (repeatable)."),
    ] = None,
    webhook: Annotated[
        list[str] | None, typer.Option("--webhook", help="POST alerts here (repeatable).")
    ] = None,
    alert_file: Annotated[
        list[Path] | None,
        typer.Option("--alert-file", help="Append alerts to this file as JSON lines."),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option("--column", help="Watch this column (repeatable; default: the model's)."),
    ] = None,
    drift_share: Annotated[
        float, typer.Option("--drift-share", help="Share of drifted columns that is dataset drift.")
    ] = 0.5,
    min_rows: Annotated[
        int, typer.Option("--min-rows", min=1, help="Fewer values than this give no verdict.")
    ] = 30,
    task: Annotated[
        str | None, typer.Option("--task", help="classification or regression (default: found).")
    ] = None,
) -> None:
    """Watch a deployment: profile REFERENCE for the columns its model takes, set rules."""
    from loopml.cli.output import console
    from loopml.monitoring import monitors

    found = monitors.create(
        _ws(),
        name,
        deployment=deployment,
        reference=reference,
        file=file,
        window=window,
        alerts=alert or [],
        webhooks=webhook or [],
        files=list(alert_file or []),
        columns=column,
        drift_share=drift_share,
        min_rows=min_rows,
        task=task,
    )
    console.print(
        f"Monitor {found.name}: {len(found.columns)} columns of {found.reference} against "
        f"{found.deployment} ({found.model}), {found.window_s}s windows, "
        f"{len(found.settings['rules'])} rule(s)",
        markup=False,
        highlight=False,
    )


@app.command()
def run(
    name: NameArg,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Recompute from this long ago (24h); default: where it left."),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Keep running, once per this long (1m), until stopped."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Compute the windows of a monitor from the prediction log, store them, raise alerts."""
    from loopml.cli.output import console, print_json
    from loopml.core.durations import seconds
    from loopml.errors import LoopMLError
    from loopml.monitoring import monitors, windows

    ws = _ws()
    since_s = None if since is None else seconds(since)
    pause = None if every is None else seconds(every)
    while True:
        try:
            result = windows.run(ws, name, since_s=since_s, progress=not as_json)
        except LoopMLError as exc:
            if pause is None:
                raise
            # A loop that runs for weeks outlives a bad minute (a store restart, a bad file).
            console.print(f"error: {exc}; trying again in {every}", markup=False)
            time.sleep(pause)
            continue
        if as_json:
            print_json(
                {
                    "windows": [w.to_dict() for w in result.windows],
                    "alerts": [a.to_dict() for a in result.alerts],
                }
            )
        else:
            _print_run(monitors.get(ws, name), result.windows, [a.message for a in result.alerts])
        if pause is None:
            return
        since_s = None
        time.sleep(pause)


@app.command()
def status(
    name: Annotated[str | None, typer.Argument(help="One monitor (default: all).")] = None,
    last: Annotated[int, typer.Option("--last", min=1, help="Windows to show.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Show monitors and their latest window, or one monitor's rules and recent windows."""
    from loopml.cli.output import console, print_json, table
    from loopml.monitoring import monitors

    ws = _ws()
    if name is None:
        found = monitors.list_all(ws)
        rows = []
        for monitor in found:
            latest = _latest_complete(monitors.windows(ws, monitor.name, limit=2, details=False))
            firing = _firing(monitors.alert_states(ws, monitor))
            rows.append((monitor, latest, firing))
        if as_json:
            print_json(
                [
                    {
                        **m.to_dict(),
                        "latest": w.to_dict() if w else None,
                        "firing": f,
                    }
                    for m, w, f in rows
                ]
            )
            return
        if not found:
            console.print("No monitors yet: create one with `loopml monitor create`.")
            return
        table(
            "Monitors",
            ["NAME", "DEPLOYMENT", "WINDOW", "LATEST", "DRIFT SHARE", "FIRING"],
            [
                (
                    m.name,
                    m.deployment,
                    f"{m.window_s}s",
                    _when(w.start_ms) if w else "-",
                    _number(w.metrics.get("drift_share")) if w else "-",
                    ", ".join(f) or "-",
                )
                for m, w, f in rows
            ],
            wrap=("FIRING",),
        )
        return
    monitor = monitors.get(ws, name)
    recent = monitors.windows(ws, name, limit=last, details=False)
    states = monitors.alert_states(ws, monitor)
    if as_json:
        print_json(
            {
                **monitor.to_dict(),
                "windows": [w.to_dict() for w in recent],
                "alerts": {rule: a.to_dict() for rule, a in states.items()},
            }
        )
        return
    console.print(
        f"{monitor.name}: {monitor.deployment} ({monitor.model}) against {monitor.reference}, "
        f"{monitor.window_s}s windows",
        markup=False,
        highlight=False,
    )
    for rule in monitor.settings["rules"]:
        state = states.get(rule)
        now = state.state if state else "never fired"
        console.print(f"  {rule}: {now}", markup=False, highlight=False)
    _print_run(monitor, recent, [])


@app.command()
def alerts(
    name: Annotated[str | None, typer.Argument(help="One monitor (default: all).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Only the last N events.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List alert events, newest first: each rule that started firing or resolved."""
    from loopml.cli.output import console, print_json, table
    from loopml.monitoring import monitors

    events = monitors.alert_events(_ws(), name, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    if not events:
        console.print("No alerts.")
        return
    table(
        "Alerts",
        ["WINDOW (UTC)", "MONITOR", "RULE", "STATE", "VALUE"],
        [
            (
                _when(e.window_start),
                e.monitor,
                e.rule,
                e.state,
                _number(e.value),
            )
            for e in events
        ],
    )


@app.command()
def report(
    name: NameArg,
    html: Annotated[Path, typer.Option("--html", help="Write the report to this file.")],
    last: Annotated[int, typer.Option("--last", min=1, help="Windows to draw.")] = 500,
) -> None:
    """Write an HTML report of a monitor: drift, performance and alerts over its windows."""
    from loopml.cli.output import console, write_page
    from loopml.monitoring import monitors
    from loopml.monitoring.report import render_monitor

    ws = _ws()
    monitor = monitors.get(ws, name)
    found = monitors.windows(ws, name, limit=last)
    events = monitors.alert_events(ws, name, limit=1000)
    write_page(html, render_monitor(monitor, found, events))
    console.print(f"Report written to {html}")


@app.command()
def delete(name: NameArg) -> None:
    """Forget a monitor with its windows and alert events."""
    from loopml.cli.output import console
    from loopml.monitoring import monitors

    monitors.delete_monitor(_ws(), name)
    console.print(f"Deleted monitor {name}")


def drift_command(
    reference: Annotated[str, typer.Argument(help="Reference rows: dataset version or file.")],
    current: Annotated[str, typer.Argument(help="Current rows: dataset version or file.")],
    reference_file: Annotated[
        str | None,
        typer.Option("--reference-file", help="The file of a REFERENCE version with several."),
    ] = None,
    current_file: Annotated[
        str | None,
        typer.Option("--current-file", help="The file of a CURRENT version with several."),
    ] = None,
    column: Annotated[
        list[str] | None, typer.Option("--column", help="Compare only this column (repeatable).")
    ] = None,
    drift_share: Annotated[
        float, typer.Option("--drift-share", help="Share of drifted columns that is dataset drift.")
    ] = 0.5,
    html: Annotated[Path | None, typer.Option("--html", help="Also write an HTML report.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare two tables column by column: which drifted, by how much, and the share."""
    from loopml.cli.output import console, print_json, table, write_page
    from loopml.evaluation.scoring import read_table
    from loopml.monitoring.report import render_drift
    from loopml.monitoring.table_drift import drift

    ws = _ws()
    before = read_table(ws, reference, file=reference_file)
    after = read_table(ws, current, file=current_file, allow_empty=True)
    found = drift(before.frame, after.frame, columns=column, drift_share=drift_share)
    if html is not None:
        page = render_drift(
            found,
            title=f"LoopML drift: {before.label} vs {after.label}",
            reference=before.label,
            current=after.label,
        )
        write_page(html, page)
    if as_json:
        print_json(found.to_dict())
        return
    rows: list[tuple[Any, ...]] = []
    for c in found.columns:
        verdict = {True: "DRIFT", False: "ok", None: "-"}[c.score.drift]
        rows.append(
            (c.column, c.score.method, _number(c.score.statistic), _number(c.score.p_value),
             _number(c.score.threshold), verdict, c.score.note)
        )  # fmt: skip
    table(
        f"Drift of {after.label} against {before.label}",
        ["COLUMN", "METHOD", "STATISTIC", "P-VALUE", "THRESHOLD", "VERDICT", "NOTE"],
        rows,
        wrap=("NOTE",),
    )
    share = found.share
    verdict = "dataset drift" if found.dataset_drift else "no dataset drift"
    console.print(
        f"{len(found.drifted)} of {len(found.judged)} columns drifted"
        + (f" ({share:.0%}): {verdict}" if share is not None else "")
        + (f"; report written to {html}" if html is not None else ""),
        markup=False,
        highlight=False,
    )


def _print_run(monitor: Monitor, found: list[Window], messages: list[str]) -> None:
    from loopml.cli.output import console, table

    shown = SHOWN.get(monitor.settings["task"], SHOWN["classification"])
    if not found:
        console.print(f"No windows for {monitor.name} yet.")
    else:
        table(
            f"Windows of {monitor.name} (drift: share of columns; pred: prediction drift)",
            ["START (UTC)", *(heading for _, heading in shown), "STATE"],
            [
                (
                    _when(w.start_ms),
                    *(_number(w.metrics.get(key)) for key, _ in shown),
                    "done" if w.complete else "open",
                )
                for w in found
            ],
            wrap=(),
        )
    for message in messages:
        console.print(f"ALERT {message}", markup=False, highlight=False)


def _latest_complete(found: list[Window]) -> Window | None:
    complete = [w for w in found if w.complete]
    return complete[-1] if complete else None


def _firing(states: dict[str, Any]) -> list[str]:
    return [rule for rule, alert in states.items() if alert.state == "firing"]


def _when(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M:%S")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.4g}"
