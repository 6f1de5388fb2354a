"""The executor contract: submit one step attempt, wait for attempts to finish."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from loopml.pipelines.task import Outcome

# A step attempt as handed to an executor: the user's modules to import first (name ->
# (file, digest of its source)), then the cloudpickled StepTask.
Modules = dict[str, tuple[str, str]]


@dataclass(frozen=True)
class Capacity:
    """What an executor can run at once, in the units of `@step(resources=...)`.

    `node_cpu` and `node_gpu` are the most one machine has: one step cannot span machines.
    """

    cpu: float
    gpu: float
    node_cpu: float | None = None
    node_gpu: float | None = None

    @property
    def step_cpu(self) -> float:
        """Return the most CPUs one step can get."""
        return self.cpu if self.node_cpu is None else self.node_cpu

    @property
    def step_gpu(self) -> float:
        """Return the most GPUs one step can get."""
        return self.gpu if self.node_gpu is None else self.node_gpu


@dataclass(frozen=True)
class Finished:
    """A finished attempt: its handle, its outcome, and the executor's handles of its values
    (Ray object refs that downstream attempts can take without a round trip; else empty)."""

    handle: Any
    outcome: Outcome
    values: tuple[Any, ...] = ()


class Executor(Protocol):
    """Runs step attempts; the driver decides what runs when, and records everything."""

    name: str

    def start(self) -> Capacity:
        """Get ready (start workers, connect to a cluster) and return the capacity."""
        ...

    def submit(
        self,
        modules: Modules,
        task: bytes,
        resources: dict[str, float],
        values: Sequence[Any] = (),
        outputs: int = 0,
    ) -> Any:
        """Start one attempt of a step with `outputs` outputs and return its handle.

        `values` are earlier `Finished.values` passed as the task's inputs, in the order the
        task's `passed_inputs` index them.
        """
        ...

    def wait(self, timeout: float | None) -> list[Finished]:
        """Return the attempts that finished, waiting at most `timeout` seconds for one."""
        ...

    def cancel(self, handle: Any) -> None:
        """Stop an attempt (its timeout passed); it is not reported by `wait` afterwards."""
        ...

    def close(self) -> None:
        """Stop workers (and anything else `start` began)."""
        ...
