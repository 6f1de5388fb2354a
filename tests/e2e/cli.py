"""Running the real `loopml` command (and Python snippets) from end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

T = TypeVar("T")
LOOPML = Path(sys.executable).parent / "loopml"
LOOPML_ENV = ("LOOPML_HOME", "LOOPML_STORE_URI", "LOOPML_BLOB_URI", "LOOPML_DEBUG")
# Generous: a loaded 2-CPU machine starts a CLI process in seconds, not milliseconds.
TIMEOUT_S = 180


def environment(**extra: str) -> dict[str, str]:
    """Return this process's environment without LoopML settings, wide enough for tables."""
    env = {k: v for k, v in os.environ.items() if k not in LOOPML_ENV}
    return env | {"COLUMNS": "200"} | extra


def loopml(
    *args: str, cwd: Path, expect: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `loopml ARGS` in `cwd` and check its exit status."""
    done = subprocess.run(
        [str(LOOPML), *args],
        cwd=cwd,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == expect, (
        f"loopml {' '.join(args)} exited {done.returncode}, not {expect}\n"
        f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return done


def loopml_json(*args: str, cwd: Path, expect: int = 0, env: dict[str, str] | None = None) -> Any:
    """Run `loopml ARGS --json` and return the parsed output."""
    return json.loads(loopml(*args, "--json", cwd=cwd, expect=expect, env=env).stdout)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """Return the single line a failed command printed, after checking it is just that."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    return lines[0]


def together(*calls: Callable[[], T]) -> list[T]:
    """Run independent commands side by side (each is a process start); results in order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet with the interpreter LoopML is installed in; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def free_port() -> int:
    """Return a loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    root: Path, *args: str, port: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start `loopml ARGS --port PORT` (a server) in `root`; return the process and its base
    URL once it answers its readiness probe."""
    port = port or free_port()
    # A file, not a pipe: a server that logs more than a pipe holds would block on writing.
    output = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop()
    process = subprocess.Popen(
        [str(LOOPML), *args, "--port", str(port)],
        cwd=root,
        env=environment(),
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _outputs[process.pid] = output
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"loopml {args[0]} exited {process.returncode}:\n{_read(process)}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    process.wait()
    raise AssertionError(f"loopml {args[0]} was not ready in 120 s:\n{_read(process)}")


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Stop a server as an orchestrator does (SIGTERM); return its exit status and output."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    return process.returncode, _read(process)


def _read(process: subprocess.Popen[str]) -> str:
    """Return what a server started by `start_server` printed (once it has exited)."""
    output = _outputs.pop(process.pid)
    with output:
        output.seek(0)
        return output.read()


_outputs: dict[int, IO[str]] = {}
