"""The Ray executor: each step attempt a Ray task, sized by the step's resources.

Upstream outputs travel as Ray object refs passed straight into the downstream task, so Ray
moves them between nodes; outputs are also written to the blob store for caching and lineage.
With no address it starts a local Ray cluster (and stops it on close); with `auto` or
`ray://host:10001` it connects to a running one; if this process is connected to Ray already
(`ray.init` in a notebook or a test session), it uses that connection and leaves it open. On a
cluster of several machines, the workspace's blob store must be one they all reach (an `s3://`
blob URI) and the pipeline's files must be on the workers at the same path.
"""

from __future__ import annotations

import builtins
import os
import pickle
import re
import socket
import traceback
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from loopml.errors import InvalidInput
from loopml.pipelines.executors.base import Capacity, Finished, Modules
from loopml.pipelines.task import Outcome

ADDRESS_ENV = "LOOPML_RAY_ADDRESS"
CLIENT_PORT = 10001  # Ray Client's default port
CONNECT_TIMEOUT = 5.0  # seconds to wait for a ray:// address to accept a connection


def _attempt(modules: Modules, task_bytes: bytes, outputs: int, *values: Any) -> Any:
    """Run one attempt inside a Ray worker.

    Return (outcome, whether its values can travel by ref), then one value per output.
    """
    import cloudpickle

    from loopml.pipelines.task import import_modules, run_task

    try:
        import_modules(modules)
        task = cloudpickle.loads(task_bytes)
    except Exception as exc:  # noqa: BLE001 - an error importing the user's module is the step's
        outcome = Outcome(
            "",
            error="".join(traceback.format_exception(exc)),
            error_line="".join(traceback.format_exception_only(exc)).strip(),
        )
        results: list[Any] = []
    else:
        outcome, results = run_task(task, values)
    passed: list[_Passed | None] = [None] * outputs
    by_ref = False
    if outcome.ok:
        try:
            passed = [_Passed(modules, value) for value in results]
        except Exception:  # noqa: BLE001 - one Ray cannot move: downstream steps read the blob
            passed = [None] * outputs
        else:
            by_ref = True
    head = (outcome, by_ref)
    return head if outputs == 0 else (head, *passed)


class _Passed:
    """An output on its way to a downstream task, unpickled there only after the user's modules.

    Ray unpickles a task's arguments before the task runs, by importing modules by name; a
    pipeline file loaded from a folder that is not on the worker's path cannot be imported so,
    so a value of a class it defines is pickled here and unpickled after `import_modules`.
    Large buffers (numpy arrays) stay out of band, so Ray still moves them without copies.
    """

    def __init__(self, modules: Modules, value: Any) -> None:
        import cloudpickle

        self.modules = modules
        self.buffers: list[pickle.PickleBuffer] = []
        self.data = cloudpickle.dumps(value, protocol=5, buffer_callback=self.buffers.append)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.modules, self.data, *self.buffers))


def _restore(modules: Modules, data: bytes, *buffers: Any) -> Any:
    """Return a value `_Passed` pickled, once the modules it may refer to are imported."""
    from loopml.pipelines.task import import_modules

    import_modules(modules)
    return pickle.loads(data, buffers=buffers)  # noqa: S301 - written by our own task


class RayExecutor:
    """Submits attempts as Ray tasks with num_cpus / num_gpus from the step's resources."""

    name = "ray"

    def __init__(self, address: str | None = None, **init_options: Any) -> None:
        self.address = address or os.environ.get(ADDRESS_ENV) or None
        self.init_options = init_options
        self._started_ray = False
        self._print = builtins.print
        self._remote: Any = None
        self._running: dict[Any, tuple[Any, ...]] = {}  # outcome ref -> value refs

    def start(self) -> Capacity:
        try:
            import ray
        except ImportError:
            raise InvalidInput("the ray executor needs Ray: pip install 'loopml[ray]'") from None
        if not ray.is_initialized():
            self._connect(ray)
        self._remote = ray.remote(_attempt)
        total = ray.cluster_resources()  # type: ignore[no-untyped-call]
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        return Capacity(
            float(total.get("CPU", 0)),
            float(total.get("GPU", 0)),
            max((float(n.get("CPU", 0)) for n in nodes), default=None),
            max((float(n.get("GPU", 0)) for n in nodes), default=None),
        )

    def _connect(self, ray: Any) -> None:
        address = self.address
        fix = "start it (`ray start --head`) or leave out the address to start a local one"
        if address is not None and address.startswith("ray://"):
            # Ray Client retries an unreachable address for about a minute; fail at once.
            _check_reachable(address, fix)
        options: dict[str, Any] = {"include_dashboard": False, "configure_logging": False}
        options.update(self.init_options)
        try:
            ray.init(address=address, **options)
        except ConnectionError as exc:
            raise InvalidInput(
                f"cannot reach the Ray cluster at {address!r}: {exc}; {fix}"
            ) from exc
        except ValueError as exc:
            if "ray[client]" not in str(exc):
                raise
            raise InvalidInput(
                f"connecting to {address!r} needs Ray Client: pip install 'ray[client]'"
            ) from exc
        self._started_ray = True

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
                outcome, by_ref = ray.get(ref)
            except ray.exceptions.RayError as exc:
                outcome, by_ref = _failed(exc), False
            finished.append(Finished(ref, outcome, values if by_ref else ()))
        return finished

    def cancel(self, handle: Any) -> None:
        import ray

        if self._running.pop(handle, None) is not None:
            ray.cancel(handle, force=True)  # kills the worker process, so the step stops

    def close(self) -> None:
        for handle in list(self._running):  # left running only when the driver was stopped
            self.cancel(handle)
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
            builtins.print = self._print  # Ray wraps print while connected, and keeps it so


def _failed(exc: Exception) -> Outcome:
    """Return the outcome of an attempt whose Ray task raised instead of returning one.

    `_attempt` turns every error of the step into an outcome, so this is Ray's own failure:
    the worker process or its node died (retryable as WorkerLost), or Ray could not move a
    value to the task.
    """
    from ray import exceptions

    text = _plain(str(exc))
    cause = exc.cause if isinstance(exc, exceptions.RayTaskError) else None
    inner = cause if isinstance(cause, BaseException) else exc
    first = next(iter(_plain(str(inner)).strip().splitlines()), "")
    lost = (
        exceptions.WorkerCrashedError,
        exceptions.NodeDiedError,
        exceptions.ObjectLostError,
        exceptions.LocalRayletDiedError,
    )
    if isinstance(inner, lost):
        line = f"WorkerLost: the Ray worker running the step died ({type(inner).__name__})"
        return Outcome("", error=f"{line}\n{text}\n", error_line=line, retryable=True)
    line = f"{type(inner).__name__}: {first}" if first else type(inner).__name__
    return Outcome("", error=f"{text}\n", error_line=line)


def _plain(text: str) -> str:
    """Return `text` without the terminal colour codes Ray puts in its error messages."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _check_reachable(address: str, fix: str) -> None:
    """Raise InvalidInput unless the host of a `ray://host:port` address accepts connections."""
    parts = urlsplit(address)
    try:
        port = parts.port or CLIENT_PORT
    except ValueError:
        raise InvalidInput(f"{address!r} is not a Ray address like 'ray://host:10001'") from None
    if not parts.hostname:
        raise InvalidInput(f"{address!r} is not a Ray address like 'ray://host:10001'")
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidInput(
            f"cannot reach the Ray cluster at {address!r} ({reason}); {fix}"
        ) from exc
