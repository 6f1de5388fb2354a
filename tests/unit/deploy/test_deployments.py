"""Deployments in the store and the routing changes people make to them, on every backend."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

import loopml
from loopml.core.workspace import Workspace
from loopml.deploy import deployments, strategies
from loopml.deploy.deployments import Deployment
from loopml.deploy.routing import Rollout, Routing
from loopml.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from loopml.registry import models

EXAMPLE = pd.DataFrame({"x": [1.0, 2.0]})


class Constant:
    """A model that answers one number, whatever it is asked."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, data: pd.DataFrame) -> list[float]:
        return [self.value] * len(data)


@pytest.fixture
def reg(ws: Workspace) -> Workspace:
    """A workspace with model m: versions 1..3, champion at 1."""
    with loopml.start_run():
        for value in range(1, 4):
            loopml.log_model(Constant(value), name="m", input_example=EXAMPLE)
    loopml.set_alias("m", "champion", 1)
    return ws


def _create(ws: Workspace, model: str = "m@champion", name: str = "d") -> Deployment:
    return deployments.create(ws, name, model, host="127.0.0.1", port=8080)


def _champion(ws: Workspace) -> int:
    return models.resolve(ws, "models:/m@champion").version


def _kinds(ws: Workspace, name: str = "d") -> list[str]:
    return [event.kind for event in deployments.history(ws, name)]


def _refused(
    ws: Workspace,
    error: type[Exception],
    says: str,
    verb: Callable[..., object],
    *args: object,
    **kwargs: object,
) -> None:
    """Assert `verb` raises `error` saying `says`, and leaves deployment d as it was."""
    before = deployments.get(ws, "d")
    with pytest.raises(error, match=says):
        verb(ws, *args, **kwargs)
    assert deployments.get(ws, "d") == before


# --- create, get, list, delete -----------------------------------------------------------


def test_create_records_the_version_it_serves_and_the_alias_it_moves(reg: Workspace) -> None:
    made = _create(reg)
    assert made.routing == Routing("single", "m/1")
    assert (made.revision, made.alias, made.host, made.port) == (1, "champion", "127.0.0.1", 8080)
    assert deployments.get(reg, "d") == made
    [event] = deployments.history(reg, "d")
    assert (event.kind, event.revision, event.routing) == ("created", 1, made.routing)
    assert "m@champion" in event.reason
    by_number = _create(reg, "m/2", name="pinned")
    assert (by_number.routing.stable, by_number.alias) == ("m/2", None)


def test_create_refuses_a_taken_name_and_unknown_or_unregistered_models(reg: Workspace) -> None:
    _create(reg)
    with pytest.raises(AlreadyExists, match="'d' exists"):
        _create(reg, "m/2")
    assert deployments.get(reg, "d").routing.stable == "m/1"
    unknown = {"nosuch@champion": "'nosuch'", "m/9": "no version 9", "m@nope": "'nope'"}
    for model, named in unknown.items():
        with pytest.raises(NotFound, match=named):
            _create(reg, model, name="e")
    with loopml.start_run():
        logged = loopml.log_model(Constant(7.0), input_example=EXAMPLE)
    assert logged.uri.startswith("runs:/")
    with pytest.raises(InvalidInput, match="register it first"):
        _create(reg, logged.uri, name="e")
    assert [d.name for d in deployments.list_all(reg)] == ["d"]


def test_create_refuses_a_bad_name_or_port(sqlite_ws: Workspace) -> None:
    for name in ["", "bad name", "-lead", "x" * 201, "a/b", None]:
        with pytest.raises(InvalidInput, match="deployment name"):
            _create(sqlite_ws, name=name)  # type: ignore[arg-type]
    for port in [0, -1, 65536, True, "8080", 80.0]:
        with pytest.raises(InvalidInput, match=r"port must be a whole number within 1\.\.65535"):
            deployments.create(sqlite_ws, "d", "m/1", host="h", port=port)  # type: ignore[arg-type]
    assert deployments.list_all(sqlite_ws) == []


