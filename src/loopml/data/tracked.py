"""The paths of this workspace that hold a dataset version, for `status` and `checkout`.

Kept as one small JSON file under `.loopml/` (per machine, like git's index): `status` reads
it without opening the metadata store, which keeps that command fast.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from loopml.core.blobs.local import write_atomically
from loopml.errors import InvalidInput

FILENAME = "tracked.json"


@dataclass(frozen=True)
class Tracked:
    """A workspace path and the dataset version last added from or checked out to it."""

    path: str  # relative to the workspace root when inside it, else absolute
    dataset: str
    version: int
    manifest: str  # digest of the version's manifest
    kind: str

    @property
    def ref(self) -> str:
        """Return `dataset@vN`."""
        return f"{self.dataset}@v{self.version}"


def key_for(root: Path, path: Path) -> str:
    """Return how `path` is recorded: relative to `root` when inside it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return str(absolute)


def location(root: Path, key: str) -> Path:
    """Return the absolute path of a recorded key."""
    return Path(key) if Path(key).is_absolute() else root / key


def load(dot_dir: Path) -> dict[str, Tracked]:
    """Return the tracked paths, by key."""
    path = dot_dir / FILENAME
    try:
        body = json.loads(path.read_bytes())
        return {key: Tracked(key, **entry) for key, entry in body["paths"].items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f"{path} is damaged ({exc}); delete it and check out or add your datasets again"
        ) from exc


@contextmanager
def editing(dot_dir: Path) -> Iterator[dict[str, Tracked]]:
    """Yield the tracked paths for changing, under a lock; they are written back on exit."""
    fd = os.open(dot_dir / f"{FILENAME}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        entries = load(dot_dir)
        yield entries
        body = {
            "format": 1,
            "paths": {
                key: {k: v for k, v in asdict(entry).items() if k != "path"}
                for key, entry in sorted(entries.items())
            },
        }
        data = json.dumps(body, indent=1).encode()
        write_atomically(dot_dir / FILENAME, lambda out: out.write(data))
    finally:
        os.close(fd)


def record(dot_dir: Path, entry: Tracked) -> None:
    """Record that `entry.path` now holds `entry`'s version."""
    with editing(dot_dir) as entries:
        # A path inside another tracked folder, or holding one, would be reported twice.
        for key in list(entries):
            if key == entry.path or _nested(key, entry.path):
                del entries[key]
        entries[entry.path] = entry


def _nested(a: str, b: str) -> bool:
    return a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")
