"""The routing changes a person (or the rollout controller) makes to a deployment.

Each verb reads the deployment, checks the change makes sense from where it stands, and
writes it as a compare-and-set with an event in the deployment's history. A running server
picks the new routing up from the store within a second.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from loopml.core.store import now_ms
from loopml.core.workspace import Workspace
from loopml.deploy.deployments import Deployment, change, get, version_of
from loopml.deploy.routing import Rollout, Routing
from loopml.errors import InvalidInput, InvalidState, LoopMLError
from loopml.registry import models

log = logging.getLogger("loopml.deploy")


def canary(
    ws: Workspace,
    name: str,
    model: str,
    *,
    steps: tuple[int, ...] = (10, 25, 50, 100),
    interval_s: float = 60.0,
    max_error_rate: float = 0.01,
    max_p99_ms: float | None = None,
    min_metrics: Mapping[str, float] | None = None,
    max_metrics: Mapping[str, float] | None = None,
    min_requests: int = 50,
) -> Deployment:
    """Start a canary of `model`: its first step's share of traffic, judged every interval."""
    deployment = _idle(ws, name)
    candidate = _candidate(ws, deployment, model)
    rollout = Rollout(
        steps=tuple(steps),
        interval_s=interval_s,
        max_error_rate=max_error_rate,
        max_p99_ms=max_p99_ms,
        min_metrics=dict(min_metrics or {}),
        max_metrics=dict(max_metrics or {}),
        min_requests=min_requests,
        step_started_at=now_ms(),
    )
    routing = Routing(
        "canary",
        deployment.routing.stable,
        candidate,
        weight=rollout.weight,
        rollout=rollout,
        previous=deployment.routing.previous,
    )
    return change(ws, deployment, routing, kind="canary", reason=f"canary of {candidate} started")


def bluegreen(ws: Workspace, name: str, model: str) -> Deployment:
    """Put `model` up as the preview (under /preview/), beside the active version."""
    deployment = _idle(ws, name)
    candidate = _candidate(ws, deployment, model)
    routing = Routing(
        "bluegreen", deployment.routing.stable, candidate, previous=deployment.routing.previous
    )
    return change(ws, deployment, routing, kind="bluegreen", reason=f"{candidate} in preview")


def switch(ws: Workspace, name: str) -> Deployment:
    """Make the blue-green preview the active version, at once; rollback switches back."""
    deployment = get(ws, name)
    routing = deployment.routing
    if routing.strategy != "bluegreen" or routing.candidate is None:
        raise InvalidState(
            f"deployment {name!r} has no preview to switch to ({routing.describe()}); start one "
            "with loopml deploy bluegreen"
        )
    switched = Routing("single", routing.candidate, previous=routing.stable)
    reason = f"{routing.candidate} is active"
    return _moved_stable(ws, deployment, routing=switched, kind="switched", reason=reason)


def ab(
    ws: Workspace,
    name: str,
    b: str,
    *,
    a: str | None = None,
    split: float = 50.0,
    sticky: str | None = None,
    report_s: float = 30.0,
) -> Deployment:
    """Split traffic between arm a, the version serving now, and arm b (`split` percent to
    b), sticky by a request key. Promote keeps b, rollback keeps a."""
    deployment = _idle(ws, name)
    stable = deployment.routing.stable
    if a is not None and version_of(ws, a)[0] != stable:
        # Arm a is what the deployment serves: promote and rollback (and the alias) stay true.
        raise InvalidInput(
            f"arm a must be the version deployment {name!r} serves now ({stable}), not {a}; "
            f"leave --a out, or make it the stable one first (deploy canary|bluegreen)"
        )
    arm_b = _candidate(ws, deployment, b)
    routing = Routing(
        "ab",
        stable,
        arm_b,
        weight=split,
        sticky=sticky,
        report_s=report_s,
        previous=deployment.routing.previous,
    )
    return change(ws, deployment, routing, kind="ab", reason=f"A/B test {stable} vs {arm_b}")


def shadow(ws: Workspace, name: str, model: str, *, report_s: float = 30.0) -> Deployment:
    """Send `model` a copy of every request; its answers are logged and compared, not returned."""
    deployment = _idle(ws, name)
    candidate = _candidate(ws, deployment, model)
    routing = Routing(
        "shadow",
        deployment.routing.stable,
        candidate,
        report_s=report_s,
        previous=deployment.routing.previous,
    )
    return change(ws, deployment, routing, kind="shadow", reason=f"{candidate} in shadow")


