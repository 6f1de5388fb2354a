"""The Ray executor: each step attempt a Ray task, sized by the step's resources.

Upstream outputs travel as Ray object refs passed straight into the downstream task, so Ray
moves them between nodes; outputs are also written to the blob store for caching and lineage.
With no address it starts a local Ray cluster (and stops it on close); with `auto` or
`ray://host:10001` it connects to a running one. On a cluster of several machines, the
workspace's blob store must be one they all reach (an `s3://` blob URI) and the pipeline's
files must be on the workers at the same path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from loopml.errors import InvalidInput
from loopml.pipelines.executors.base import Capacity, Finished, Modules
from loopml.pipelines.task import Outcome

ADDRESS_ENV = "LOOPML_RAY_ADDRESS"


def _attempt(modules: Modules, task_bytes: bytes, outputs: int, *values: Any) -> Any:
    """Run one attempt inside a Ray worker; return the outcome then one value per output."""
    import cloudpickle

    from loopml.pipelines.task import import_modules, run_task

    import_modules(modules)
    task = cloudpickle.loads(task_bytes)
    outcome, results = run_task(task, values)
    if outputs == 0:
        return outcome
    return (outcome, *(results if outcome.ok else [None] * outputs))


class RayExecutor:
    """Submits attempts as Ray tasks with num_cpus / num_gpus from the step's resources."""

    name = "ray"

    def __init__(self, address: str | None = None, **init_options: Any) -> None:
        self.address = address or os.environ.get(ADDRESS_ENV) or None
        self.init_options = init_options
        self._started_ray = False
        self._remote: Any = None
        self._running: dict[Any, tuple[Any, ...]] = {}  # outcome ref -> value refs

    def start(self) -> Capacity:
        try:
            import ray
        except ImportError:
            raise InvalidInput("the ray executor needs Ray: pip install 'loopml[ray]'") from None
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "configure_logging": False}
            options.update(self.init_options)
            try:
                ray.init(address=self.address, **options)
            except ConnectionError as exc:
                raise InvalidInput(
                    f"cannot reach the Ray cluster at {self.address!r}: {exc}; start it "
                    "(`ray start --head`) or leave out the address to start a local one"
                ) from exc
            self._started_ray = True
        self._remote = ray.remote(_attempt)
        total = ray.cluster_resources()  # type: ignore[no-untyped-call]
        return Capacity(float(total.get("CPU", 0)), float(total.get("GPU", 0)))

    def submit(
        self,
        modules: Modules,
        task: bytes,
        resources: dict[str, float],
        values: Sequence[Any] = (),
        outputs: int = 0,
    ) -> Any:
        options: dict[str, Any] = {
            "num_cpus": resources.get("cpu", 1.0),
            "num_gpus": resources.get("gpu", 0.0),
            "num_returns": 1 + outputs,
            "max_retries": 0,  # the driver retries, with the step's own backoff
            "name": "loopml-step",
        }
        if resources.get("memory"):
            options["memory"] = int(resources["memory"])
        refs = self._remote.options(**options).remote(modules, task, outputs, *values)
        if outputs == 0:
            head, rest = refs, ()
        else:
            head, rest = refs[0], tuple(refs[1:])
        self._running[head] = rest
        return head

    def wait(self, timeout: float | None) -> list[Finished]:
        import ray

        if not self._running:
            return []
        pending = list(self._running)
        ready, _ = ray.wait(pending, num_returns=1, timeout=timeout)
        if ready:  # take every attempt already done, not only the first
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
        finished = []
        for ref in ready:
            values = self._running.pop(ref)
            try:
                outcome: Outcome = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a worker or node died under the task
                line = f"WorkerLost: the Ray task running the step failed: {exc}".splitlines()[0]
                outcome = Outcome("", error=f"{exc}\n", error_line=line, retryable=True)
                values = ()
            finished.append(Finished(ref, outcome, values if outcome.ok else ()))
        return finished

    def cancel(self, handle: Any) -> None:
        import ray

        if self._running.pop(handle, None) is not None:
            ray.cancel(handle, force=True)

    def close(self) -> None:
        self._running.clear()
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
