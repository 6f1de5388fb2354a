"""Live traffic, canary analysis and the rollout controller that acts on them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.core.workspace import Workspace
from loopml.deploy import deployments, strategies
from loopml.deploy.deployments import Deployment
from loopml.deploy.rollout import RolloutController, analyse, compare_arms
from loopml.deploy.routing import Rollout, Routing
from loopml.deploy.traffic import TrafficStats, Window
from loopml.registry import models


class Constant:
    """A model that answers one number, whatever it is asked."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, data: pd.DataFrame) -> list[float]:
        return [self.value] * len(data)


class Clock:
    """A controller's clock in ms that moves only when told; `then` runs once at the next read."""

    def __init__(self, now: int) -> None:
        self.now = now
        self.then: Callable[[], object] | None = None

    def __call__(self) -> int:
        if self.then is not None:
            hook, self.then = self.then, None
            hook()
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


def _serve(
    traffic: TrafficStats,
    version: str,
    at_ms: int,
    *,
    ok: int = 0,
    failed: int = 0,
    latency_ms: float = 10.0,
    right: int | None = None,
) -> None:
    """Record `ok` answers and `failed` 5xx; with `right`, label that many answers correct."""
    for i in range(ok + failed):
        request_id = uuid.uuid4().hex
        status = 200 if i < ok else 500
        traffic.record(
            version,
            request_id=request_id,
            status=status,
            latency_ms=latency_ms,
            prediction=1,
            at_ms=at_ms,
        )
        if right is not None and status == 200:
            assert traffic.feedback(request_id, int(i < right), at_ms=at_ms)


def _window(
    requests: int = 100,
    errors: int = 0,
    latency_ms: float = 10.0,
    predictions: Sequence[Any] = (),
    labels: Sequence[Any] = (),
) -> Window:
    """Return a window of `requests` answers, each taking `latency_ms`."""
    latencies = (latency_ms,) * requests
    return Window("m/2", requests, errors, latencies, tuple(predictions), tuple(labels))


# --- traffic -----------------------------------------------------------------------------


def test_a_window_counts_errors_latency_and_live_metrics() -> None:
    traffic = TrafficStats()
    for i in range(100):
        status = (500, 503, 400, 200)[i] if i < 4 else 200
        prediction = [1.0, 2.0, 4.0][i - 4] if 4 <= i < 7 else None
        traffic.record(
            "m/2",
            request_id=f"r{i}",
            status=status,
            latency_ms=float(i + 1),
            prediction=prediction,
            at_ms=1_000,
        )
    for i, label in zip((4, 5, 6), (1.0, 3.0, 2.0), strict=True):
        assert traffic.feedback(f"r{i}", label, at_ms=1_000)
    window = traffic.window("m/2", 0)
    assert (window.requests, window.errors, window.error_rate) == (100, 2, 0.02)
    assert window.p50_ms() == pytest.approx(50.5)
    assert window.p99_ms() == pytest.approx(float(np.percentile(range(1, 101), 99)))
    assert window.labelled == 3
    assert window.correct() == [True, False, False]
    assert window.metric("accuracy") == pytest.approx(1 / 3)
    assert window.metric("mae") == pytest.approx(1.0)
    assert window.metric("rmse") == pytest.approx((5 / 3) ** 0.5)
    assert window.metric("error_rate") == 0.02
    summary = window.summary()
    assert (summary["requests"], summary["labelled"], summary["p50_ms"]) == (100, 3, 50.5)
    json.dumps(summary, allow_nan=False)
    empty = traffic.window("m/9", 0)
    assert (empty.error_rate, empty.p99_ms(), empty.metric("accuracy")) == (0.0, None, None)
    assert empty.metric("error_rate") is None


