"""The stat cache: (inode, mtime, size) -> digest, so unchanged files are never hashed again.

It is per machine (inodes mean nothing elsewhere), so it lives in its own SQLite file under
`.loopml/`, never in a shared metadata store; losing it only costs re-hashing. It uses the
standard library's sqlite3, which keeps `loopml data status` free of heavier imports.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

FILENAME = "stat-cache.sqlite"
# A file written within one timestamp tick of being hashed may change again without changing
# its mtime (git's "racily clean" entries); such entries are re-hashed once more before use.
RACY_NS = 20_000_000
_TABLE = "files_v2"  # a new name when the key changes: an older cache is simply not used

# inode, mtime_ns, ctime_ns, size. ctime too: `cp -p`, `rsync -t` and tar put an old mtime
# back on new bytes, but nothing can set ctime (git's index checks it for the same reason).
Key = tuple[int, int, int, int]


def stat_key(st: os.stat_result) -> Key:
    """Return the part of a stat result that changes whenever the file's bytes do."""
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class StatCache:
    """Digests of files by absolute path, trusted only while their stat key is unchanged."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILENAME
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._conn = self._connect()
            except sqlite3.DatabaseError:
                # A damaged cache is only lost time: start a new one.
                self.path.unlink(missing_ok=True)
                self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # a cache: a lost write only means a re-hash
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} (path TEXT PRIMARY KEY, ino INTEGER, "
            "mtime_ns INTEGER, ctime_ns INTEGER, size INTEGER, digest TEXT, hashed_ns INTEGER)"
        )
        return conn

    def lookup(self, paths: Iterable[tuple[str, Key]]) -> dict[str, str]:
        """Return the trusted digest of each (path, key) whose cached entry still matches."""
        wanted = dict(paths)
        if not wanted or not self.path.exists():
            return {}
        found: dict[str, str] = {}
        rows = self._rows(list(wanted))
        for path, ino, mtime_ns, ctime_ns, size, digest, hashed_ns in rows:
            key = (ino, mtime_ns, ctime_ns, size)
            if wanted.get(path) == key and max(mtime_ns, ctime_ns) + RACY_NS < hashed_ns:
                found[path] = digest
        return found

    def _rows(self, paths: list[str]) -> list[tuple[str, int, int, int, int, str, int]]:
        db = self._db()
        rows: list[tuple[str, int, int, int, int, str, int]] = []
        for start in range(0, len(paths), 500):  # SQLite's bound-parameter limit
            chunk = paths[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT * FROM {_TABLE} WHERE path IN ({marks})"  # noqa: S608
            rows += db.execute(query, chunk).fetchall()
        return rows

    def store(self, entries: Iterable[tuple[str, Key, str, int]]) -> None:
        """Remember (path, key, digest, hashed_ns) for each file just hashed."""
        rows = [(path, *key, digest, hashed_ns) for path, key, digest, hashed_ns in entries]
        if not rows:
            return
        db = self._db()
        with db:
            db.execute("BEGIN IMMEDIATE")
            insert = f"INSERT OR REPLACE INTO {_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
            db.executemany(insert, rows)

    def close(self) -> None:
        """Close the database file."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def now_ns() -> int:
    """Return the wall-clock time in nanoseconds, the clock file mtimes are on."""
    return time.time_ns()
