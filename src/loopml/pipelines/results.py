"""What a pipeline run hands back: each step's result and the run's, and the error naming the
step that failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, InvalidState, StepFailed
from loopml.pipelines.materializers import Materializer
from loopml.pipelines.task import Stored, load


@dataclass
class StepResult:
    """How one step of a pipeline run ended."""

    node: str
    status: str  # COMPLETED, CACHED, FAILED, or SKIPPED (never ran: an upstream step failed)
    run_id: str | None = None
    outputs: dict[str, Stored] = field(default_factory=dict)
    cached_from: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    error_line: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        """Return True if its outputs are available."""
        return self.status in ("COMPLETED", "CACHED")


@dataclass
class PipelineResult:
    """A finished pipeline run: its status, each step's result, and the metrics it logged."""

    run_id: str
    pipeline: str
    status: str  # FINISHED, FAILED or KILLED
    params: dict[str, Any]
    steps: dict[str, StepResult]
    metrics: dict[str, float]
    workspace: Workspace = field(repr=False, compare=False)
    # node -> the step's own materializers, to load what they stored
    materializers: dict[str, tuple[Materializer, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def output(self, node: str, name: str | None = None) -> Any:
        """Return the value of an output of step `node` (its only one, or the one named)."""
        step = self.steps.get(node)
        if step is None:
            raise InvalidInput(f"no step {node!r} in this run; steps are {', '.join(self.steps)}")
        if not step.ok:
            raise InvalidState(f"step {node!r} has no outputs: it is {step.status}")
        if name is None:
            if len(step.outputs) != 1:
                raise InvalidInput(
                    f"step {node!r} has outputs {', '.join(step.outputs) or 'none'}; name one"
                )
            name = next(iter(step.outputs))
        if name not in step.outputs:
            raise InvalidInput(f"step {node!r} has no output {name!r}")
        return load(self.workspace.blobs, step.outputs[name], self.materializers.get(node, ()))


def failure_of(result: PipelineResult) -> StepFailed:
    """Return the error that says which step failed, why, and how to look and resume."""
    failed = next(s for s in result.steps.values() if s.status == "FAILED")
    short = result.run_id[:8]
    return StepFailed(
        f"step {failed.node!r} of pipeline {result.pipeline!r} failed: {failed.error_line}; "
        f"traceback: `loopml pipelines show {short}`; resume: `loopml run --resume {short}`",
        result,
    )
