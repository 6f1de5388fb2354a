"""The local executor: step attempts in worker processes on this machine, admitted by CPUs.

Workers are fresh interpreters (`python -m loopml.pipelines.executors.worker`), started on
demand and reused for the rest of the run; they talk to the driver over a socket pair, so
whatever a step writes to its stdout cannot disturb them. A worker is never forked from the
driver: the driver has threads (the metric writer), and a script without an
`if __name__ == "__main__":` guard is never run again.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    devices: str | None  # its CUDA_VISIBLE_DEVICES; None: the driver's environment
    handle: int | None = None
    held: dict[str, float] = field(default_factory=dict)  # GPU -> share the attempt holds


class LocalExecutor:
    """Runs attempts in worker processes here; at most `cpus` CPUs' worth at once.

    A step that asks for GPUs runs in a worker whose CUDA_VISIBLE_DEVICES names the GPUs it
    was given (whole GPUs for a request of 1 or more; the least used one for a fraction), so
    two steps never pick the same device by accident.
    """

    name = "local"

    def __init__(self, cpus: float | None = None, gpus: float | None = None) -> None:
        self.cpus = float(cpus if cpus is not None else os.cpu_count() or 1)
        found = local_gpu_ids()
        self.devices = found if gpus is None else [str(i) for i in range(int(gpus))]
        self.gpus = float(len(self.devices) if gpus is None else gpus)
        if self.cpus <= 0:
            raise InvalidInput(f"the local executor needs cpus > 0, not {cpus}")
        self._load = dict.fromkeys(self.devices, 0.0)
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
        del values, outputs
        held = self._assign(resources.get("gpu", 0.0))
        devices = ",".join(d for d in self.devices if d in held) if held else None
        worker = self._take_idle(devices) or self._spawn(devices)
        handle = next(self._handles)
        worker.handle, worker.held = handle, held
        try:
            worker.conn.send((modules, task))
        except OSError:  # it died while idle: use a new one
            self._stop(worker)
            worker = self._spawn(devices)
            worker.handle, worker.held = handle, held
            worker.conn.send((modules, task))
        self._busy[handle] = worker
        return handle

    def _assign(self, gpus: float) -> dict[str, float]:
        """Give an attempt `gpus` GPUs: whole, least used first; a fraction of the least used."""
        if gpus <= 0 or not self.devices:
            return {}
        by_load = sorted(self.devices, key=lambda d: self._load[d])
        count = max(1, math.ceil(gpus - 1e-9))
        share = gpus / count
        held = dict.fromkeys(by_load[:count], share)
        for device, amount in held.items():
            self._load[device] += amount
        return held

    def _release(self, worker: _Worker) -> None:
        for device, amount in worker.held.items():
            self._load[device] -= amount
        worker.held = {}

    def _take_idle(self, devices: str | None) -> _Worker | None:
        for index, worker in enumerate(self._idle):
            if worker.devices == devices:
                return self._idle.pop(index)
        return None

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
                self._release(worker)
                self._stop(worker)
                finished.append(Finished(handle, lost(code)))
                continue
            self._busy.pop(handle)
            self._release(worker)
            worker.handle = None
            self._idle.append(worker)
            finished.append(Finished(handle, outcome))
        return finished

    def cancel(self, handle: Any) -> None:
        worker = self._busy.pop(handle, None)
        if worker is not None:
            self._release(worker)
            self._stop(worker)

    def close(self) -> None:
        for worker in [*self._idle, *self._busy.values()]:
            self._stop(worker, graceful=True)
        self._idle, self._busy = [], {}

    def _spawn(self, devices: str | None) -> _Worker:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        return _Worker(process, Connection(ours.detach()), devices)

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


def local_gpu_ids() -> list[str]:
    """Return this machine's GPUs as CUDA names them: CUDA_VISIBLE_DEVICES, else /dev/nvidiaN."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d.strip() for d in visible.split(",") if d.strip()]
        # CUDA stops at the first invalid entry ("-1" hides every device).
        return ids[: ids.index("-1")] if "-1" in ids else ids
    found = [p.name for p in Path("/dev").glob("nvidia*") if re.fullmatch(r"nvidia\d+", p.name)]
    return [str(i) for i in range(len(found))]
