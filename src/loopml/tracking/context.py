"""What a run records about where it ran: source file, git commit, Python and package versions."""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from loopml.tracking.current import current_user

# Versions recorded with every run, when installed; a later issue adds the flavors' libraries.
KEY_PACKAGES = (
    "loopml",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "torch",
    "xgboost",
    "lightgbm",
)


def capture() -> dict[str, str]:
    """Return the system tags of a new run (computed once per process and source folder)."""
    entry = _entry_point()
    tags = {
        "loopml.user": current_user(),
        "loopml.source.name": entry,
        "loopml.python": platform.python_version(),
        "loopml.packages": _packages(),
    }
    tags.update(_git(str(Path(entry).parent) if entry else str(Path.cwd())))
    return tags


def _entry_point() -> str:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    return str(Path(path).resolve()) if path and path not in ("-c", "-m") else ""


@functools.cache
def _packages() -> str:
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return json.dumps(versions, sort_keys=True)


@functools.cache
def _git(folder: str) -> dict[str, str]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=folder, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"loopml.git.commit": commit, "loopml.git.dirty": str(bool(status)).lower()}
