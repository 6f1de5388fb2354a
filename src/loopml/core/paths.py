"""The one safe join: every path that comes from outside goes through here."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from loopml.errors import InvalidInput

# Percent-encodings of '.', '/', '\\' and '%' itself: double-encoded traversal bypasses.
_ENCODED = re.compile(r"%(2e|2f|5c|25)", re.IGNORECASE)


def clean_relpath(path: str, *, what: str = "path") -> str:
    """Return `path` as a normalised relative POSIX path, or raise InvalidInput.

    Rejects absolute paths, `..`, backslashes, NUL, drive letters and percent-encoded forms of
    those, so a stored or requested path can never name a file outside its root.
    """
    if isinstance(path, str) and _plainly_clean(path):
        return path  # the common case, checked without building an error
    if not isinstance(path, str) or not path:
        raise InvalidInput(f"{what} must be a non-empty relative path, not {path!r}")
    problem = None
    if "\x00" in path:
        problem = "contains a NUL byte"
    elif "\\" in path:
        problem = "contains a backslash; use '/'"
    elif _ENCODED.search(path):
        problem = "contains a percent-encoded '.', '/', '\\' or '%'"
    elif path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        problem = "is absolute"
    elif ".." in path.split("/"):
        problem = "contains '..'"
    if problem:
        raise InvalidInput(f"{what} {path!r} {problem}; give a path relative to its root")
    normal = posixpath.normpath(path)
    if normal in (".", ""):
        raise InvalidInput(f"{what} {path!r} names the root itself; give a file path")
    return normal


def _plainly_clean(path: str) -> bool:
    """Return True for a normal relative path with nothing that needs a closer look."""
    return (
        path not in ("", ".", "..")
        and not path.startswith(("/", "../"))
        and "\\" not in path
        and "\x00" not in path
        and "%" not in path
        and path[1:2] != ":"
        and posixpath.normpath(path) == path
    )


def safe_join(root: Path, path: str, *, what: str = "path") -> Path:
    """Join a relative path from outside onto `root`, refusing any result outside it."""
    root = root.resolve()
    target = (root / clean_relpath(path, what=what)).resolve()
    if not target.is_relative_to(root):  # a symlink inside root pointing out
        raise InvalidInput(f"{what} {path!r} leads outside {root}")
    return target
