"""A loop's rollout on every store: the canary it starts, the verdicts it follows, its deadline,
cancelling, resuming after a crash mid-release, and training on the Ray executor.

The deployment here is recorded but not served; the verdicts a deployment's server would reach
are made with the same calls its rollout controller makes (`strategies.promote`/`rollback`).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from loopml.automation import controller, loops
from loopml.automation.controller import Controller
from loopml.automation.policy import Policy
from loopml.core.workspace import Workspace
from loopml.deploy import deployments, strategies
from loopml.registry import models
from tests.e2e.cli import free_port
from tests.loop_world import Killed, kill_at, policy, world

ROLLOUT = {"deployment": "bc", "steps": [50, 100], "interval": "1s"}
HOLDER = "tests"  # one holder: each test's controllers renew the same lease


def rolling_out(ws: Workspace, model: str = "bc@champion", **rollout: Any) -> Policy:
    """Serve `model` as deployment bc (on record), apply a policy that canaries on it, and
    drive a manual loop to its watch step."""
    world(ws)
    deployments.create(ws, "bc", model, host="127.0.0.1", port=free_port())
    applied = policy(ws, rollout=ROLLOUT | rollout)
    controller.trigger(ws, applied.name)
    Controller(ws, holder=HOLDER).tick()
    loop = loops.active(ws, applied)
    assert loop is not None and (loop.step, loop.status) == ("watch", "rolling_out"), loop
    return applied


def last_loop(ws: Workspace, applied: Policy) -> loops.Loop:
    return loops.of(ws, applied, limit=1)[0]


@pytest.mark.parametrize("model", ["bc@champion", "bc/1"])
def test_a_canary_its_deployment_promotes_makes_the_model_champion(
    ws: Workspace, model: str
) -> None:
    applied = rolling_out(ws, model)
    routing = deployments.get(ws, "bc").routing
    assert (routing.strategy, routing.stable, routing.candidate) == ("canary", "bc/1", "bc/2")
    Controller(ws, holder=HOLDER).tick()  # no verdict yet: the loop waits
    assert last_loop(ws, applied).status == "rolling_out"

    strategies.advance(ws, deployments.get(ws, "bc"), {"step": "passed"})
    strategies.promote(ws, "bc", reason="passed at 100% over 80 requests")
    Controller(ws, holder=HOLDER).tick()

    loop = last_loop(ws, applied)
    assert (loop.status, loop.step) == ("succeeded", "done")
    # Whether the deployment moved the alias (bc@champion) or not (bc/1), champion is bc/2.
    assert models.get_model(ws, "bc").aliases["champion"] == 2
    kinds = [e.kind for e in loops.events(ws, applied, loop=loop)]
    assert kinds[-3:] == ["rollout_started", "rollout_step", "promoted"]
    promoted = loops.events(ws, applied, loop=loop)[-1]
    assert "passed at 100% over 80 requests" in promoted.reason


def test_a_canary_its_deployment_rolls_back_ends_the_loop_rolled_back(ws: Workspace) -> None:
    applied = rolling_out(ws)
    strategies.rollback(ws, "bc", reason="failed at 50%: error rate 0.2 > 0.01")
    Controller(ws, holder=HOLDER).tick()
    loop = last_loop(ws, applied)
    assert loop.status == "rolled_back"
    assert "error rate 0.2" in loop.error
    assert models.get_model(ws, "bc").aliases["champion"] == 1
    assert deployments.get(ws, "bc").routing.stable == "bc/1"


def test_a_canary_nobody_judges_is_rolled_back_at_its_deadline(ws: Workspace) -> None:
    applied = rolling_out(ws, timeout="1s")
    time.sleep(1.1)  # past the deadline, with no server to judge the canary
    Controller(ws, holder=HOLDER).tick()
    loop = last_loop(ws, applied)
    assert loop.status == "rolled_back"
    assert "deadline" in loop.error and "loopml deploy serve bc" in loop.error
    routing = deployments.get(ws, "bc").routing
    assert (routing.stable, routing.candidate) == ("bc/1", None)
    assert models.get_model(ws, "bc").aliases["champion"] == 1


def test_cancelling_a_loop_rolls_its_canary_back(ws: Workspace) -> None:
    applied = rolling_out(ws)
    cancelled = controller.cancel(ws, applied.name, reason="wrong data")
    assert (cancelled.status, cancelled.error) == ("cancelled", "cancelled by root: wrong data")
    routing = deployments.get(ws, "bc").routing
    assert (routing.stable, routing.candidate) == ("bc/1", None)
    Controller(ws, holder=HOLDER).tick()  # nothing left to do
    assert last_loop(ws, applied).status == "cancelled"


def test_a_controller_killed_after_starting_the_canary_does_not_start_another(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    world(ws)
    deployments.create(ws, "bc", "bc@champion", host="127.0.0.1", port=free_port())
    applied = policy(ws, rollout=ROLLOUT)
    controller.trigger(ws, applied.name)
    revive = kill_at(monkeypatch, "watch")  # between starting the canary and recording it
    with pytest.raises(Killed):
        Controller(ws, holder=HOLDER).tick()
    assert last_loop(ws, applied).step == "release"
    assert deployments.get(ws, "bc").routing.candidate == "bc/2"  # the canary is on

    revive()
    Controller(ws, holder=HOLDER).tick()  # after the crash: the canary is recognised, not redone
    loop = last_loop(ws, applied)
    assert (loop.step, loop.status) == ("watch", "rolling_out")
    canaries = [e for e in deployments.history(ws, "bc") if e.kind == "canary"]
    assert len(canaries) == 1
    assert loop.details["rollout"]["since_event"] == canaries[0].id


@pytest.mark.usefixtures("ray_cluster")
def test_a_loop_trains_on_the_ray_executor(ws: Workspace) -> None:
    world(ws)
    applied = policy(ws, executor="ray", params={"data": "bc@latest", "run": 7})
    controller.trigger(ws, applied.name)
    Controller(ws, holder=HOLDER).tick()
    loop = last_loop(ws, applied)
    assert loop.status == "succeeded", loop.error
    started = next(e for e in loops.events(ws, applied) if e.kind == "run_started")
    assert started.details["executor"] == "ray"
    finished = next(e for e in loops.events(ws, applied) if e.kind == "run_finished")
    assert (finished.details["steps"], finished.details["cached"]) == (2, 0)  # ran on Ray
    assert models.get_model(ws, "bc").aliases["champion"] == 2
