"""`loopml deploy`: named endpoints and their rollouts (canary, blue-green, A/B, shadow)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.serving import (
    BatchOption,
    BodyOption,
    ControllerOption,
    LogOption,
    SampleOption,
    TokenOption,
    WaitOption,
    settings,
)

if TYPE_CHECKING:
    from loopml.core.workspace import Workspace
    from loopml.deploy.deployments import Deployment

app = typer.Typer(
    help="Deployments: serve model versions behind canary, blue-green, A/B or shadow routing.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[str, typer.Argument(help="The deployment's name.")]
ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="A model version: NAME/N, NAME@ALIAS or models:/...")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the history.")]
ReportOption = Annotated[
    str, typer.Option("--interval", help="How often results go to the history: 30s, 5m.")
]


def _ws() -> Workspace:
    from loopml.core.workspace import set_workspace

    return set_workspace()


def _done(deployment: Deployment) -> None:
    from loopml.cli.output import console

    console.print(f"{deployment.name} (revision {deployment.revision}): ", end="")
    console.print(deployment.routing.describe(), markup=False, highlight=False)


@app.command()
def create(
    name: NameArg,
    model: ModelOption,
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8080,
    serve_now: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start serving it now (foreground).")
    ] = True,
    max_batch_size: BatchOption = 1,
    max_wait_ms: WaitOption = 5.0,
    max_body_mb: BodyOption = 32.0,
    log: LogOption = True,
    log_sample_rate: SampleOption = 1.0,
    auth_token: TokenOption = None,
) -> None:
    """Record a deployment serving MODEL (an alias is moved on promotion), and serve it."""
    from loopml.deploy import deployments
    from loopml.serving.server import check_bind

    check_bind(host, auth_token or None)
    _done(deployments.create(_ws(), name, model, host=host, port=port))
    if serve_now:
        serve(
            name,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_body_mb=max_body_mb,
            log=log,
            log_sample_rate=log_sample_rate,
            auth_token=auth_token,
        )


@app.command()
def serve(
    name: NameArg,
    host: Annotated[str | None, typer.Option("--host", help="Override the address.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Override the port.")] = None,
    max_batch_size: BatchOption = 1,
    max_wait_ms: WaitOption = 5.0,
    max_body_mb: BodyOption = 32.0,
    log: LogOption = True,
    log_sample_rate: SampleOption = 1.0,
    auth_token: TokenOption = None,
    controller: ControllerOption = True,
) -> None:
    """Serve a deployment until stopped; a rollout in progress carries on where it stood.

    When the workspace has loop policies, a loop controller runs alongside (--no-controller
    leaves that to `loopml controller`)."""
    from loopml.automation.controller import background
    from loopml.cli.loop import terminable
    from loopml.serving.server import serve_deployment

    ws = _ws()
    chosen = settings(
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_body_mb=max_body_mb,
        log=log,
        log_sample_rate=log_sample_rate,
        auth_token=auth_token,
    )
    with background(ws, enabled=controller) as running, terminable(running is not None):
        serve_deployment(name, host=host, port=port, settings=chosen)


@app.command()
def canary(
    name: NameArg,
    model: ModelOption,
    steps: Annotated[
        str, typer.Option("--steps", help="Percent of traffic per step, ending at 100.")
    ] = "10,25,50,100",
    interval: Annotated[
        str, typer.Option("--interval", help="Time per step before it is judged: 60s, 5m.")
    ] = "60s",
    max_error_rate: Annotated[
        float, typer.Option("--max-error-rate", help="Roll back above this share of 5xx.")
    ] = 0.01,
    max_p99_ms: Annotated[
        float | None, typer.Option("--max-p99-ms", help="Roll back above this p99 latency.")
    ] = None,
    min_metric: Annotated[
        list[str] | None,
        typer.Option("--min-metric", help="Live metric floor from feedback: accuracy=0.85."),
    ] = None,
    max_metric: Annotated[
        list[str] | None,
        typer.Option("--max-metric", help="Live metric ceiling from feedback: rmse=3.5."),
    ] = None,
    min_requests: Annotated[
        int, typer.Option("--min-requests", help="Requests a step needs before a decision.")
    ] = 50,
) -> None:
    """Start a canary: MODEL takes each step's share of traffic while it stays healthy."""
    from loopml.core.durations import seconds
    from loopml.deploy import strategies

    deployment = strategies.canary(
        _ws(),
        name,
        model,
        steps=_steps(steps),
        interval_s=seconds(interval),
        max_error_rate=max_error_rate,
        max_p99_ms=max_p99_ms,
        min_metrics=_bounds(min_metric, "--min-metric"),
        max_metrics=_bounds(max_metric, "--max-metric"),
        min_requests=min_requests,
    )
    _done(deployment)


@app.command()
def bluegreen(name: NameArg, model: ModelOption) -> None:
    """Put MODEL up as the preview (under /preview/); `deploy switch` makes it active."""
    from loopml.deploy import strategies

    _done(strategies.bluegreen(_ws(), name, model))


@app.command()
def switch(name: NameArg) -> None:
    """Make the blue-green preview active at once (`deploy rollback` switches back)."""
    from loopml.deploy import strategies

    _done(strategies.switch(_ws(), name))


