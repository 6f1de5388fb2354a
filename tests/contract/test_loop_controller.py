"""The loop controller on every backend: a loop trains, registers, gates and promotes; it
waits for approval, is cancelled, cools down; and it survives a controller that dies (in the
middle of a step, or as a real process killed outright) or shares the store with another."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from loopml.automation import controller, lease, loops
from loopml.automation.controller import LOOP_TAG, Controller
from loopml.automation.loops import Loop
from loopml.core.workspace import Workspace
from loopml.errors import InvalidState
from loopml.pipelines.recording import DATASETS_TAG
from loopml.registry import models
from loopml.tracking import runs
from tests.e2e.cli import LOOPML, environment
from tests.loop_world import World, add_version, policy, world

NAME = "bc-retrain"
NEW_DATA = [{"new_data": {"dataset": "bc"}}, "manual"]
DEADLINE_S = 60.0


@pytest.fixture
def bc(ws: Workspace) -> World:
    """Datasets bc/bc-test, the pipeline, the gate, and version 1 of `bc` as champion."""
    return world(ws)


@pytest.fixture
def driver(ws: Workspace) -> Controller:
    """The one controller a test drives round by round (another would wait for its lease)."""
    return Controller(ws)


class Killed(BaseException):
    """What a controller sees when its process is killed: nothing catches it."""


class Controllers:
    """`loopml controller` processes started in a workspace, killed at the end of a test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[tuple[subprocess.Popen[str], IO[str]]] = []

    def start(self) -> subprocess.Popen[str]:
        """Start a controller that polls every 0.2 s and holds its lease for 2 s."""
        # A file, not a pipe: nobody reads it until the end, and a full pipe would block.
        output = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop_all()
        process = subprocess.Popen(
            [str(LOOPML), "controller", "--poll", "0.2s", "--lease", "2s"],
            cwd=self.root,
            env=environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.started.append((process, output))
        return process

    def output(self) -> str:
        """Return what every controller printed so far, for a failure's message."""
        parts = []
        for process, output in self.started:
            output.flush()
            output.seek(0)
            parts.append(f"--- controller {process.pid} ---\n{output.read()}")
        return "\n".join(parts)

    def stop_all(self) -> None:
        for process, output in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
            output.close()


@pytest.fixture
def processes(ws: Workspace) -> Iterator[Controllers]:
    started = Controllers(ws.root)
    yield started
    started.stop_all()


def wait_until(check: Callable[[], Any], what: str, explain: Callable[[], str] = str) -> Any:
    """Poll `check` until it returns something true (and return that), for DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S:g} s\n{explain()}"
        time.sleep(0.1)


def kinds(ws: Workspace, loop: Loop) -> list[str]:
    return [e.kind for e in loops.events(ws, loop=loop)]


def champion(ws: Workspace) -> int | None:
    return models.get_model(ws, "bc").aliases.get("champion")


def all_versions(ws: Workspace) -> list[int]:
    return sorted(v.version for v in models.versions(ws, "bc"))


def versions_of(ws: Workspace, loop: Loop) -> list[int]:
    """Return the versions of model `bc` that `loop` registered."""
    return sorted(v.version for v in models.versions(ws, "bc") if v.tags.get(LOOP_TAG) == loop.id)


def lines(marker: Path) -> list[str]:
    return marker.read_text(encoding="utf-8").split() if marker.exists() else []


def current(ws: Workspace, loop: Loop) -> Loop:
    return loops.get(ws, loop.id)


# -- one loop, driven in-process --------------------------------------------------------------


def test_a_manual_loop_trains_registers_gates_and_moves_champion(
    ws: Workspace, bc: World, driver: Controller
):
    applied = policy(ws, NAME)
    started = controller.trigger(ws, NAME, reason="fresh labels")
    assert (started.status, started.step, started.number) == ("running", "train", 1)

    assert driver.tick()

    loop = current(ws, started)
    assert (loop.status, loop.step, loop.error) == ("succeeded", "done", "")
    assert loop.finished_at is not None
    assert loops.active(ws, applied) is None
    assert loop.model == "bc/2"
    assert loop.params == {"data": "bc@v1"}
    assert champion(ws) == 2

    timeline = loops.events(ws, applied)
    assert [e.kind for e in timeline] == [
        "policy_created",
        "triggered",
        "run_started",
        "run_finished",
        "registered",
        "gate_passed",
        "promoted",
    ]
    assert all(e.loop_id == loop.id and e.loop == 1 for e in timeline[1:])
    triggered, started_run, finished, registered, gate, promoted = (e.details for e in timeline[1:])
    assert triggered["kind"] == "manual"
    assert "fresh labels" in triggered["reason"]
    assert started_run["run_id"] == loop.run_id
    assert started_run["params"] == {"data": "bc@v1"}
    assert finished["run_id"] == loop.run_id
    assert finished["datasets"] == {"bc@latest": "bc@v1", "bc-test@latest": "bc-test@v1"}
    assert registered["model"] == "models:/bc/2"
    assert registered["run_id"] == loop.run_id
    assert (gate["model"], gate["dataset"], gate["passed"]) == ("models:/bc/2", "bc-test@v1", True)
    assert promoted["model"] == "models:/bc/2"

    version = models.get_version(ws, "bc", 2)
    assert version.run_id == loop.run_id
    assert version.tags[LOOP_TAG] == loop.id
    assert version.tags["loopml.policy"] == NAME
    assert runs.get(ws, loop.run_id or "").tags["loopml.run_type"] == "pipeline"


def test_dataset_references_are_pinned_when_the_loop_is_triggered(
    ws: Workspace, bc: World, driver: Controller
):
    policy(ws, NAME)
    started = controller.trigger(ws, NAME)
    # Data that arrives after the trigger is for a later loop, not this one.
    assert add_version(ws, "bc", bc.train.iloc[:-20]) == "bc@v2"
    assert add_version(ws, "bc-test", bc.test.iloc[:-20]) == "bc-test@v2"

    assert driver.tick()

    loop = current(ws, started)
    assert loop.status == "succeeded"
    assert loop.params == {"data": "bc@v1"}
    run = runs.get(ws, loop.run_id or "")
    assert run.params["data"] == "bc@v1"
    assert "bc@v1" in run.tags[DATASETS_TAG]
    assert "bc@v2" not in run.tags[DATASETS_TAG]
    by_kind = {e.kind: e.details for e in loops.events(ws, loop=loop)}
    assert by_kind["run_started"]["params"] == {"data": "bc@v1"}
    assert by_kind["gate_passed"]["dataset"] == "bc-test@v1"


def test_a_model_that_fails_its_gate_blocks_the_loop_and_keeps_the_champion(
    ws: Workspace, bc: World, driver: Controller
):
    policy(ws, NAME, params={"data": "bc@latest", "quality": "bad"})
    started = controller.trigger(ws, NAME)

    assert driver.tick()

    loop = current(ws, started)
    assert (loop.status, loop.step) == ("blocked", "done")
    assert "threshold f1" in loop.error
    assert kinds(ws, loop) == [
        "triggered",
        "run_started",
        "run_finished",
        "registered",
        "gate_failed",
    ]
    failed = loops.events(ws, loop=loop)[-1].details
    assert failed["passed"] is False
    assert {c["check"] for c in failed["checks"] if not c["passed"]} >= {"threshold"}
    assert champion(ws) == 1
    assert versions_of(ws, loop) == [2]  # registered, for the record, but not promoted


def test_a_loop_that_asks_for_approval_waits_for_it(ws: Workspace, bc: World, driver: Controller):
    applied = policy(ws, NAME, approval="manual")
    started = controller.trigger(ws, NAME)
    with pytest.raises(InvalidState, match="waits for approval"):
        controller.approve(ws, NAME)  # it has not even trained yet

    assert driver.tick()
    loop = current(ws, started)
    assert (loop.status, loop.step) == ("waiting", "approval")
    assert kinds(ws, loop)[-2:] == ["gate_passed", "approval_requested"]
    waiting = kinds(ws, loop)

    assert driver.tick()
    assert driver.tick()
    assert current(ws, started) == loop
    assert kinds(ws, loop) == waiting
    assert champion(ws) == 1

    approved = controller.approve(ws, NAME)
    assert (approved.status, approved.step) == ("running", "release")
    assert kinds(ws, loop)[-1] == "approved"

    assert driver.tick()
    loop = current(ws, started)
    assert loop.status == "succeeded"
    assert kinds(ws, loop)[-2:] == ["approved", "promoted"]
    assert champion(ws) == 2
    with pytest.raises(InvalidState, match="no loop is active"):
        controller.approve(ws, NAME)
    assert loops.active(ws, applied) is None


def test_a_cancelled_loop_frees_its_policy(ws: Workspace, bc: World, driver: Controller):
    policy(ws, NAME, approval="manual")
    first = controller.trigger(ws, NAME)
    assert driver.tick()
    assert current(ws, first).status == "waiting"
    with pytest.raises(InvalidState, match="has an active loop"):
        controller.trigger(ws, NAME)

    cancelled = controller.cancel(ws, NAME, reason="wrong labels")
    assert (cancelled.status, cancelled.step) == ("cancelled", "done")
    assert "wrong labels" in cancelled.error
    assert kinds(ws, first)[-1] == "cancelled"
    with pytest.raises(InvalidState, match="no active loop"):
        controller.cancel(ws, NAME)

    assert driver.tick()  # nothing to drive: the cancelled loop stays as it is
    assert current(ws, first) == cancelled
    assert champion(ws) == 1

    second = controller.trigger(ws, NAME)
    assert second.number == 2
    assert driver.tick()
    assert (current(ws, second).status, current(ws, second).model) == ("waiting", "bc/3")


def test_automatic_triggers_wait_for_the_cooldown_and_manual_ones_do_not(
    ws: Workspace, bc: World, driver: Controller
):
    applied = policy(ws, NAME, triggers=NEW_DATA, cooldown="1h")
    assert driver.tick()
    assert loops.of(ws, applied) == []  # bc@v1 was there before the policy

    add_version(ws, "bc", bc.train.iloc[:-10])
    assert driver.tick()
    (first,) = loops.of(ws, applied)
    assert (first.status, first.trigger["kind"], first.params) == (
        "succeeded",
        "new_data",
        {"data": "bc@v2"},
    )

    assert controller.status(ws, applied)["cooling_until"] == first.started_at + 3_600_000
    manual = controller.trigger(ws, NAME)  # a person does not wait for the cooldown
    assert driver.tick()
    second = current(ws, manual)
    assert (second.number, second.status, second.trigger["kind"]) == (2, "succeeded", "manual")

    add_version(ws, "bc", bc.train.iloc[:-20])
    assert driver.tick()
    assert [loop.number for loop in loops.of(ws, applied)] == [2, 1]  # cooling down
    state = controller.status(ws, applied)
    assert state["cooling_until"] == second.started_at + 3_600_000
    assert [(p["kind"], p["dataset"]) for p in state["pending"]] == [("new_data", "bc@v3")]

    shorter = policy(ws, NAME, triggers=NEW_DATA, cooldown="1s")
    wait_until(lambda: controller.status(ws, shorter)["cooling_until"] is None, "the cooldown")
    assert driver.tick()
    latest = loops.of(ws, shorter)
    assert [loop.number for loop in latest] == [3, 2, 1]
    assert latest[0].trigger["kind"] == "new_data"
    assert "bc@v3" in latest[0].trigger["reason"]
    assert (latest[0].status, latest[0].params) == ("succeeded", {"data": "bc@v3"})
    assert controller.status(ws, shorter)["pending"] == []


def test_a_controller_that_dies_after_registering_does_not_register_twice(
    ws: Workspace, bc: World, monkeypatch: pytest.MonkeyPatch
):
    policy(ws, NAME)
    started = controller.trigger(ws, NAME)
    real_move = loops.move
    deaths: list[str] = []

    def dies_on_the_way_to_the_gate(*args: Any, **kwargs: Any) -> Loop | None:
        if kwargs.get("step") == "gate" and not deaths:
            deaths.append("register -> gate")
            raise Killed
        return real_move(*args, **kwargs)

    monkeypatch.setattr(loops, "move", dies_on_the_way_to_the_gate)
    with pytest.raises(Killed):
        Controller(ws, lease_s=1.0).tick()
    assert deaths == ["register -> gate"]
    loop = current(ws, started)
    assert (loop.status, loop.step) == ("running", "register")  # the store never heard of it
    assert versions_of(ws, loop) == [2]

    successor = Controller(ws)
    wait_until(successor.tick, "the dead controller's lease to expire")

    loop = current(ws, started)
    assert loop.status == "succeeded"
    assert loop.model == "bc/2"
    assert all_versions(ws) == [1, 2]
    assert versions_of(ws, loop) == [2]
    assert kinds(ws, loop).count("registered") == 1
    assert champion(ws) == 2


# -- real controller processes -----------------------------------------------------------------


def test_a_killed_controller_process_is_resumed_by_the_next_one(
    ws: Workspace, bc: World, processes: Controllers, tmp_path: Path
):
    marker = tmp_path / "steps.txt"
    policy(ws, NAME, params={"data": "bc@latest", "pause": 4.0, "marker": str(marker)})
    first = processes.start()
    started = controller.trigger(ws, NAME)

    wait_until(lambda: "train" in lines(marker), "train to start", processes.output)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    loop = current(ws, started)
    assert (loop.status, loop.step) == ("running", "train"), processes.output()

    processes.start()
    loop = wait_until(
        lambda: not (found := current(ws, started)).active and found,
        "the loop to finish under the second controller",
        processes.output,
    )
    assert loop.status == "succeeded", loop.error
    assert lines(marker).count("prepare") == 1  # the second run took it from the cache
    assert lines(marker).count("train") == 2
    assert versions_of(ws, loop) == [2]
    assert all_versions(ws) == [1, 2]
    timeline = kinds(ws, loop)
    assert timeline.count("run_started") == 2
    assert timeline.count("run_finished") == 1
    assert timeline.count("registered") == 1
    killed, resumed = (
        e.details["run_id"] for e in loops.events(ws, loop=loop) if e.kind == "run_started"
    )
    assert resumed == loop.run_id != killed
    assert (
        runs.get(ws, killed).status == "KILLED"
    )  # the dead controller's run does not stay RUNNING
    assert runs.get(ws, resumed).status == "FINISHED"
    assert champion(ws) == 2


def test_two_controller_processes_drive_each_loop_once_and_take_over(
    ws: Workspace, bc: World, processes: Controllers, tmp_path: Path
):
    marker = tmp_path / "steps.txt"
    policy(ws, NAME, params={"data": "bc@latest", "marker": str(marker), "run": 9})
    pair = {processes.start().pid, processes.start().pid}
    first = controller.trigger(ws, NAME)

    loop = wait_until(
        lambda: not (found := current(ws, first)).active and found,
        "the first loop to finish",
        processes.output,
    )
    assert loop.status == "succeeded", loop.error
    assert kinds(ws, loop).count("run_started") == 1
    assert sorted(lines(marker)) == ["prepare", "train"]
    assert all_versions(ws) == [1, 2]

    holding = lease.current(ws, lease.CONTROLLER)
    assert holding is not None
    acting = int(holding.holder.split(":")[1])
    assert acting in pair, holding.holder
    os.kill(acting, signal.SIGKILL)
    (survivor,) = pair - {acting}

    second = controller.trigger(ws, NAME)
    loop = wait_until(
        lambda: not (found := current(ws, second)).active and found,
        "the second controller to take the second loop over",
        processes.output,
    )
    assert loop.status == "succeeded", loop.error
    assert kinds(ws, loop).count("run_started") == 1
    assert all_versions(ws) == [1, 2, 3]
    taken = lease.current(ws, lease.CONTROLLER)
    assert taken is not None
    assert int(taken.holder.split(":")[1]) == survivor
    assert taken.token > holding.token
    assert champion(ws) == 3