def test_get_names_the_deployments_there_are_and_list_all_sorts_them(reg: Workspace) -> None:
    with pytest.raises(NotFound, match=r"no deployment 'd'; deployments: none yet"):
        deployments.get(reg, "d")
    for name in ("zeta", "alpha", "mid"):
        _create(reg, name=name)
    with pytest.raises(NotFound, match="no deployment 'd'; deployments: alpha, mid, zeta"):
        deployments.get(reg, "d")
    assert [d.name for d in deployments.list_all(reg)] == ["alpha", "mid", "zeta"]


def test_delete_forgets_the_deployment_and_its_history(reg: Workspace) -> None:
    _create(reg)
    _create(reg, name="kept")
    strategies.canary(reg, "d", "m/2")
    deployments.delete_deployment(reg, "d")
    with pytest.raises(NotFound):
        deployments.history(reg, "d")
    assert [d.name for d in deployments.list_all(reg)] == ["kept"]
    again = _create(reg, "m/3")
    assert again.revision == 1
    assert _kinds(reg) == ["created"]
    assert _kinds(reg, "kept") == ["created"]


# --- canary ------------------------------------------------------------------------------


def test_canary_sends_the_first_step_and_stores_the_plan(reg: Workspace) -> None:
    _create(reg)
    started = strategies.canary(
        reg,
        "d",
        "m/2",
        steps=(5, 50, 100),
        interval_s=90.0,
        max_error_rate=0.02,
        max_p99_ms=250.0,
        min_metrics={"accuracy": 0.8},
        max_metrics={"rmse": 3.0},
        min_requests=20,
    )
    routing = started.routing
    assert (routing.strategy, routing.stable, routing.candidate) == ("canary", "m/1", "m/2")
    assert routing.weight == 5
    plan = routing.rollout
    assert plan is not None
    assert (plan.steps, plan.interval_s, plan.step, plan.min_requests) == ((5, 50, 100), 90, 0, 20)
    assert (plan.max_error_rate, plan.max_p99_ms) == (0.02, 250.0)
    assert (plan.min_metrics, plan.max_metrics) == ({"accuracy": 0.8}, {"rmse": 3.0})
    assert plan.step_started_at > 0
    stored = deployments.get(reg, "d")
    assert stored.routing == routing
    assert Routing.from_dict(json.loads(json.dumps(routing.to_dict()))) == routing
    assert stored.revision == 2
    assert _kinds(reg) == ["created", "canary"]


def test_canary_refusals_leave_the_deployment_as_it_was(reg: Workspace) -> None:
    _create(reg)
    _refused(reg, InvalidInput, "m/1 already serves", strategies.canary, "d", "m@champion")
    bad_steps = {
        (50, 25, 100): "rise strictly",
        (10, 10, 100): "rise strictly",
        (0, 100): "rise strictly",
        (50, 150): "rise strictly",
        (10, 50): "last canary step must be 100",
        (10, 50.5, 100): "whole percentages",
        (True, 100): "whole percentages",
        (): "whole percentages",
    }
    for steps, says in bad_steps.items():
        _refused(reg, InvalidInput, says, strategies.canary, "d", "m/2", steps=steps)
    _refused(
        reg,
        InvalidInput,
        "'f1' is not one of accuracy, error_rate, mae, rmse",
        strategies.canary,
        "d",
        "m/2",
        min_metrics={"f1": 0.9},
    )
    _refused(reg, InvalidInput, "interval", strategies.canary, "d", "m/2", interval_s=0)
    strategies.canary(reg, "d", "m/2")
    _refused(
        reg,
        InvalidState,
        r"'d' is busy.*promote or roll back first",
        strategies.canary,
        "d",
        "m/3",
    )
    for verb in (strategies.bluegreen, strategies.shadow):
        _refused(reg, InvalidState, "is busy", verb, "d", "m/3")


# --- blue-green, promote, rollback -------------------------------------------------------


