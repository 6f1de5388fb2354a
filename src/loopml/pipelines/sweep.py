"""Sweeps: grid or random search over pipeline params, trials run side by side on one driver.

A sweep is a run; each trial is a pipeline run nested under it. Trials share the driver, so a
step they have in common (the data split) runs once and the others reuse it. The trial with the
best value of the chosen metric gets the tag `loopml.sweep.best = true`.
"""

from __future__ import annotations

import itertools
import math
import random as random_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from loopml.core.workspace import workspace
from loopml.errors import InvalidInput
from loopml.pipelines.display import Display
from loopml.pipelines.executors import Executor
from loopml.pipelines.graph import Pipeline
from loopml.pipelines.runner import Driver
from loopml.tracking import context, runs
from loopml.tracking.run import Run

MAX_TRIALS = 10_000


@dataclass
class Trial:
    """One pipeline run of a sweep."""

    run_id: str
    params: dict[str, Any]
    status: str  # FINISHED or FAILED
    value: float | None  # the sweep's metric, None if the trial did not log it
    metrics: dict[str, float] = field(default_factory=dict)
    error_line: str = ""


@dataclass
class SweepResult:
    """A finished sweep: its trials, best first (failed and metric-less trials last)."""

    run_id: str
    metric: str
    mode: str
    trials: list[Trial]

    @property
    def best(self) -> Trial | None:
        """Return the best trial, or None if no trial logged the metric."""
        first = self.trials[0] if self.trials else None
        return first if first is not None and _ranked(first) else None


def combinations(
    grid: Mapping[str, Sequence[Any]], *, random: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """Return the grid's combinations, or `random` of them drawn without repeats."""
    if not isinstance(grid, Mapping) or not grid:
        raise InvalidInput("a sweep needs at least one param with values: -p name=a,b,c")
    names = list(grid)
    for name, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise InvalidInput(f"sweep param {name!r} needs a non-empty list of values")
    grid = {name: _distinct(values) for name, values in grid.items()}
    total = math.prod(len(v) for v in grid.values())
    if random is None:
        if total > MAX_TRIALS:
            raise InvalidInput(f"the grid has {total} combinations; sample some with --random N")
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]
    if isinstance(random, bool) or not isinstance(random, int) or not 1 <= random <= MAX_TRIALS:
        raise InvalidInput(
            f"--random takes a number of trials from 1 to {MAX_TRIALS}, not {random!r}"
        )
    rng = random_module.Random(seed)  # noqa: S311 - reproducible sampling, not secrets
    count = min(random, total)
    picked = rng.sample(range(total), count)
    sizes = [len(v) for v in grid.values()]
    result = []
    for pick in picked:
        combo, rest = {}, pick
        for name, size in zip(reversed(names), reversed(sizes), strict=True):
            rest, position = divmod(rest, size)
            combo[name] = grid[name][position]
        result.append({name: combo[name] for name in names})
    return result


def _ranked(trial: Trial) -> bool:
    """Return True if the trial has a value of the metric that can be ranked."""
    return trial.value is not None and not math.isnan(trial.value)


def _distinct(values: Sequence[Any]) -> list[Any]:
    """Return `values` without repeats, in order (`-p a=1,1` is one trial, not two)."""
    kept: list[Any] = []
    for value in values:
        if not any(type(value) is type(k) and value == k for k in kept):
            kept.append(value)
    return kept


def run_sweep(
    pipeline: Pipeline,
    grid: Mapping[str, Sequence[Any]],
    *,
    metric: str,
    mode: Literal["max", "min"] = "max",
    params: Mapping[str, Any] | None = None,
    random: int | None = None,
    seed: int = 0,
    executor: str | Executor = "local",
    cache: bool = True,
    experiment: str | int | None = None,
    progress: bool | None = None,
    from_text: bool = False,
) -> SweepResult:
    """Run `pipeline` once per combination of `grid` (on top of `params`); return the trials.

    With `from_text`, grid values and params are command-line strings, parsed by each param's
    type hint.
    """
    if not isinstance(metric, str) or not metric:
        raise InvalidInput("a sweep needs --metric NAME: the metric that ranks the trials")
    if mode not in ("max", "min"):
        raise InvalidInput(f"mode must be 'max' or 'min', not {mode!r}")
    base = dict(params or {})
    overlap = sorted(set(base) & set(grid))
    if overlap:
        raise InvalidInput(f"param {overlap[0]!r} is both fixed and swept; give it once")
    trials = combinations(grid, random=random, seed=seed)
    bound = [pipeline.bind({**base, **combo}, from_text=from_text) for combo in trials]
    ws = workspace()
    record = runs.create(
        ws,
        experiment if experiment is not None else pipeline.name,
        name=f"{pipeline.name}-sweep",
        tags={
            **context.capture(),
            "loopml.run_type": "sweep",
            "loopml.pipeline": pipeline.name,
            "loopml.pipeline.source": pipeline.source or pipeline.reference,
            "loopml.sweep.metric": metric,
            "loopml.sweep.mode": mode,
        },
    )
    sweep_run = Run(ws, record, 0)
    display = Display(progress)
    display.runs(many=True)
    try:
        driver = Driver(ws, executor, display=display)
        jobs = [
            driver.add(
                pipeline,
                values,
                cache=cache,
                experiment=record.experiment_id,
                parent_run_id=sweep_run.id,
                run_name=f"trial-{number}",
                extra_tags={"loopml.sweep": sweep_run.id},
            )
            for number, values in enumerate(bound, 1)
        ]
        driver.drive()
    except BaseException as exc:
        sweep_run.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    results = []
    for job in jobs:
        result = driver.result(job)
        failed = next((s for s in result.steps.values() if s.status == "FAILED"), None)
        results.append(
            Trial(
                result.run_id,
                {k: v for k, v in result.params.items() if k in grid},
                result.status,
                result.metrics.get(metric),
                result.metrics,
                f"{failed.node}: {failed.error_line}" if failed else "",
            )
        )
    sign = -1.0 if mode == "max" else 1.0
    # Trials without the metric, or with NaN, go last: NaN compares false with everything.
    results.sort(key=lambda t: (not _ranked(t), sign * t.value if _ranked(t) else 0.0))  # type: ignore[operator]
    sweep = SweepResult(sweep_run.id, metric, mode, results)
    best = sweep.best
    if best is not None:
        runs.set_tags(ws, best.run_id, {"loopml.sweep.best": "true"})
        sweep_run.set_tag("loopml.sweep.best_run", best.run_id)
        sweep_run.log_metric(f"best_{metric}", best.value)  # type: ignore[arg-type]
    finished = any(t.status == "FINISHED" for t in results)
    sweep_run.end("FINISHED" if finished else "FAILED")
    return sweep
