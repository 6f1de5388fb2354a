"""`loopml loop` and `loopml controller`: continuous-training policies and the closed loop."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from loopml.automation.controller import Controller
    from loopml.automation.loops import Event
    from loopml.core.workspace import Workspace

app = typer.Typer(
    help="Continuous training: policies that retrain, gate and roll out models by themselves.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[str, typer.Argument(help="The policy's name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _ws() -> Workspace:
    from loopml.core.workspace import set_workspace

    return set_workspace()


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="The policy's YAML file.")],
) -> None:
    """Check a policy file against the workspace and store it (again, after an edit)."""
    from loopml.automation import policy as policies
    from loopml.cli.output import console

    ws = _ws()
    stored, outcome = policies.apply(ws, policies.load(file))
    triggers = ", ".join(t.key for t in stored.triggers)
    console.print(f"Policy {stored.name} {outcome}: {triggers}")
    if outcome == "created":
        console.print(
            "A controller acts on it: loopml controller (also started by loopml deploy serve)"
        )


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List the policies with their last loop."""
    status(None, as_json)


@app.command()
def status(
    name: Annotated[str | None, typer.Argument(help="One policy (default: all).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show each policy's loop now: its step, cooldown, triggers about to fire, controller."""
    from loopml.automation import controller
    from loopml.automation import policy as policies
    from loopml.cli.output import console, print_json, table, when

    ws = _ws()
    chosen = [policies.get(ws, name)] if name else policies.list_all(ws)
    found = [controller.status(ws, p) for p in chosen]
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("No policies yet: loopml loop apply POLICY.yaml")
        return
    rows = []
    for state in found:
        loop = state["loop"]
        rows.append(
            (
                state["policy"],
                f"#{loop['number']}" if loop else "",
                _state(loop) if loop else "never ran",
                loop["model"] if loop and loop["model"] else "",
                when(state["cooling_until"], short=True) if state["cooling_until"] else "",
                "; ".join(p["reason"] for p in state["pending"]),
            )
        )
    table(
        "Policies",
        ["POLICY", "LOOP", "STATE", "MODEL", "COOLS UNTIL", "PENDING"],
        rows,
        wrap=("STATE", "PENDING"),
    )
    for state in found:
        for problem in state["problems"]:
            console.print(f"{state['policy']}: {problem}")
    holder = found[0]["controller"]
    console.print(
        f"Controller: {holder}" if holder else "No controller is running: loopml controller"
    )


@app.command()
def events(
    name: Annotated[str | None, typer.Argument(help="One policy (default: all).")] = None,
    loop: Annotated[int | None, typer.Option("--loop", help="Only loop number N.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Only the last N events.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Show the timeline: triggers, runs, gate verdicts, rollout steps, promotions."""
    from loopml.automation import loops
    from loopml.automation import policy as policies
    from loopml.cli.output import console, print_json

    ws = _ws()
    policy = policies.get(ws, name) if name else None
    if loop is not None and policy is None:
        raise typer.BadParameter("--loop needs the policy's name", param_hint="--loop")
    chosen = loops.find(ws, policy, loop) if policy and loop is not None else None
    found = loops.events(ws, policy, loop=chosen, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    if not found:
        console.print("No events yet.")
        return
    for event in found:
        console.print(timeline_line(event), soft_wrap=True)


@app.command()
def trigger(
    name: NameArg,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the timeline.")] = "",
) -> None:
    """Start a loop now (ignores the cooldown, not a loop already running)."""
    from loopml.automation import controller
    from loopml.cli.output import console

    loop = controller.trigger(_ws(), name, reason=reason)
    console.print(f"Started loop {loop.label}; the controller trains it (loopml controller)")


@app.command()
def approve(name: NameArg) -> None:
    """Let a loop that waits for approval roll its model out."""
    from loopml.automation import controller
    from loopml.cli.output import console

    loop = controller.approve(_ws(), name)
    console.print(f"Approved models:/{loop.model} of loop {loop.label}; its rollout starts next")


@app.command()
def cancel(
    name: NameArg,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the timeline.")] = "",
) -> None:
    """End a policy's active loop (a canary it started is rolled back)."""
    from loopml.automation import controller
    from loopml.cli.output import console

    loop = controller.cancel(_ws(), name, reason=reason)
    console.print(f"Cancelled loop {loop.label}")


@app.command()
def report(
    name: NameArg,
    html: Annotated[Path, typer.Option("--html", help="Write the report to this file.")],
) -> None:
    """Write an HTML report of a policy: its loops, timeline and the monitors it watches."""
    from loopml.automation import policy as policies
    from loopml.automation.report import render_stored
    from loopml.cli.output import console, write_page

    ws = _ws()
    page = render_stored(ws, policies.get(ws, name))
    write_page(html, page)
    console.print(f"Report written to {html}")


@app.command()
def delete(name: NameArg) -> None:
    """Forget a policy with its loops and timeline (not while a loop is active)."""
    from loopml.automation import policy as policies
    from loopml.cli.output import console

    policies.delete_policy(_ws(), name)
    console.print(f"Deleted policy {name}")


def controller_command(
    poll: Annotated[str, typer.Option("--poll", help="Time between rounds: 5s, 1m.")] = "5s",
    lease: Annotated[
        str, typer.Option("--lease", help="How long the lease lasts unrenewed: 30s.")
    ] = "30s",
    once: Annotated[bool, typer.Option("--once", help="Do one round and exit.")] = False,
) -> None:
    """Run the loop controller: fire policies' triggers, retrain, gate, roll out (Ctrl-C stops).

    Several controllers may run against one store: one acts, the others stand by and take
    over when its lease expires.
    """
    from loopml.automation import lease as lease_module
    from loopml.automation import loops
    from loopml.automation.controller import Controller
    from loopml.cli.output import console
    from loopml.core.durations import seconds

    ws = _ws()
    worker = Controller(ws, poll_s=seconds(poll), lease_s=seconds(lease))
    if not once and worker.lease_s < 3 * worker.poll_s:
        raise typer.BadParameter(
            f"the lease ({lease}) must last at least three rounds ({poll} each)",
            param_hint="--lease",
        )
    last = max((e.id for e in loops.events(ws, limit=1)), default=0)
    if once:
        try:
            acted = worker.tick()
        finally:
            lease_module.release(ws, lease_module.CONTROLLER, worker.holder)
        _print_new(ws, last)
        if not acted:
            console.print("Another controller holds the lease; nothing done")
        return
    console.print(f"Controller {worker.holder}: a round every {poll} (Ctrl-C stops)")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    with terminable():
        _follow(ws, worker, thread, stop, last)


def _follow(
    ws: Workspace, worker: Controller, thread: threading.Thread, stop: threading.Event, last: int
) -> None:
    """Print the timeline as it lands until the controller's thread ends; stop it on exit."""
    from loopml.cli.output import console

    acting = True
    try:
        while thread.is_alive():
            time.sleep(min(worker.poll_s, 1.0))
            last = _print_new(ws, last)
            if worker.holding != acting:
                acting = worker.holding
                console.print(
                    "Acting: this controller holds the lease"
                    if acting
                    else "Another controller holds the lease; standing by"
                )
    finally:
        stop.set()
        thread.join(timeout=worker.lease_s)


@contextmanager
def terminable(enabled: bool = True) -> Iterator[None]:
    """Make SIGTERM (what systemd and Kubernetes send) exit through `finally` blocks, so a
    controller gives its lease up; the handler before is restored afterwards. (A server
    re-raises the SIGTERM it drained on; this turns that into an exit, status 143.)"""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_now(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    before = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def timeline_line(event: Event) -> str:
    """Return one event as a timeline line: time, loop, kind, reason."""
    from loopml.cli.output import when

    loop = f"#{event.loop}" if event.loop is not None else "-"
    reason = " ".join(event.reason.split())  # one line per event, whatever a message held
    return f"{when(event.created_at)}  {event.policy} {loop:<4} {event.kind:<18} {reason}"


def _print_new(ws: Workspace, after: int) -> int:
    from loopml.automation import loops
    from loopml.cli.output import console

    found = [e for e in loops.events(ws, limit=200) if e.id > after]
    for event in found:
        console.print(timeline_line(event), soft_wrap=True)
    return found[-1].id if found else after


def _state(loop: dict[str, Any]) -> str:
    status = str(loop["status"]).replace("_", " ")
    if loop["status"] == "waiting":
        return "waits for approval"
    if loop["status"] in ("running", "rolling_out"):
        return f"{status}: {loop['step']}"
    error = " ".join(str(loop["error"]).split())
    if not error:
        return status
    shown = error if error.startswith(status) else f"{status}: {error}"
    return shown if len(shown) <= 120 else shown[:119] + "…"
