"""The rollout controller: judges a deployment's live traffic and moves its routing.

A canary step is judged once its interval has passed: with fewer than `min_requests` requests
on the candidate (or, for a live metric, fewer labelled ones) it waits; an error rate, p99 or
live metric past its limit rolls the canary back at once (weight 0, the numbers in the event);
otherwise the next step begins, and after the last (100 %) the candidate is promoted. An A/B
test or a shadow is summarised into the history every interval. Every decision is a
compare-and-set on the stored routing, so a server restarted mid-rollout carries on from the
stored step, and a decision made on a routing someone changed meanwhile is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loopml.core.store import now_ms
from loopml.core.workspace import Workspace
from loopml.deploy import strategies
from loopml.deploy.deployments import Deployment, get, record
from loopml.deploy.routing import Rollout
from loopml.deploy.significance import Comparison, compare_rates, compare_values
from loopml.deploy.traffic import TrafficStats, Window
from loopml.errors import InvalidState

log = logging.getLogger("loopml.deploy")


@dataclass(frozen=True)
class Analysis:
    """The verdict on one canary step: pass, fail or wait, with the numbers behind it."""

    verdict: str  # "pass" | "fail" | "wait"
    reason: str
    candidate: dict[str, Any]
    stable: dict[str, Any]
    failures: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "candidate": self.candidate,
            "stable": self.stable,
            "failures": list(self.failures),
        }


def analyse(rollout: Rollout, candidate: Window, stable: Window) -> Analysis:
    """Judge the candidate's traffic over one step against the plan's limits."""
    mine, theirs = candidate.summary(), stable.summary()
    for metric in {**rollout.min_metrics, **rollout.max_metrics}:
        mine[metric], theirs[metric] = candidate.metric(metric), stable.metric(metric)
    at = f"at {rollout.weight}%"
    if candidate.requests < rollout.min_requests:
        reason = (
            f"waiting {at}: {candidate.requests} of the {rollout.min_requests} requests a "
            "decision needs"
        )
        return Analysis("wait", reason, mine, theirs)
    failures = []
    if candidate.error_rate > rollout.max_error_rate:
        failures.append(f"error rate {candidate.error_rate:.4f} > {rollout.max_error_rate:g}")
    # Refusals (4xx) are the caller's doing, unless the candidate refuses what the stable
    # version takes: a changed signature. Judged against the stable's rate, with the same margin.
    refused_limit = stable.refused_rate + rollout.max_error_rate
    if candidate.refused_rate > refused_limit:
        failures.append(
            f"refused (4xx) rate {candidate.refused_rate:.4f} > the stable version's "
            f"{stable.refused_rate:.4f} + {rollout.max_error_rate:g}"
        )
    p99 = candidate.p99_ms()
    if rollout.max_p99_ms is not None and p99 is not None and p99 > rollout.max_p99_ms:
        failures.append(f"p99 {p99:.1f} ms > {rollout.max_p99_ms:g} ms")
    bounds = [(m, v, True) for m, v in rollout.min_metrics.items()]
    bounds += [(m, v, False) for m, v in rollout.max_metrics.items()]
    waiting = ""  # a metric short of labels waits, unless another limit has failed already
    for metric, bound, is_min in bounds:
        if metric != "error_rate" and candidate.labelled < rollout.min_requests:
            waiting = waiting or (
                f"waiting {at}: {candidate.labelled} of the {rollout.min_requests} labelled "
                f"requests {metric} needs (labels come through POST /feedback)"
            )
            continue
        value = candidate.metric(metric)
        if value is None:
            failures.append(f"{metric} cannot be computed from the labels received")
        elif (value < bound) if is_min else (value > bound):
            failures.append(f"{metric} {value:.4f} {'<' if is_min else '>'} {bound:g}")
    if failures:
        reason = f"failed {at}: " + "; ".join(failures)
        return Analysis("fail", reason, mine, theirs, tuple(failures))
    if waiting:
        return Analysis("wait", waiting, mine, theirs)
    return Analysis("pass", f"passed {at} over {candidate.requests} requests", mine, theirs)


def compare_arms(a: Window, b: Window) -> dict[str, Any]:
    """Return the A/B test's comparisons (error rate, latency, and accuracy once labelled)."""
    comparisons: list[Comparison] = [
        compare_rates(
            "error_rate", a.errors, a.requests, b.errors, b.requests, higher_is_better=False
        ),
        compare_values("latency_ms", a.latencies_ms, b.latencies_ms, higher_is_better=False),
    ]
    if a.labelled or b.labelled:
        right_a, right_b = sum(a.correct()), sum(b.correct())
        comparisons.insert(0, compare_rates("accuracy", right_a, a.labelled, right_b, b.labelled))
    primary = comparisons[0]
    return {
        "a": a.summary(),
        "b": b.summary(),
        "comparisons": [c.to_dict() for c in comparisons],
        "primary": primary.metric,
        "winner": primary.winner,
        "reason": primary.reason,
    }


