"""Walking a file or folder that is about to be versioned, with errors that name the path."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from loopml.config import DIRNAME
from loopml.core.paths import clean_relpath
from loopml.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class Found:
    """A regular file under the added path: where it is, its name in the version, its stat."""

    path: str  # absolute
    relpath: str  # POSIX, relative to the added folder (the file name for a single file)
    st: os.stat_result
    readable: bool = True  # False: a broken link or special file, seen by a lenient scan


def scan(
    target: Path, *, allow_empty: bool = False, lenient: bool = False
) -> tuple[str, list[Found]]:
    """Return ("file" | "folder", the regular files under `target`, in path order).

    A lenient scan (for comparing, not adding) lists broken links and special files as
    unreadable entries instead of refusing them.
    """
    try:
        st = target.stat()
    except FileNotFoundError:
        if target.is_symlink() and not lenient:
            raise InvalidInput(f"{target} is a broken symlink; fix or remove it") from None
        raise NotFound(f"{target} does not exist; check the path") from None
    except PermissionError:
        raise InvalidInput(f"{target} cannot be read (permission denied)") from None
    except OSError as exc:  # ELOOP: a symlink that points at itself
        raise InvalidInput(f"{target} cannot be read: {exc.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        return "file", [Found(str(target), _relpath(target.name, target), st)]
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{target} is not a regular file or folder; only those can be added")
    if (target / DIRNAME).exists():
        raise InvalidInput(
            f"{target} holds a LoopML workspace ({DIRNAME}/); add a folder inside it"
        )
    found: list[Found] = []
    _walk(target, "", found, {(st.st_dev, st.st_ino)}, lenient=lenient)
    if not found and not allow_empty:
        raise InvalidInput(f"folder {target} holds no files; add a folder with data in it")
    found.sort(key=lambda f: f.relpath)
    return "folder", found


def _walk(
    folder: Path,
    prefix: str,
    found: list[Found],
    ancestors: set[tuple[int, int]],
    *,
    lenient: bool,
) -> None:
    try:
        entries = list(os.scandir(folder))
    except PermissionError:
        raise InvalidInput(f"folder {folder} cannot be read (permission denied)") from None
    for entry in entries:
        relpath = prefix + entry.name
        try:
            st = entry.stat()  # follows symlinks: a linked file is versioned by its content
        except OSError as exc:
            if lenient:
                found.append(Found(entry.path, relpath, entry.stat(follow_symlinks=False), False))
                continue
            if isinstance(exc, FileNotFoundError):
                raise InvalidInput(f"{entry.path} is a broken symlink; fix or remove it") from None
            raise InvalidInput(f"{entry.path} cannot be read: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode) and entry.name == DIRNAME:
            raise InvalidInput(
                f"{entry.path} is a LoopML workspace folder; add a folder that does not hold one"
            )
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                raise InvalidInput(
                    f"{entry.path} is a symlink loop (it leads back to a folder above it); "
                    "remove the link"
                )
            _walk(Path(entry.path), relpath + "/", found, ancestors | {key}, lenient=lenient)
        elif stat.S_ISREG(st.st_mode):
            found.append(Found(entry.path, _relpath(relpath, entry.path), st))
        elif lenient:
            found.append(Found(entry.path, relpath, st, False))
        else:
            raise InvalidInput(
                f"{entry.path} is not a regular file (a socket, pipe or device); move it out"
            )


def _relpath(relpath: str, where: Path | str) -> str:
    try:
        return clean_relpath(relpath, what="file name")
    except InvalidInput:
        raise InvalidInput(
            f"{where}: the name {relpath!r} cannot be stored portably (a backslash or "
            "percent-encoded separator); rename the file"
        ) from None