@app.command()
def ab(
    name: NameArg,
    b: Annotated[str, typer.Option("--b", help="Arm b's model version.")],
    a: Annotated[
        str | None, typer.Option("--a", help="Arm a: the version serving now (the default).")
    ] = None,
    split: Annotated[float, typer.Option("--split", help="Percent of traffic to arm b.")] = 50.0,
    sticky: Annotated[
        str | None,
        typer.Option("--sticky", help="Keep a key on one arm: header:x-user-id or field:NAME."),
    ] = None,
    interval: ReportOption = "30s",
) -> None:
    """Split traffic between the version serving now (a) and B; judged statistically."""
    from loopml.core.durations import seconds
    from loopml.deploy import strategies

    report_s = seconds(interval)
    _done(strategies.ab(_ws(), name, b, a=a, split=split, sticky=sticky, report_s=report_s))


@app.command()
def shadow(name: NameArg, model: ModelOption, interval: ReportOption = "30s") -> None:
    """Send MODEL a copy of every request; its answers are compared, never returned."""
    from loopml.core.durations import seconds
    from loopml.deploy import strategies

    _done(strategies.shadow(_ws(), name, model, report_s=seconds(interval)))


@app.command()
def promote(name: NameArg, reason: ReasonOption = "") -> None:
    """Make the candidate the stable version now (and move the deployment's alias)."""
    from loopml.deploy import strategies

    _done(strategies.promote(_ws(), name, reason=reason))


@app.command()
def rollback(name: NameArg, reason: ReasonOption = "") -> None:
    """Send all traffic back to the stable version (or to the one before a switch)."""
    from loopml.deploy import strategies

    _done(strategies.rollback(_ws(), name, reason=reason))


@app.command()
def status(
    name: Annotated[str | None, typer.Argument(help="One deployment (all when omitted).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show deployments: routing, and the latest analysis, A/B result or shadow agreement."""
    from loopml.cli.output import console, print_json, table, when
    from loopml.deploy import deployments

    ws = _ws()
    if name is None:
        found = deployments.list_all(ws)
        if as_json:
            print_json([d.to_dict() for d in found])
            return
        table(
            "Deployments",
            ["NAME", "ADDRESS", "REVISION", "ROUTING", "UPDATED"],
            [
                (d.name, f"{d.host}:{d.port}", d.revision, d.routing.describe(), when(d.updated_at))
                for d in found
            ],
            wrap=("ROUTING",),
        )
        return
    deployment = deployments.get(ws, name)
    latest = _latest_judgement(deployments.history(ws, name, limit=50), deployment.revision)
    if as_json:
        print_json({**deployment.to_dict(), "latest": latest.to_dict() if latest else None})
        return
    console.print(f"{deployment.name} at http://{deployment.host}:{deployment.port}")
    console.print(f"  routing: {deployment.routing.describe()}", markup=False, highlight=False)
    if deployment.alias:
        stable_model = deployment.routing.stable.rpartition("/")[0]
        console.print(f"  promotion moves {stable_model}@{deployment.alias}", markup=False)
    if latest is not None:
        console.print(f"  {latest.kind} ({when(latest.created_at)}): {latest.reason}", markup=False)
        for row in latest.details.get("comparisons", []):
            console.print(f"    {row['metric']}: {row['reason']}", markup=False, highlight=False)


@app.command()
def history(
    name: NameArg,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the last N events.")
    ] = None,
    as_json: JsonOption = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write a report: traffic share, error rate, p99."),
    ] = None,
) -> None:
    """List every routing change and analysis of a deployment, oldest first."""
    from loopml.cli.output import console, print_json, table, when, write_page
    from loopml.deploy import deployments
    from loopml.deploy.report import render_deployment

    ws = _ws()
    events = deployments.history(ws, name, limit=limit)
    if html is not None:
        write_page(html, render_deployment(deployments.get(ws, name), events))
        if not as_json:
            console.print(f"Report written to {html}")
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    table(
        f"History of {name}",
        ["WHEN", "REV", "EVENT", "ROUTING", "REASON", "USER"],
        [
            (when(e.created_at), e.revision, e.kind, e.routing.describe(), e.reason, e.user)
            for e in events
        ],
        wrap=("ROUTING", "REASON"),
    )


@app.command()
def delete(name: NameArg) -> None:
    """Forget a deployment and its history (a server running it keeps serving until stopped)."""
    from loopml.cli.output import console
    from loopml.deploy import deployments

    deployments.delete_deployment(_ws(), name)
    console.print(f"Deleted deployment {name}")


def _latest_judgement(events: list[Any], revision: int) -> Any:
    judged = ("analysis", "step", "promoted", "rolled_back", "ab_result", "shadow_result")
    found = [e for e in events if e.kind in judged and e.revision >= revision - 1]
    return found[-1] if found else None


def _steps(text: str) -> tuple[int, ...]:
    from loopml.errors import InvalidInput

    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InvalidInput(
            f"--steps takes whole percentages separated by commas (e.g. 10,25,50,100), not {text!r}"
        ) from None


def _bounds(given: list[str] | None, option: str) -> dict[str, float]:
    from loopml.errors import InvalidInput

    bounds: dict[str, float] = {}
    for text in given or []:
        metric, sep, value = text.partition("=")
        try:
            bounds[metric.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InvalidInput(f"{option} takes METRIC=NUMBER (e.g. accuracy=0.85), not {text!r}")
    return bounds