def test_feedback_matches_only_recent_one_row_answers() -> None:
    traffic = TrafficStats()
    traffic.record("m/1", request_id="ok", status=200, latency_ms=1, prediction="a", at_ms=5)
    traffic.record("m/1", request_id="many", status=200, latency_ms=1, prediction=None, at_ms=5)
    traffic.record("m/1", request_id="bad", status=500, latency_ms=1, prediction="a", at_ms=5)
    assert not traffic.feedback("unknown", "a", at_ms=6)
    assert not traffic.feedback("many", "a", at_ms=6)
    assert not traffic.feedback("bad", "a", at_ms=6)
    assert traffic.feedback("ok", "a", at_ms=6)
    assert not traffic.feedback("ok", "b", at_ms=7)  # once only
    window = traffic.window("m/1", 0)
    assert (window.labels, window.metric("accuracy"), window.metric("mae")) == (("a",), 1.0, None)


def test_a_window_holds_only_traffic_since_its_start() -> None:
    traffic = TrafficStats()
    for at in (100, 200, 300):
        traffic.record(
            "m/1", request_id=f"r{at}", status=200, latency_ms=at, prediction=1, at_ms=at
        )
        traffic.feedback(f"r{at}", 1, at_ms=at + 50)
    window = traffic.window("m/1", 200)
    assert (window.requests, window.latencies_ms) == (2, (200.0, 300.0))
    assert window.labelled == 2  # labelled at 250 and 350
    assert traffic.window("m/1", 301).requests == 0
    assert traffic.window("m/2", 0).requests == 0


def test_memory_is_bounded_by_dropping_the_oldest() -> None:
    traffic = TrafficStats(max_requests=3, max_pending=2)
    for i in range(5):
        traffic.record("m/1", request_id=f"r{i}", status=200, latency_ms=i, prediction=i, at_ms=i)
    assert traffic.window("m/1", 0).latencies_ms == (2.0, 3.0, 4.0)
    assert not traffic.feedback("r2", 2, at_ms=9)  # evicted: only r3 and r4 await labels
    assert traffic.feedback("r3", 3, at_ms=9)
    assert traffic.feedback("r4", 4, at_ms=9)


# --- analysis ----------------------------------------------------------------------------


def _plan(**kw: Any) -> Rollout:
    return Rollout(steps=(10, 50, 100), interval_s=60.0, min_requests=50, **kw)


def test_analysis_waits_for_enough_requests() -> None:
    verdict = analyse(_plan(), _window(requests=49, errors=49), _window())
    assert verdict.verdict == "wait"
    assert "49 of the 50 requests" in verdict.reason
    assert verdict.failures == ()


def test_analysis_lists_every_failure_with_its_numbers() -> None:
    plan = _plan(max_p99_ms=100.0, min_metrics={"accuracy": 0.9}, max_metrics={"rmse": 1.0})
    labels = (1.0,) * 30 + (4.0,) * 30
    candidate = _window(100, errors=5, latency_ms=400, predictions=[1.0] * 60, labels=labels)
    verdict = analyse(plan, candidate, _window())
    assert verdict.verdict == "fail"
    assert verdict.failures == (
        "error rate 0.0500 > 0.01",
        "p99 400.0 ms > 100 ms",
        "accuracy 0.5000 < 0.9",
        f"rmse {np.sqrt(4.5):.4f} > 1",
    )
    assert verdict.reason == "failed at 10%: " + "; ".join(verdict.failures)
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert (data["candidate"]["accuracy"], data["stable"]["requests"]) == (0.5, 100)
    assert data["candidate"]["rmse"] == pytest.approx(np.sqrt(4.5))


@pytest.mark.parametrize(
    ("plan", "failure"),
    [
        (_plan(), "error rate 0.0500 > 0.01"),
        (_plan(max_error_rate=0.2, max_p99_ms=50.0), "p99 400.0 ms > 50 ms"),
    ],
)
def test_analysis_fails_on_error_rate_or_latency_alone(plan: Rollout, failure: str) -> None:
    verdict = analyse(plan, _window(100, errors=5, latency_ms=400), _window())
    assert (verdict.verdict, verdict.failures) == ("fail", (failure,))


def test_analysis_waits_for_labels_a_live_metric_needs() -> None:
    plan = _plan(min_metrics={"accuracy": 0.9})
    candidate = _window(100, predictions=[1] * 10, labels=[1] * 10)
    verdict = analyse(plan, candidate, _window())
    assert verdict.verdict == "wait"
    assert "10 of the 50 labelled requests accuracy needs" in verdict.reason
    assert verdict.candidate["accuracy"] == 1.0