def test_switch_then_rollback_moves_traffic_and_the_alias_both_ways(reg: Workspace) -> None:
    _create(reg)
    preview = strategies.bluegreen(reg, "d", "m/3").routing
    assert (preview.strategy, preview.stable, preview.candidate) == ("bluegreen", "m/1", "m/3")
    assert _champion(reg) == 1
    switched = strategies.switch(reg, "d")
    assert switched.routing == Routing("single", "m/3", previous="m/1")
    assert _champion(reg) == 3
    back = strategies.rollback(reg, "d")
    assert back.routing == Routing("single", "m/1")
    assert _champion(reg) == 1
    assert _kinds(reg) == ["created", "bluegreen", "switched", "rolled_back"]
    _refused(reg, InvalidState, "'d' has nothing to roll back to", strategies.rollback, "d")


def test_a_rolled_back_candidate_keeps_the_way_back_past_the_last_switch(reg: Workspace) -> None:
    _create(reg)
    strategies.bluegreen(reg, "d", "m/3")
    strategies.switch(reg, "d")  # m/3 active; a rollback returns to m/1
    strategies.canary(reg, "d", "m/2")
    assert strategies.rollback(reg, "d").routing == Routing("single", "m/3", previous="m/1")
    assert strategies.rollback(reg, "d").routing == Routing("single", "m/1")
    assert _champion(reg) == 1


def test_switch_rollback_and_promote_refuse_when_there_is_nothing_to_act_on(
    reg: Workspace,
) -> None:
    _create(reg)
    _refused(reg, InvalidState, "nothing to roll back to", strategies.rollback, "d")
    _refused(reg, InvalidState, "no candidate to promote", strategies.promote, "d")
    _refused(reg, InvalidState, "no preview to switch to", strategies.switch, "d")
    strategies.canary(reg, "d", "m/2")
    _refused(reg, InvalidState, "loopml deploy bluegreen", strategies.switch, "d")
    assert _kinds(reg) == ["created", "canary"]


def test_rollback_of_a_candidate_keeps_the_stable_version_and_alias(reg: Workspace) -> None:
    _create(reg)
    for start in (strategies.canary, strategies.shadow, strategies.bluegreen):
        start(reg, "d", "m/2")
        back = strategies.rollback(reg, "d")
        assert back.routing == Routing("single", "m/1")
        assert _champion(reg) == 1
    assert _kinds(reg)[-2:] == ["bluegreen", "rolled_back"]


def test_shadow_then_promote_moves_the_alias(reg: Workspace) -> None:
    _create(reg)
    shadowed = strategies.shadow(reg, "d", "m/3", report_s=10.0).routing
    assert (shadowed.strategy, shadowed.candidate, shadowed.report_s) == ("shadow", "m/3", 10.0)
    promoted = strategies.promote(reg, "d", reason="shadow agreed", details={"agreement": 1.0})
    assert promoted.routing == Routing("single", "m/3", previous="m/1")
    assert _champion(reg) == 3
    last = deployments.history(reg, "d")[-1]
    assert (last.kind, last.reason, last.details) == (
        "promoted",
        "shadow agreed",
        {"agreement": 1.0},
    )


