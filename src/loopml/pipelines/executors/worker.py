"""A local executor's worker process: run the attempts the driver sends, one at a time."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

import cloudpickle

from loopml.pipelines.task import Outcome, import_modules, run_task


def _exit_with(parent: int) -> None:
    """Exit as soon as the driver is gone (killed outright), even in the middle of a step."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def main(fd: int) -> None:
    """Serve attempts over the connection `fd` until the driver sends None or goes away."""
    # Ctrl-C reaches the whole process group: the driver decides what stops, not each worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    conn = Connection(fd)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        modules, task_bytes = message
        try:
            import_modules(modules)
            task = cloudpickle.loads(task_bytes)
            outcome, _ = run_task(task)
        except Exception as exc:  # noqa: BLE001 - an import error in the user's module
            outcome = Outcome(
                "",
                error="".join(traceback.format_exception(exc)),
                error_line="".join(traceback.format_exception_only(exc)).strip(),
            )
        conn.send(outcome)


if __name__ == "__main__":
    main(int(sys.argv[1]))
