"""Running the real `loopml` command (and Python snippets) from end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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