def test_analysis_fails_on_errors_even_while_labels_are_missing() -> None:
    # Failed requests are never labelled: a candidate failing them all must still be caught.
    plan = _plan(min_metrics={"accuracy": 0.9})
    verdict = analyse(plan, _window(100, errors=100), _window())
    assert verdict.verdict == "fail"
    assert "error rate 1.0000 > 0.01" in verdict.failures


def test_analysis_passes_within_every_limit() -> None:
    plan = _plan(max_p99_ms=100.0, min_metrics={"accuracy": 0.9}, max_metrics={"mae": 0.5})
    candidate = _window(80, latency_ms=20, predictions=[1.0] * 60, labels=[1.0] * 60)
    verdict = analyse(plan, candidate, _window())
    assert (verdict.verdict, verdict.failures) == ("pass", ())
    assert verdict.reason == "passed at 10% over 80 requests"
    assert (verdict.candidate["accuracy"], verdict.candidate["mae"]) == (1.0, 0.0)


def test_compare_arms_reports_every_comparison_and_the_primary_one() -> None:
    result = compare_arms(_window(100, errors=1), _window(100, errors=2))
    assert [c["metric"] for c in result["comparisons"]] == ["error_rate", "latency_ms"]
    assert (result["primary"], result["winner"]) == ("error_rate", None)
    assert set(result) == {"a", "b", "comparisons", "primary", "winner", "reason"}
    a = _window(100, predictions=[1] * 100, labels=[1] * 50 + [0] * 50)
    b = _window(100, predictions=[1] * 100, labels=[1] * 98 + [0] * 2)
    labelled = json.loads(json.dumps(compare_arms(a, b), allow_nan=False))
    assert [c["metric"] for c in labelled["comparisons"]] == [
        "accuracy",
        "error_rate",
        "latency_ms",
    ]
    assert (labelled["primary"], labelled["winner"]) == ("accuracy", "b")
    assert labelled["reason"] == labelled["comparisons"][0]["reason"]
    assert (labelled["a"]["accuracy"], labelled["b"]["accuracy"]) == (0.5, 0.98)


# --- the controller ----------------------------------------------------------------------


def _register(ws: Workspace) -> Deployment:
    """Register m/1..m/3 (champion at 1) and deploy m@champion as d."""
    example = pd.DataFrame({"x": [1.0, 2.0]})
    with loopml.start_run():
        for value in range(1, 4):
            loopml.log_model(Constant(value), name="m", input_example=example)
    loopml.set_alias("m", "champion", 1)
    return deployments.create(ws, "d", "m@champion", host="127.0.0.1", port=8080)


@pytest.fixture
def reg(sqlite_ws: Workspace) -> Workspace:
    _register(sqlite_ws)
    return sqlite_ws


def _canary(ws: Workspace, model: str = "m/2", **plan: Any) -> tuple[Clock, TrafficStats]:
    """Start a canary of `model`; return a clock at its start and empty traffic."""
    started = strategies.canary(ws, "d", model, interval_s=60.0, min_requests=20, **plan)
    assert started.routing.rollout is not None
    return Clock(started.routing.rollout.step_started_at), TrafficStats()


def _champion(ws: Workspace) -> int:
    return models.resolve(ws, "models:/m@champion").version


def _events(ws: Workspace) -> list[deployments.DeploymentEvent]:
    return deployments.history(ws, "d")