@dataclass
class RolloutController:
    """Acts on one deployment's routing from its live traffic; `tick` does one round."""

    ws: Workspace
    name: str
    traffic: TrafficStats
    shadow_counts: Callable[[], dict[str, Any]] | None = None
    clock: Callable[[], int] = now_ms
    _reported: dict[tuple[int, str], int] = field(default_factory=dict)
    started_at: int = 0  # when this controller began watching (set from its clock)

    def __post_init__(self) -> None:
        self.started_at = self.started_at or self.clock()

    def tick(self) -> Deployment:
        """Judge the deployment's traffic once and act on it; return the deployment as stored."""
        deployment = get(self.ws, self.name)
        routing = deployment.routing
        try:
            if routing.rollout is not None:
                return self._judge_canary(deployment, routing.rollout)
            if routing.strategy == "ab" and self._due(deployment, "ab_result"):
                a, b = (self._window(v, deployment) for v in routing.versions)
                result = compare_arms(a, b)
                record(self.ws, deployment, "ab_result", result, result["reason"])
            shadowing = routing.strategy == "shadow" and self.shadow_counts is not None
            if shadowing and self._due(deployment, "shadow_result"):
                assert self.shadow_counts is not None
                counts = self.shadow_counts()
                record(self.ws, deployment, "shadow_result", counts, _agreement(counts))
        except InvalidState as exc:  # someone changed the routing meanwhile: judge it next round
            log.info("deployment %s: %s", self.name, exc)
            return get(self.ws, self.name)
        return deployment

    def _judge_canary(self, deployment: Deployment, rollout: Rollout) -> Deployment:
        # A restarted server saw none of the step's earlier traffic: a full interval of its own.
        since = max(rollout.step_started_at, self.started_at)
        if self.clock() - since < rollout.interval_s * 1000:
            return deployment
        stable, candidate = deployment.routing.versions
        verdict = analyse(
            rollout, self.traffic.window(candidate, since), self.traffic.window(stable, since)
        )
        details = verdict.to_dict()
        if verdict.verdict == "fail":
            return strategies.rollback(
                self.ws, self.name, reason=verdict.reason, details=details, judged=deployment
            )
        if verdict.verdict == "wait":
            if self._due(deployment, "analysis"):
                record(self.ws, deployment, "analysis", details, verdict.reason)
            return deployment
        if rollout.last:
            return strategies.promote(
                self.ws, self.name, reason=verdict.reason, details=details, judged=deployment
            )
        return strategies.advance(self.ws, deployment, details, now=self.clock())

    def _window(self, version: str, deployment: Deployment) -> Window:
        return self.traffic.window(version, deployment.updated_at)  # since the routing began

    def _due(self, deployment: Deployment, kind: str) -> bool:
        """Return True once per report interval per routing revision (and record it)."""
        key = (deployment.revision, kind)
        now = self.clock()
        every_ms = deployment.routing.report_s * 1000
        since = self._reported.get(key, deployment.updated_at)
        if now - since < every_ms:
            return False
        self._reported = {k: v for k, v in self._reported.items() if k[0] == deployment.revision}
        self._reported[key] = now
        return True


def _agreement(counts: dict[str, Any]) -> str:
    compared, failed = counts.get("compared", 0), counts.get("shadow_failed", 0)
    if not compared:
        return (
            f"no requests compared yet; the shadow failed on {failed}"
            if failed
            else ("no requests compared yet")
        )
    return f"shadow agreed on {counts['agreed']} of {compared} requests ({counts['agreement']:.1%})"
