"""Remotes: named blob stores that datasets are pushed to and pulled from.

Configured in `.loopml/config.toml`:

    [remotes.origin]
    url = "s3://bucket/datasets"       # any fsspec URL, or a path
    default = true                     # the remote push and pull use unless told
    [remotes.origin.options]           # passed to the fsspec filesystem
    endpoint_url = "http://127.0.0.1:9000"
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loopml import config
from loopml.core.blobs import ContentStore, storage_from_uri
from loopml.core.blobs.transfer import TransferResult, transfer
from loopml.core.progress import file_progress
from loopml.core.workspace import Workspace
from loopml.data import versions
from loopml.data.entities import DatasetVersion
from loopml.errors import AlreadyExists, InvalidInput, NotFound

_REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Object stores answer each request in tens of milliseconds: many requests in flight hide that.
JOBS = min(32, 4 * (os.cpu_count() or 1))


@dataclass(frozen=True)
class Remote:
    """A named remote: its URL and the fsspec options to open it with."""

    name: str
    url: str
    options: dict[str, Any]
    default: bool


def list_remotes(ws: Workspace) -> list[Remote]:
    """Return the configured remotes, by name."""
    found = []
    for name, body in sorted(config.section(ws.root, "remotes").items()):
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise InvalidInput(f'[remotes.{name}] in config.toml needs url = "..."')
        options = body.get("options", {})
        if not isinstance(options, dict):
            raise InvalidInput(f"[remotes.{name}.options] in config.toml must be a table")
        found.append(Remote(name, body["url"], dict(options), body.get("default") is True))
    return found


def _write(ws: Workspace, remote: Remote) -> None:
    body: dict[str, object] = {"url": remote.url}
    if remote.default:
        body["default"] = True
    if remote.options:
        body["options"] = remote.options
    config.set_table(ws.root, f"remotes.{remote.name}", body)


def add_remote(ws: Workspace, name: str, url: str, *, default: bool = False) -> Remote:
    """Name a remote; the first one becomes the default."""
    if not isinstance(name, str) or not _REMOTE_NAME.fullmatch(name):
        raise InvalidInput(
            f"remote name {name!r} is not valid: use up to 64 letters, digits, '_' or '-'"
        )
    if not isinstance(url, str) or not url:
        raise InvalidInput("a remote needs a URL, e.g. s3://bucket/prefix or /mnt/share/loopml")
    existing = list_remotes(ws)
    if any(r.name == name for r in existing):
        raise AlreadyExists(f"remote {name!r} exists; remove it first to change its URL")
    storage_from_uri(url)  # refuse an unusable URL now, not at the first push
    default = default or not existing
    if default:
        for other in existing:
            if other.default:
                _write(ws, Remote(other.name, other.url, other.options, False))
    _write(ws, Remote(name, url, {}, default))
    return next(r for r in list_remotes(ws) if r.name == name)


def remove_remote(ws: Workspace, name: str) -> None:
    """Forget remote `name` (its blobs stay where they are)."""
    get_remote(ws, name)
    config.set_table(ws.root, f"remotes.{name}", None)


def get_remote(ws: Workspace, name: str | None) -> Remote:
    """Return remote `name`, or the default remote."""
    remotes = list_remotes(ws)
    if not remotes:
        raise NotFound("no remote is configured; add one with `loopml data remote add NAME URL`")
    for remote in remotes:
        if remote.name == name or (name is None and remote.default):
            return remote
    if name is None:
        raise InvalidInput(
            "no default remote; pass --remote NAME or run `loopml data remote add NAME URL "
            "--default`"
        )
    names = ", ".join(r.name for r in remotes)
    raise NotFound(f"no remote {name!r}; remotes: {names}")


def _store(remote: Remote) -> ContentStore:
    return ContentStore(storage_from_uri(remote.url, **remote.options))


def _selected(ws: Workspace, refs: Sequence[str] | None) -> list[DatasetVersion]:
    if refs:
        return [versions.get(ws, ref) for ref in refs]
    return [v for summary in versions.list_all(ws) for v in versions.history(ws, summary.name)]


def push(
    ws: Workspace, *, remote: str | None = None, refs: Sequence[str] | None = None
) -> TransferResult:
    """Copy the blobs of the given versions (default: all) that the remote lacks."""
    target = get_remote(ws, remote)
    digests = versions.digests_of(ws, _selected(ws, refs))
    return transfer(
        ws.blobs,
        _store(target),
        sorted(digests),
        jobs=JOBS,
        progress=functools.partial(file_progress, f"Pushing to {target.name}"),
    )


def pull(
    ws: Workspace, *, remote: str | None = None, refs: Sequence[str] | None = None
) -> TransferResult:
    """Fetch the blobs of the given versions (default: all) that this workspace lacks."""
    source = _store(get_remote(ws, remote))
    chosen = _selected(ws, refs)
    # Manifests first: they say which file blobs the versions need.
    heads = {v.manifest_digest for v in chosen} | {
        v.profile_digest for v in chosen if v.profile_digest
    }
    first = transfer(source, ws.blobs, sorted(heads), jobs=JOBS)
    files = versions.digests_of(ws, chosen) - heads
    rest = transfer(
        source,
        ws.blobs,
        sorted(files),
        jobs=JOBS,
        progress=functools.partial(file_progress, "Pulling"),
    )
    return TransferResult(
        first.copied + rest.copied, first.skipped + rest.skipped, first.bytes + rest.bytes
    )