def test_a_canary_steps_up_and_is_promoted_on_good_traffic(ws: Workspace) -> None:
    _register(ws)
    clock, traffic = _canary(ws, steps=(50, 100))
    control = RolloutController(ws, "d", traffic, clock=clock)
    assert control.tick().revision == 2
    clock.advance(59)
    _serve(traffic, "m/2", clock.now, ok=30)
    _serve(traffic, "m/1", clock.now, ok=30)
    assert control.tick().revision == 2  # the interval has not passed
    clock.advance(2)
    stepped = control.tick()
    assert stepped.routing.rollout is not None
    assert (stepped.routing.rollout.step, stepped.routing.weight) == (1, 100)
    assert stepped.routing.rollout.step_started_at == clock.now  # the step starts on its clock
    step = _events(ws)[-1]
    assert (step.kind, step.details["verdict"]) == ("step", "pass")
    assert step.details["candidate"]["requests"] == 30
    assert "at 50%: m/2 now takes 100%" in step.reason
    clock.advance(61)
    _serve(traffic, "m/2", clock.now, ok=30)
    promoted = control.tick()
    assert promoted.routing == Routing("single", "m/2", previous="m/1")
    assert _champion(ws) == 2
    assert [e.kind for e in _events(ws)] == ["created", "canary", "step", "promoted"]
    assert _events(ws)[-1].details["verdict"] == "pass"


def test_bad_traffic_rolls_the_canary_back_with_the_numbers(reg: Workspace) -> None:
    clock, traffic = _canary(reg, max_p99_ms=100.0)
    control = RolloutController(reg, "d", traffic, clock=clock)
    _serve(traffic, "m/2", clock.now, ok=20, failed=10, latency_ms=500)
    clock.advance(61)
    back = control.tick()
    assert back.routing == Routing("single", "m/1")
    assert _champion(reg) == 1
    event = _events(reg)[-1]
    assert event.kind == "rolled_back"
    assert event.details["verdict"] == "fail"
    assert (event.details["candidate"]["requests"], event.details["candidate"]["errors"]) == (
        30,
        10,
    )
    assert event.details["failures"] == ["error rate 0.3333 > 0.01", "p99 500.0 ms > 100 ms"]
    assert event.reason.startswith("failed at 10%: error rate 0.3333")


def test_too_little_traffic_is_reported_once_per_report_interval(reg: Workspace) -> None:
    clock, traffic = _canary(reg)
    _serve(traffic, "m/2", clock.now, ok=5)
    control = RolloutController(reg, "d", traffic, clock=clock)
    reports = []
    for seconds in (61, 0, 10, 25, 1):
        clock.advance(seconds)
        control.tick()
        reports.append(sum(e.kind == "analysis" for e in _events(reg)))
    assert reports == [1, 1, 1, 2, 2]
    analysis = _events(reg)[-1]
    assert (analysis.details["verdict"], analysis.revision) == ("wait", 2)
    assert "5 of the 20 requests" in analysis.reason
    assert deployments.get(reg, "d").routing.rollout.step == 0  # type: ignore[union-attr]


def test_a_new_controller_carries_on_from_the_stored_step(reg: Workspace) -> None:
    clock, traffic = _canary(reg, steps=(10, 50, 100))
    first = RolloutController(reg, "d", traffic, clock=clock)
    clock.advance(61)
    _serve(traffic, "m/2", clock.now, ok=20)
    assert first.tick().routing.weight == 50
    clock.advance(40)  # the server stops 40 s into the 60 s step, and starts again
    restarted = RolloutController(reg, "d", TrafficStats(), clock=clock)
    _serve(restarted.traffic, "m/2", clock.now, ok=20)
    clock.advance(30)  # the step's interval has passed, but not a full one since the restart
    assert restarted.tick().routing.weight == 50
    clock.advance(31)
    routing = restarted.tick().routing
    assert routing.rollout is not None
    assert (routing.rollout.step, routing.weight) == (2, 100)
    assert [e.kind for e in _events(reg)][-2:] == ["step", "step"]


def test_a_step_decided_on_a_stale_read_does_not_undo_a_rollback(reg: Workspace) -> None:
    clock, traffic = _canary(reg)
    _serve(traffic, "m/2", clock.now, ok=20)
    clock.advance(61)
    clock.then = lambda: strategies.rollback(reg, "d")  # a person, after the controller read
    stored = RolloutController(reg, "d", traffic, clock=clock).tick()
    assert stored.routing == Routing("single", "m/1")
    assert [e.kind for e in _events(reg)] == ["created", "canary", "rolled_back"]


