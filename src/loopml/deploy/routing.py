"""Routing: which model versions a deployment serves, and how its traffic is split.

A routing is plain data, stored as JSON with the deployment. Strategies:

- `single`: every request goes to `stable`.
- `canary`: `weight` percent to `candidate`, the rest to `stable`; `rollout` holds the plan
  (steps, interval, limits) and how far it has got.
- `bluegreen`: `stable` is active; `candidate` is the preview, reached under `/preview/`.
- `ab`: `weight` percent to arm b (`candidate`), the rest to arm a (`stable`); with `sticky`
  (`header:NAME` or `field:NAME`) a request key always lands on the same arm.
- `shadow`: `stable` answers; `candidate` gets a copy whose answers are logged and compared.

`previous` is the version active before the last switch or promotion: what a rollback returns to.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from loopml.errors import InvalidInput

STRATEGIES = ("single", "canary", "bluegreen", "ab", "shadow")
LIVE_METRICS = {"accuracy": True, "error_rate": False, "mae": False, "rmse": False}
_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}/[1-9][0-9]{0,9}")
_STICKY = re.compile(r"(header|field):[A-Za-z0-9_.-]{1,200}")


@dataclass(frozen=True)
class Rollout:
    """A canary plan, and where it stands: traffic steps, each judged over `interval_s`."""

    steps: tuple[int, ...]
    interval_s: float
    max_error_rate: float = 0.01
    max_p99_ms: float | None = None
    min_metrics: dict[str, float] = field(default_factory=dict)  # accuracy >= 0.85
    max_metrics: dict[str, float] = field(default_factory=dict)  # rmse <= 3.0
    min_requests: int = 50
    step: int = 0  # index into `steps`
    step_started_at: int = 0  # ms since the epoch

    def __post_init__(self) -> None:
        steps = self.steps
        if not steps or any(isinstance(s, bool) or not isinstance(s, int) for s in steps):
            raise InvalidInput(
                f"canary steps are whole percentages, e.g. 10,25,50,100; not {steps}"
            )
        if any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
            raise InvalidInput(
                f"canary steps must rise strictly within 1..100 (e.g. 10,25,50,100), not "
                f"{','.join(map(str, steps))}"
            )
        if steps[-1] != 100:
            raise InvalidInput(
                f"the last canary step must be 100 (the candidate takes all traffic before it is "
                f"promoted), not {steps[-1]}; add 100 to --steps"
            )
        _positive("interval", self.interval_s)
        if not _number(self.max_error_rate) or not 0 <= self.max_error_rate <= 1:
            raise InvalidInput(f"max error rate is within 0..1, not {self.max_error_rate!r}")
        if self.max_p99_ms is not None:
            _positive("max p99 (ms)", self.max_p99_ms)
        _check_bounds(self.min_metrics, self.max_metrics)
        if isinstance(self.min_requests, bool) or not isinstance(self.min_requests, int):
            raise InvalidInput(f"min requests is a whole number, not {self.min_requests!r}")
        if self.min_requests < 1:
            raise InvalidInput(f"min requests must be at least 1, not {self.min_requests}")
        if not 0 <= self.step < len(steps):
            raise InvalidInput(f"step {self.step} is outside the plan's {len(steps)} steps")

    @property
    def weight(self) -> int:
        """Return the candidate's share of traffic at the current step, in percent."""
        return self.steps[self.step]

    def with_step(self, step: int, started_at: int) -> Rollout:
        """Return this plan at step `step`, begun at `started_at` (ms)."""
        return replace(self, step=step, step_started_at=started_at)

    @property
    def last(self) -> bool:
        """Return True at the final (100 %) step."""
        return self.step == len(self.steps) - 1


