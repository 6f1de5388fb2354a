"""Append-only journals that outlive their process: the part of logging that never loses data.

A journal is one file per writer, locked with `flock` for as long as its process keeps it
open. The kernel drops the lock when the process dies, however it dies, so a journal whose
lock can be taken belongs to a dead process and holds records to replay. Records are text
lines; a torn last line (the process died mid-write) is ignored.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".journal"
REPLAYING = ".replaying"  # a journal being replayed; replayed again if its replayer dies
TEMP_GRACE_S = 60.0


class Journal:
    """An open journal owned by this process; `append` is one unbuffered write."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def create(cls, directory: Path, name: str) -> Journal:
        """Create and lock `<directory>/<name>.journal`."""
        directory.mkdir(parents=True, exist_ok=True)
        # Lock under a temporary name and rename: a recovering process never sees the
        # final name unlocked, so it cannot mistake a journal being born for an abandoned one.
        tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = directory / f"{name}{SUFFIX}"
        tmp.rename(path)
        return cls(path, fd)

    def append(self, data: str) -> None:
        """Append complete lines; they survive the process being killed once this returns."""
        view = memoryview(data.encode())
        while view:
            view = view[os.write(self._fd, view) :]

    def close_inherited(self) -> None:
        """In a forked child, drop this process's copy of the descriptor (the lock stays)."""
        if self._fd >= 0:
            os.close(self._fd)  # close, never unlock: LOCK_UN would release the parent's lock
            self._fd = -1

    def close(self, *, remove: bool = True) -> None:
        """Close the journal; with `remove`, delete it first, while the lock is still held."""
        if self._fd < 0:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = -1


@dataclass
class Abandoned:
    """A journal whose owner died; this process holds its lock until `discard` or `release`."""

    name: str
    path: Path
    fd: int

    def lines(self) -> list[str]:
        """Return the complete lines written before the owner died."""
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        return complete.decode("utf-8", errors="replace").splitlines()

    def discard(self) -> None:
        """Delete the journal once its records are safely stored."""
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def release(self) -> None:
        """Give the lock back without deleting, so a later process can retry."""
        os.close(self.fd)


def abandoned(directory: Path) -> Iterator[Abandoned]:
    """Yield the journals in `directory` whose owning process is gone."""
    if not directory.is_dir():
        return
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            _remove_stale_temp(entry)  # a process died between create and rename
            continue
        if entry.suffix not in (SUFFIX, REPLAYING):
            continue
        fd = _try_lock(entry)
        if fd is None:
            continue
        # Renamed while locked, so other replayers asking "is any writer of this run still
        # alive?" do not mistake this one for a live owner (they look at *.journal only).
        claimed = entry.with_suffix(REPLAYING)
        if entry != claimed:
            entry.rename(claimed)
        yield Abandoned(entry.stem, claimed, fd)


def has_journals(directory: Path) -> bool:
    """Return True when `directory` holds any journal, live or abandoned."""
    try:
        with os.scandir(directory) as entries:
            return any(True for _ in entries)
    except FileNotFoundError:
        return False


def _try_lock(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None  # its owner finished and removed it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None  # its owner is alive
    if not path.exists():  # removed between open and lock by an owner that finished
        os.close(fd)
        return None
    return fd


def _remove_stale_temp(path: Path) -> None:
    # A young temp file may be one another process is about to lock: leave it a minute.
    try:
        if time.time() - path.stat().st_mtime < TEMP_GRACE_S:
            return
    except FileNotFoundError:
        return
    fd = _try_lock(path)
    if fd is not None:
        path.unlink(missing_ok=True)
        os.close(fd)


def is_live(path: Path) -> bool:
    """Return True if the journal at `path` exists and a running process holds it."""
    fd = _try_lock(path)
    if fd is None:
        return path.exists()
    os.close(fd)
    return False