def test_a_rollback_decided_on_a_stale_read_does_not_undo_a_promotion(reg: Workspace) -> None:
    clock, traffic = _canary(reg)
    _serve(traffic, "m/2", clock.now, failed=20)
    clock.advance(61)
    clock.then = lambda: strategies.promote(reg, "d")  # a person, after the controller read
    stored = RolloutController(reg, "d", traffic, clock=clock).tick()
    assert stored.routing == Routing("single", "m/2", previous="m/1")
    assert _champion(reg) == 2
    assert [e.kind for e in _events(reg)] == ["created", "canary", "promoted"]


def test_a_promotion_decided_on_a_stale_read_does_not_promote_another_canary(
    reg: Workspace,
) -> None:
    clock, traffic = _canary(reg, steps=(100,))
    _serve(traffic, "m/2", clock.now, ok=20)
    clock.advance(61)

    def person() -> None:
        strategies.rollback(reg, "d")
        strategies.canary(reg, "d", "m/3")

    clock.then = person
    stored = RolloutController(reg, "d", traffic, clock=clock).tick()
    assert (stored.routing.strategy, stored.routing.candidate) == ("canary", "m/3")
    assert _champion(reg) == 1
    assert [e.kind for e in _events(reg)][-2:] == ["rolled_back", "canary"]


def test_an_ab_test_is_summarised_once_per_report_interval(reg: Workspace) -> None:
    started = strategies.ab(reg, "d", "m/2", a="m/1", report_s=30.0)
    clock, traffic = Clock(started.updated_at), TrafficStats()
    _serve(traffic, "m/1", clock.now, ok=100, right=50)
    _serve(traffic, "m/2", clock.now, ok=100, right=95)
    control = RolloutController(reg, "d", traffic, clock=clock)
    control.tick()
    assert [e.kind for e in _events(reg)] == ["created", "ab"]
    clock.advance(31)
    control.tick()
    control.tick()
    results = [e for e in _events(reg) if e.kind == "ab_result"]
    assert len(results) == 1
    details = results[0].details
    metrics = [c["metric"] for c in details["comparisons"]]
    assert metrics == ["accuracy", "error_rate", "latency_ms"]
    assert (details["primary"], details["winner"]) == ("accuracy", "b")
    assert (details["a"]["labelled"], details["b"]["accuracy"]) == (100, 0.95)
    assert results[0].reason.startswith("b is better: accuracy 0.95 for b vs 0.5 for a")
    assert deployments.get(reg, "d").routing.strategy == "ab"


def test_a_shadow_is_summarised_from_its_counts(reg: Workspace) -> None:
    started = strategies.shadow(reg, "d", "m/2", report_s=10.0)
    clock = Clock(started.updated_at)
    counts = {"compared": 40, "agreed": 38, "agreement": 0.95}
    clock.advance(11)
    RolloutController(reg, "d", TrafficStats(), clock=clock).tick()  # nothing to count with
    assert [e.kind for e in _events(reg)] == ["created", "shadow"]
    RolloutController(reg, "d", TrafficStats(), lambda: counts, clock=clock).tick()
    event = _events(reg)[-1]
    assert (event.kind, event.details) == ("shadow_result", counts)
    assert event.reason == "shadow agreed on 38 of 40 requests (95.0%)"
    assert deployments.get(reg, "d").routing.strategy == "shadow"


def test_analysis_fails_a_candidate_that_refuses_what_the_stable_takes() -> None:
    refusing = Window("m/2", 100, 0, (10.0,) * 100, (), (), refused=30)
    stable = Window("m/1", 100, 0, (10.0,) * 100, (), (), refused=2)
    verdict = analyse(_plan(), refusing, stable)
    assert verdict.verdict == "fail"
    assert "refused (4xx) rate 0.3000 > the stable version's 0.0200 + 0.01" in verdict.reason
    # Callers that send bad requests to both alike are not the candidate's fault.
    assert (
        analyse(_plan(), refusing, Window("m/1", 100, 0, (10.0,) * 100, (), (), refused=29)).verdict
        == "pass"
    )
