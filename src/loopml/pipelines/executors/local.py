"""The local executor: step attempts in worker processes on this machine, admitted by CPUs.

Workers are fresh interpreters (`python -m loopml.pipelines.executors.worker`), started on
demand and reused for the rest of the run; they talk to the driver over a socket pair, so
whatever a step writes to its stdout cannot disturb them. A worker is never forked from the
driver: the driver has threads (the metric writer), and a script without an
`if __name__ == "__main__":` guard is never run again.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from loopml.errors import InvalidInput
from loopml.pipelines.executors.base import Capacity, Finished, Modules
from loopml.pipelines.task import Outcome

WORKER_MODULE = "loopml.pipelines.executors.worker"


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    handle: int | None = None


class LocalExecutor:
    """Runs attempts in worker processes here; at most `cpus` CPUs' worth at once."""

    name = "local"

    def __init__(self, cpus: float | None = None, gpus: float | None = None) -> None:
        self.cpus = float(cpus if cpus is not None else os.cpu_count() or 1)
        self.gpus = float(gpus if gpus is not None else local_gpus())
        if self.cpus <= 0:
            raise InvalidInput(f"the local executor needs cpus > 0, not {cpus}")
        self._idle: list[_Worker] = []
        self._busy: dict[int, _Worker] = {}
        self._handles = itertools.count(1)

    def start(self) -> Capacity:
        return Capacity(self.cpus, self.gpus)

    def submit(
        self,
        modules: Modules,
        task: bytes,
        resources: dict[str, float],
        values: Sequence[Any] = (),
        outputs: int = 0,
    ) -> int:
        # The driver admits attempts by resources, and inputs travel here as blobs.
        del resources, values, outputs
        worker = self._idle.pop() if self._idle else self._spawn()
        handle = next(self._handles)
        worker.handle = handle
        try:
            worker.conn.send((modules, task))
        except OSError:  # it died while idle: use a new one
            self._stop(worker)
            worker = self._spawn()
            worker.handle = handle
            worker.conn.send((modules, task))
        self._busy[handle] = worker
        return handle

    def wait(self, timeout: float | None) -> list[Finished]:
        if not self._busy:
            return []
        by_conn: dict[Any, _Worker] = {worker.conn: worker for worker in self._busy.values()}
        ready = wait(list(by_conn), timeout)
        finished: list[Finished] = []
        for conn in ready:
            worker = by_conn[conn]
            handle = worker.handle
            assert handle is not None
            try:
                outcome: Outcome = worker.conn.recv()
            except (EOFError, OSError):
                code = worker.process.wait()
                self._busy.pop(handle)
                self._stop(worker)
                finished.append(Finished(handle, lost(code)))
                continue
            self._busy.pop(handle)
            worker.handle = None
            self._idle.append(worker)
            finished.append(Finished(handle, outcome))
        return finished

    def cancel(self, handle: Any) -> None:
        worker = self._busy.pop(handle, None)
        if worker is not None:
            self._stop(worker)

    def close(self) -> None:
        for worker in [*self._idle, *self._busy.values()]:
            self._stop(worker, graceful=True)
        self._idle, self._busy = [], {}

    def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        return _Worker(process, Connection(ours.detach()))

    @staticmethod
    def _stop(worker: _Worker, *, graceful: bool = False) -> None:
        if graceful and worker.process.poll() is None:
            try:
                worker.conn.send(None)
                worker.process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        worker.conn.close()


def lost(code: int) -> Outcome:
    """Return the outcome of an attempt whose worker process died."""
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    line = f"WorkerLost: the worker process running the step died ({how})"
    return Outcome("", error=line + "\n", error_line=line, retryable=True)


def local_gpus() -> int:
    """Return how many GPUs this machine offers: CUDA_VISIBLE_DEVICES, else /dev/nvidiaN."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return sum(1 for p in Path("/dev").glob("nvidia*") if re.fullmatch(r"nvidia\d+", p.name))