def advance(
    ws: Workspace, deployment: Deployment, details: dict[str, Any], *, now: int | None = None
) -> Deployment:
    """Move a canary to its next step (the controller calls this when an analysis passes)."""
    routing = deployment.routing
    rollout = routing.rollout
    if rollout is None or rollout.last:
        raise InvalidState(f"deployment {deployment.name!r} has no further canary step")
    step = rollout.with_step(rollout.step + 1, now or now_ms())
    advanced = routing.with_(weight=step.weight, rollout=step)
    reason = f"analysis passed at {rollout.weight}%: {routing.candidate} now takes {step.weight}%"
    return change(ws, deployment, advanced, kind="step", reason=reason, details=details)


def promote(
    ws: Workspace,
    name: str,
    *,
    reason: str = "",
    details: dict[str, Any] | None = None,
    judged: Deployment | None = None,
) -> Deployment:
    """Make the candidate (canary, preview, arm b, shadow) the stable version; move the alias.

    With `judged` (the deployment as a decision saw it), nothing happens if it changed since.
    """
    deployment = get(ws, name) if judged is None else judged
    routing = deployment.routing
    if routing.candidate is None:
        raise InvalidState(
            f"deployment {name!r} has no candidate to promote ({routing.describe()})"
        )
    promoted = Routing("single", routing.candidate, previous=routing.stable)
    why = reason or f"{routing.candidate} promoted"
    return _moved_stable(
        ws, deployment, routing=promoted, kind="promoted", reason=why, details=details
    )


def rollback(
    ws: Workspace,
    name: str,
    *,
    reason: str = "",
    details: dict[str, Any] | None = None,
    judged: Deployment | None = None,
) -> Deployment:
    """Send all traffic back: off the candidate, or to the version active before a switch.

    With `judged` (the deployment as a decision saw it), nothing happens if it changed since.
    """
    deployment = get(ws, name) if judged is None else judged
    routing = deployment.routing
    if routing.candidate is not None:  # off the candidate: the stable version stays
        back = Routing("single", routing.stable, previous=routing.previous)
        why = reason or f"{routing.candidate} rolled back; {routing.stable} takes all traffic"
        return change(ws, deployment, back, kind="rolled_back", reason=why, details=details)
    if routing.previous is None:
        raise InvalidState(
            f"deployment {name!r} has nothing to roll back to: {routing.describe()}, and no "
            "earlier version on record"
        )
    back = Routing("single", routing.previous)  # back past a switch or promotion
    why = reason or f"back to {routing.previous} (from {routing.stable})"
    return _moved_stable(
        ws, deployment, routing=back, kind="rolled_back", reason=why, details=details
    )


def _moved_stable(
    ws: Workspace,
    deployment: Deployment,
    *,
    routing: Routing,
    kind: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> Deployment:
    """Write a change of the stable version, then move the deployment's alias along."""
    done = change(ws, deployment, routing, kind=kind, reason=reason, details=details)
    if deployment.alias is None:
        return done
    old_name, old_version = _split(deployment.routing.stable)
    new_name, new_version = _split(routing.stable)
    if old_name != new_name:
        log.warning("%s@%s not moved: %s is another model", old_name, deployment.alias, new_name)
        return done
    try:
        models.set_alias(
            ws,
            new_name,
            deployment.alias,
            new_version,
            reason=f"deployment {deployment.name}: {reason}",
            expected=old_version,
        )
    except LoopMLError as exc:  # the routing stands; the alias moved elsewhere meanwhile
        log.warning("%s@%s not moved: %s", new_name, deployment.alias, exc)
    return done


def _idle(ws: Workspace, name: str) -> Deployment:
    deployment = get(ws, name)
    if deployment.routing.candidate is not None:
        raise InvalidState(
            f"deployment {name!r} is busy: {deployment.routing.describe()}; promote or roll "
            f"back first (loopml deploy promote|rollback {name})"
        )
    return deployment


def _candidate(ws: Workspace, deployment: Deployment, model: str) -> str:
    candidate, _ = version_of(ws, model)
    if candidate == deployment.routing.stable:
        raise InvalidInput(
            f"{candidate} already serves deployment {deployment.name!r}; choose another version"
        )
    return candidate


def _split(version: str) -> tuple[str, int]:
    name, _, number = version.rpartition("/")
    return name, int(number)