@dataclass(frozen=True)
class Routing:
    """Where a deployment's traffic goes (see the module docstring for each strategy)."""

    strategy: str
    stable: str  # NAME/N
    candidate: str | None = None
    weight: float = 0.0  # percent to the candidate (canary step, A/B split)
    sticky: str | None = None
    previous: str | None = None
    rollout: Rollout | None = None
    report_s: float = 30.0  # A/B results and shadow agreement go to the history this often

    def __post_init__(self) -> None:
        _positive("the report interval", self.report_s)
        if self.strategy not in STRATEGIES:
            raise InvalidInput(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        for role in ("stable", "candidate", "previous"):
            value = getattr(self, role)
            if value is not None and not _VERSION.fullmatch(value):
                raise InvalidInput(f"{role} must name a model version as NAME/N, not {value!r}")
        needs_candidate = self.strategy != "single"
        if needs_candidate != (self.candidate is not None):
            raise InvalidInput(
                f"a {self.strategy} routing {'needs' if needs_candidate else 'has no'} candidate"
            )
        if self.candidate is not None and self.candidate == self.stable:
            raise InvalidInput(
                f"{self.candidate} already serves this deployment; choose another version"
            )
        if not _number(self.weight) or not 0 <= self.weight <= 100:
            raise InvalidInput(f"the weight is a percentage within 0..100, not {self.weight!r}")
        if self.sticky is not None and not _STICKY.fullmatch(self.sticky):
            raise InvalidInput(
                f"sticky takes header:NAME or field:NAME (e.g. header:x-user-id), not "
                f"{self.sticky!r}"
            )
        if (self.rollout is not None) != (self.strategy == "canary"):
            raise InvalidInput("a canary routing, and only one, carries a rollout plan")

    @property
    def versions(self) -> tuple[str, ...]:
        """Return every version this routing serves (stable first)."""
        return (self.stable,) if self.candidate is None else (self.stable, self.candidate)

    def describe(self) -> str:
        """Return one line a person reads: which versions take which traffic."""
        c = self.candidate
        match self.strategy:
            case "canary":
                assert self.rollout is not None
                steps = ",".join(map(str, self.rollout.steps))
                return (
                    f"canary {c} at {_pct(self.weight)} (step {self.rollout.step + 1} of "
                    f"{len(self.rollout.steps)}: {steps}), stable {self.stable}"
                )
            case "bluegreen":
                return f"blue-green: active {self.stable}, preview {c} under /preview/"
            case "ab":
                keyed = f", sticky by {self.sticky}" if self.sticky else ""
                split = f"a {self.stable} {_pct(100 - self.weight)}, b {c} {_pct(self.weight)}"
                return f"A/B: {split}{keyed}"
            case "shadow":
                return f"{self.stable} answers; shadow {c} gets a copy of every request"
        return f"{self.stable} takes all traffic"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Routing:
        """Return the routing `to_dict` described."""
        plan = data.get("rollout")
        rollout = Rollout(**{**plan, "steps": tuple(plan["steps"])}) if plan else None
        return cls(**{**data, "rollout": rollout})

    def with_(self, **changes: Any) -> Routing:
        """Return a copy with `changes` (checked like a new routing)."""
        return replace(self, **changes)


def check_metric(name: str) -> bool:
    """Return whether higher is better for live metric `name`, or raise naming the choices."""
    if name not in LIVE_METRICS:
        raise InvalidInput(
            f"live metric {name!r} is not one of {', '.join(LIVE_METRICS)} (computed from "
            "labelled feedback and responses)"
        )
    return LIVE_METRICS[name]


def _check_bounds(min_metrics: dict[str, float], max_metrics: dict[str, float]) -> None:
    """Refuse live-metric bounds on unknown metrics, in the wrong direction or out of range."""
    for bounds, floor in ((min_metrics, True), (max_metrics, False)):
        for metric, value in bounds.items():
            if check_metric(metric) != floor:  # a floor on a lower-is-better metric, ...
                option, other = ("--min-metric", "--max-metric")[:: 1 if floor else -1]
                raise InvalidInput(
                    f"{metric} is {'lower' if floor else 'higher'}-is-better: bound it with "
                    f"{other}, not {option}"
                )
            if not _number(value) or value < 0:
                raise InvalidInput(f"the bound of {metric} is a number of 0 or more, not {value!r}")
            if metric in ("accuracy", "error_rate") and value > 1:
                raise InvalidInput(f"{metric} is a share within 0..1, not {value!r}")


def _pct(weight: float) -> str:
    return f"{weight:g}%"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(what: str, value: object) -> None:
    if not _number(value) or value <= 0:  # type: ignore[operator]
        raise InvalidInput(f"{what} must be a number above 0, not {value!r}")
