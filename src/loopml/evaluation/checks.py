"""Gate checks: `Threshold`, `BeatsChampion`, `Fairness`, `LatencyBudget`, and the base of
custom ones. Settings live in `__init__` (scikit-learn's convention) and `get_params` returns
them, so every result records the exact check that produced it.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from loopml.errors import InvalidInput
from loopml.evaluation import metrics
from loopml.evaluation.fairness import METRICS as FAIRNESS_METRICS
from loopml.evaluation.latency import single_row_latency

if TYPE_CHECKING:
    from loopml.evaluation.gates import GateContext


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: the value it measured, the limit it held it to, and why."""

    check: str
    metric: str
    value: float | None
    limit: str
    passed: bool
    message: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        value = self.value if self.value is None or math.isfinite(self.value) else None
        return {
            "check": self.check,
            "metric": self.metric,
            "value": value,
            "limit": self.limit,
            "passed": self.passed,
            "message": self.message,
            "params": self.params,
        }


@runtime_checkable
class GateCheck(Protocol):
    """What a gate needs of a check."""

    def check(self, context: GateContext) -> CheckResult: ...

    def get_params(self) -> dict[str, Any]: ...


class Check:
    """Base of checks: `get_params` reads the settings `__init__` stored under their names.

    Subclass it for a custom check: take settings in `__init__`, store each as an attribute
    of the same name, and return `self.result(...)` from `check(context)`.
    """

    name: ClassVar[str] = "custom"
    sensitive: str | None = None  # a fairness check names the feature it needs scored

    def check(self, context: GateContext) -> CheckResult:
        """Return this check's verdict on the context's candidate."""
        raise NotImplementedError(f"{type(self).__name__} must define check(context)")

    def get_params(self) -> dict[str, Any]:
        """Return the settings this check was made with, by `__init__` parameter name."""
        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        missing = [name for name in names if not hasattr(self, name)]
        if missing:
            raise InvalidInput(
                f"{type(self).__name__} takes {', '.join(missing)} in __init__ but keeps no "
                "attribute of that name; store each setting as self.<name> so the gate can "
                "record it"
            )
        return {name: getattr(self, name) for name in names}

    def result(
        self, metric: str, value: float | None, limit: str, passed: bool, message: str
    ) -> CheckResult:
        """Return a CheckResult of this check, with its settings attached."""
        return CheckResult(self.name, metric, value, limit, passed, message, self.get_params())

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({settings})"


class Threshold(Check):
    """The candidate's metric is at least `min` and at most `max`."""

    name = "threshold"

    def __init__(self, metric: str, min: float | None = None, max: float | None = None) -> None:
        self.metric = _metric_name(metric)
        self.min = _number(min, "min", optional=True)
        self.max = _number(max, "max", optional=True)
        _check_bounds(f"Threshold({metric!r})", self.min, self.max)

    def check(self, context: GateContext) -> CheckResult:
        value = context.evaluation.metric(self.metric)
        return _bounded(self, self.metric, value, self.min, self.max)


class BeatsChampion(Check):
    """The candidate beats the version under `alias` on `metric` by at least `min_delta`
    (a fraction of the champion's value when `relative`); lower-is-better metrics (log loss,
    RMSE, ...) count a decrease as the gain. With no champion yet it passes, and says so."""

    name = "beats_champion"

    def __init__(
        self,
        metric: str,
        min_delta: float = 0.0,
        *,
        relative: bool = False,
        alias: str = "champion",
        higher_is_better: bool | None = None,
        sensitive: str | None = None,
    ) -> None:
        from loopml.registry.uris import check_name

        self.metric = _metric_name(metric)
        self.min_delta = _number(min_delta, "min_delta")
        self.relative = _flag(relative, "relative")
        check_name(alias, "alias")
        if alias == "latest":
            raise InvalidInput("'latest' is not an alias; name the alias to beat, like 'champion'")
        self.alias = alias
        self.higher_is_better = (
            None if higher_is_better is None else _flag(higher_is_better, "higher_is_better")
        )
        if metric in FAIRNESS_METRICS and not sensitive:
            raise InvalidInput(f"BeatsChampion({metric!r}) needs sensitive='COLUMN'")
        self.sensitive = sensitive

    def check(self, context: GateContext) -> CheckResult:
        candidate = context.evaluation
        value = candidate.metric(self.metric, sensitive=self.sensitive)
        limit = f"gain >= {self.min_delta:g}" + (" (relative)" if self.relative else "")
        found = context.champion(self.alias)
        if found is None:
            where = f"models:/{context.model.name}@{self.alias}"
            return self.result(
                self.metric, None, limit, True, f"no champion yet ({where} is not set): passes"
            )
        champion, scored = found
        if champion.version == context.model.version:
            return self.result(
                self.metric, 0.0, limit, True, f"{candidate.model} is the {self.alias} already"
            )
        base = scored.metric(self.metric, sensitive=self.sensitive)
        higher = (
            self.higher_is_better
            if self.higher_is_better is not None
            else not metrics.lower_is_better(self.metric)
        )
        gain = (value - base) if higher else (base - value)
        if self.relative:
            # Against a champion of exactly 0 any change is infinitely large, either way.
            gain = gain / abs(base) if base else math.copysign(math.inf, gain) if gain else 0.0
        passed = gain >= self.min_delta
        return self.result(
            self.metric,
            gain,
            limit,
            passed,
            f"{self.metric} {value:.4g} vs {self.alias} v{champion.version} {base:.4g}: gain "
            f"{gain:+.4g} ({'needs' if not passed else 'limit'} {self.min_delta:+g}"
            f"{', relative' if self.relative else ''}"
            f"{', lower is better' if not higher else ''})",
        )