def test_promote_leaves_an_alias_it_cannot_move_safely(
    reg: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    _create(reg)
    strategies.canary(reg, "d", "m/2")
    loopml.set_alias("m", "champion", 3)  # another writer moved it meanwhile
    with caplog.at_level(logging.WARNING, logger="loopml.deploy"):
        promoted = strategies.promote(reg, "d")
    assert promoted.routing == Routing("single", "m/2", previous="m/1")
    assert _champion(reg) == 3
    assert "m@champion not moved" in caplog.text
    loopml.log_model(Constant(0.0), name="other", input_example=EXAMPLE)
    strategies.canary(reg, "d", "other/1")  # a different model: m@champion is not its alias
    assert strategies.promote(reg, "d").routing.stable == "other/1"
    assert _champion(reg) == 3


# --- A/B ---------------------------------------------------------------------------------


def test_ab_splits_traffic_sticky_by_a_request_key(reg: Workspace) -> None:
    _create(reg)
    _refused(reg, InvalidInput, "already serves", strategies.ab, "d", "m@champion")
    _refused(reg, InvalidInput, "arm a must be the version", strategies.ab, "d", "m/3", a="m/2")
    for sticky in ["cookie:id", "header:", "header:a b", "x-user-id"]:
        _refused(
            reg,
            InvalidInput,
            "header:NAME or field:NAME",
            strategies.ab,
            "d",
            "m/2",
            a="m/1",
            sticky=sticky,
        )
    routing = strategies.ab(
        reg, "d", "m/2", a="m@champion", split=20.0, sticky="header:x-user-id", report_s=5.0
    ).routing
    assert (routing.strategy, routing.stable, routing.candidate) == ("ab", "m/1", "m/2")
    assert (routing.weight, routing.sticky, routing.report_s) == (20.0, "header:x-user-id", 5.0)
    assert routing.describe() == "A/B: a m/1 80%, b m/2 20%, sticky by header:x-user-id"
    assert deployments.get(reg, "d").routing == routing


def test_promote_of_an_ab_test_makes_arm_b_stable(reg: Workspace) -> None:
    _create(reg)
    strategies.ab(reg, "d", "m/2", sticky="field:user")
    promoted = strategies.promote(reg, "d")
    assert promoted.routing == Routing("single", "m/2", previous="m/1")
    assert _champion(reg) == 2


# --- compare-and-set and history ---------------------------------------------------------


def test_a_change_from_a_stale_read_is_refused_and_the_first_stands(reg: Workspace) -> None:
    stale = _create(reg)
    first = Routing("single", "m/2", previous="m/1")
    deployments.change(reg, stale, first, kind="first")
    with pytest.raises(InvalidState, match="no longer at revision 1"):
        deployments.change(reg, stale, Routing("single", "m/3"), kind="second")
    stored = deployments.get(reg, "d")
    assert (stored.routing, stored.revision) == (first, 2)
    assert _kinds(reg) == ["created", "first"]


def test_every_change_adds_one_event_and_history_keeps_order(reg: Workspace) -> None:
    current = _create(reg)
    for version in (2, 3):
        current = deployments.change(
            reg,
            current,
            Routing("single", f"m/{version}"),
            kind=f"to{version}",
            reason=f"now {version}",
            details={"version": version},
        )
        assert len(deployments.history(reg, "d")) == version
    deployments.record(reg, current, "analysis", {"verdict": "wait"}, "waiting")
    events = deployments.history(reg, "d")
    assert [e.kind for e in events] == ["created", "to2", "to3", "analysis"]
    assert [e.revision for e in events] == [1, 2, 3, 3]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert (events[2].details, events[2].reason) == ({"version": 3}, "now 3")
    assert events[2].routing == Routing("single", "m/3") == current.routing
    assert deployments.get(reg, "d").revision == 3
    assert [e.kind for e in deployments.history(reg, "d", limit=2)] == ["to3", "analysis"]


def test_deployment_and_event_dicts_are_json(reg: Workspace) -> None:
    _create(reg)
    made = strategies.canary(reg, "d", "m/2", min_metrics={"accuracy": 0.9})
    data = json.loads(json.dumps(made.to_dict(), allow_nan=False))
    assert (data["name"], data["revision"], data["alias"]) == ("d", 2, "champion")
    assert data["routing"]["rollout"]["steps"] == [10, 25, 50, 100]
    assert data["describe"].startswith("canary m/2 at 10% (step 1 of 4")
    history = deployments.history(reg, "d")
    events = [json.loads(json.dumps(e.to_dict(), allow_nan=False)) for e in history]
    assert [e["kind"] for e in events] == ["created", "canary"]
    assert events[1]["routing"] == data["routing"]
    assert Routing.from_dict(events[1]["routing"]) == made.routing


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"min_metrics": {"error_rate": 0.05}}, "error_rate is lower-is-better"),
        ({"min_metrics": {"rmse": 1.0}}, "rmse is lower-is-better"),
        ({"max_metrics": {"accuracy": 0.5}}, "accuracy is higher-is-better"),
        ({"min_metrics": {"accuracy": 2.0}}, "share within 0..1"),
        ({"max_metrics": {"mae": -1.0}}, "0 or more"),
    ],
)
def test_live_metric_bounds_must_point_the_right_way(bounds: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Rollout(steps=(50, 100), interval_s=60.0, **bounds)
