"""What a review that tried to break the loop found, on every store: one broken policy never
stops the others, a loop runs with the policy it started with, a cancel racing a canary leaves
no orphan, what a gate needs is checked before anything trains, a policy's missing parts are
reported, and a step redone after a crash says so."""

from __future__ import annotations

from typing import Any

import pytest

from loopml.automation import controller, loops, triggers
from loopml.automation import policy as policies
from loopml.automation.controller import Controller
from loopml.core.workspace import Workspace
from loopml.deploy import deployments, strategies
from loopml.errors import InvalidInput
from loopml.monitoring import monitors
from loopml.registry import models
from tests.e2e.cli import free_port
from tests.loop_world import Killed, kill_at, policy, world

HOLDER = "tests"


def tick(ws: Workspace) -> None:
    Controller(ws, holder=HOLDER).tick()


def versions_of(ws: Workspace) -> list[int]:
    return sorted(v.version for v in models.versions(ws, "bc"))


def test_one_broken_policy_does_not_stop_the_others(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    world(ws)
    broken = policy(ws, "aaa-broken", triggers=[{"schedule": "* * * * *"}])
    healthy = policy(ws, "zzz-healthy")
    real_due = triggers.due

    def due(ws_: Workspace, checked: policies.Policy, *args: Any) -> Any:
        if checked.name == broken.name:
            raise OverflowError("cannot convert float infinity to integer")
        return real_due(ws_, checked, *args)

    monkeypatch.setattr(controller, "due", due)
    controller.trigger(ws, healthy.name)
    tick(ws)  # the broken policy comes first by name, and fails
    assert loops.of(ws, healthy)[0].status == "succeeded"


def test_a_loop_keeps_the_policy_it_started_with(ws: Workspace) -> None:
    world(ws)
    applied = policy(ws, approval="manual")
    controller.trigger(ws, applied.name)
    tick(ws)
    assert loops.active(ws, applied).status == "waiting"  # type: ignore[union-attr]

    policy(ws, approval="none")  # re-applied mid-loop: for the next loop
    tick(ws)
    loop = loops.active(ws, applied)
    assert loop is not None and loop.status == "waiting"
    controller.approve(ws, applied.name)
    tick(ws)
    kinds = [e.kind for e in loops.events(ws, applied, loop=loop)]
    assert kinds[-3:] == ["approval_requested", "approved", "promoted"]


def test_a_cancel_as_the_canary_starts_leaves_no_orphan_canary(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    world(ws)
    deployments.create(ws, "bc", "bc@champion", host="127.0.0.1", port=free_port())
    applied = policy(ws, rollout={"deployment": "bc", "steps": [50, 100], "interval": "1s"})
    controller.trigger(ws, applied.name)
    real_canary = strategies.canary

    def canary_then_cancel(*args: Any, **kwargs: Any) -> Any:
        started = real_canary(*args, **kwargs)
        controller.cancel(ws, applied.name, reason="a person, at that moment")
        return started

    monkeypatch.setattr(strategies, "canary", canary_then_cancel)
    tick(ws)
    assert loops.of(ws, applied)[0].status == "cancelled"
    routing = deployments.get(ws, "bc").routing
    assert (routing.stable, routing.candidate) == ("bc/1", None)
    assert models.get_model(ws, "bc").aliases["champion"] == 1


def test_apply_refuses_evaluation_data_without_the_target(ws: Workspace) -> None:
    world(ws)
    with pytest.raises(InvalidInput, match="has no target column 'churned'"):
        policy(ws, evaluation={"data": "bc-test@latest", "target": "churned"})
    assert policies.list_all(ws) == []


def test_what_the_gate_needs_is_checked_before_anything_trains(ws: Workspace) -> None:
    world(ws)
    applied = policy(ws)
    (ws.root / "gate.yaml").unlink()
    assert any("gate file gate.yaml is gone" in p for p in controller.problems(ws, applied))
    controller.trigger(ws, applied.name)
    tick(ws)
    loop = loops.of(ws, applied)[0]
    assert loop.status == "failed" and "gate file" in loop.error
    assert versions_of(ws) == [1]  # nothing trained, nothing registered
    assert "run_started" not in [e.kind for e in loops.events(ws, applied, loop=loop)]


def test_status_reports_a_deleted_monitor(ws: Workspace) -> None:
    made = world(ws)
    deployments.create(ws, "bc", "bc@champion", host="127.0.0.1", port=free_port())
    monitors.create(ws, "bc-watch", deployment="bc", reference=made.test, window="1m")
    applied = policy(ws, triggers=[{"drift": {"monitor": "bc-watch", "when": "drift_share > 0.3"}}])
    assert controller.status(ws, applied)["problems"] == []
    monitors.delete_monitor(ws, "bc-watch")
    assert controller.status(ws, applied)["problems"] == [
        "monitor bc-watch was deleted: its triggers cannot fire"
    ]
    tick(ws)  # nothing fires, nothing fails
    assert loops.of(ws, applied) == []


def test_a_controller_stopped_after_moving_champion_records_it_once(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    world(ws)
    applied = policy(ws)
    controller.trigger(ws, applied.name)
    revive = kill_at(monkeypatch, "done")
    with pytest.raises(Killed):
        tick(ws)
    revive()
    tick(ws)
    promoted = loops.events(ws, applied)[-1]
    assert promoted.kind == "promoted"
    assert promoted.reason == "bc@champion is version 2"  # not "(was version 2)"
    moves = [e for e in models.alias_history(ws, "bc", "champion") if e.to_version == 2]
    assert len(moves) == 1


def test_a_run_started_again_after_a_crash_says_so(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    world(ws)
    applied = policy(ws)
    controller.trigger(ws, applied.name)
    revive = kill_at(monkeypatch, "register")
    with pytest.raises(Killed):
        tick(ws)
    revive()
    tick(ws)
    starts = [e.reason for e in loops.events(ws, applied) if e.kind == "run_started"]
    assert len(starts) == 2
    assert "started again after the controller stopped mid-run" in starts[1]
    assert loops.of(ws, applied)[0].status == "succeeded"