class Fairness(Check):
    """A fairness metric across the groups of feature `sensitive` stays within `max` (and at
    least `min`, for ratios)."""

    name = "fairness"

    def __init__(
        self,
        metric: str = "demographic_parity_difference",
        max: float | None = None,
        sensitive: str = "",
        min: float | None = None,
    ) -> None:
        if metric not in FAIRNESS_METRICS:
            raise InvalidInput(
                f"fairness metric {metric!r} is unknown; use one of {', '.join(FAIRNESS_METRICS)}"
            )
        if not isinstance(sensitive, str) or not sensitive:
            raise InvalidInput(
                "Fairness needs sensitive='COLUMN', the feature whose groups it compares"
            )
        self.metric = metric
        self.max = _number(max, "max", optional=True)
        self.min = _number(min, "min", optional=True)
        self.sensitive = sensitive
        _check_bounds(f"Fairness({metric!r})", self.min, self.max)

    def check(self, context: GateContext) -> CheckResult:
        value = context.evaluation.metric(self.metric, sensitive=self.sensitive)
        return _bounded(
            self,
            f"{self.metric}[{self.sensitive}]",
            value,
            self.min,
            self.max,
        )


class LatencyBudget(Check):
    """The `quantile` (p99) of single-row predict latency, over `calls` calls, is at most
    `max_ms` milliseconds."""

    name = "latency"

    def __init__(self, max_ms: float, quantile: float = 0.99, calls: int = 200) -> None:
        self.max_ms = _number(max_ms, "max_ms")
        self.quantile = _number(quantile, "quantile")
        if not 0 < self.quantile <= 1:
            raise InvalidInput(f"quantile must be in (0, 1], not {quantile}")
        if not isinstance(calls, int) or isinstance(calls, bool) or calls < 10:
            raise InvalidInput(f"calls must be a whole number of at least 10, not {calls!r}")
        self.calls = calls

    def check(self, context: GateContext) -> CheckResult:
        timing = single_row_latency(
            context.model.loaded, context.inputs, calls=self.calls, quantile=self.quantile
        )
        value = timing["value_ms"]
        label = f"p{self.quantile * 100:g}_ms"
        passed = value <= self.max_ms
        return self.result(
            label,
            value,
            f"<= {self.max_ms:g} ms",
            passed,
            f"single-row predict {label} {value:.3g} ms over {self.calls} calls "
            f"(p50 {timing['p50_ms']:.3g} ms); budget {self.max_ms:g} ms",
        )


def _bounded(
    item: Check, metric: str, value: float, low: float | None, high: float | None
) -> CheckResult:
    limits = [f">= {low:g}"] if low is not None else []
    limits += [f"<= {high:g}"] if high is not None else []
    limit = " and ".join(limits)
    passed = (low is None or value >= low) and (high is None or value <= high)
    verdict = "within" if passed else "outside"
    return item.result(metric, value, limit, passed, f"{metric} {value:.4g} is {verdict} {limit}")


def _check_bounds(what: str, low: float | None, high: float | None) -> None:
    if low is None and high is None:
        raise InvalidInput(f"{what} needs min=, max= or both")
    if low is not None and high is not None and low > high:
        raise InvalidInput(f"{what}: min {low:g} is above max {high:g}, so nothing could pass")


def _metric_name(metric: object) -> str:
    if not isinstance(metric, str) or not metric:
        raise InvalidInput(f"a metric is named by a string like 'f1', not {metric!r}")
    return metric


def _number(value: object, what: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number, not {value!r}")
    return float(value)


def _flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false, not {value!r}")
    return value
