"""Putting a version's files in place: reflink where the filesystem can, else a verified copy.

Hardlinks and symlinks to the blob store are opt-in (`[data] link = "hardlink,copy"` in
`.loopml/config.toml`). Linked files are read-only, because an edit through a link would
change the stored blob itself; copies and reflinks are independent and stay writable.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loopml import config
from loopml.core.blobs import Blob, ContentStore, LocalStorage
from loopml.core.blobs.local import make_dirs
from loopml.core.paths import clean_relpath, safe_join
from loopml.core.progress import file_progress
from loopml.core.workspace import Workspace
from loopml.data import tracked
from loopml.data.changes import Changes, compare
from loopml.data.entities import DatasetVersion
from loopml.data.ingest import JOBS
from loopml.data.manifest import FileEntry, Manifest
from loopml.data.stat_cache import StatCache
from loopml.data.versions import load_manifest
from loopml.errors import InvalidInput, NotFound

log = logging.getLogger("loopml")

LINK_TYPES = ("reflink", "hardlink", "symlink", "copy")
DEFAULT_LINKS = ("reflink", "copy")
# Errors that mean "this filesystem cannot make this link here": try the next link type.
_CANNOT_LINK = frozenset(
    (
        errno.EXDEV,
        errno.EOPNOTSUPP,
        errno.ENOTTY,
        errno.EINVAL,
        errno.EPERM,
        errno.EMLINK,
        errno.ENOSYS,
    )
)
_FICLONE = 0x40049409  # Linux ioctl: share the source's extents (Btrfs, XFS, OCFS2)


@dataclass(frozen=True)
class CheckoutResult:
    """Where a version was put and how many files were written, kept and removed."""

    path: Path
    written: int
    kept: int
    removed: int


def link_types(root: Path) -> tuple[str, ...]:
    """Return the configured link types, in the order they are tried."""
    value = config.section(root, "data").get("link", ",".join(DEFAULT_LINKS))
    types = tuple(t.strip() for t in str(value).split(",") if t.strip())
    unknown = [t for t in types if t not in LINK_TYPES]
    if unknown or not types:
        raise InvalidInput(
            f"[data] link = {value!r} in config.toml is not valid; use a comma-separated "
            f"list of {', '.join(LINK_TYPES)} (e.g. 'reflink,copy')"
        )
    shared = [t for t in types if t in ("hardlink", "symlink")]
    if shared and _writes_read_only_files():
        # Read-only files are what keep an edit through a link out of the stored blob, and
        # root writes to read-only files: for root, links would let an edit corrupt a version.
        log.warning(
            "LoopML: running as root, checkouts copy instead of using %s (root can write "
            "through read-only links into stored data)",
            " or ".join(shared),
        )
        types = tuple(t for t in types if t not in shared) or ("copy",)
    return types


def _writes_read_only_files() -> bool:
    """Return True when this process ignores read-only modes (root on POSIX)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def checkout(
    ws: Workspace, version: DatasetVersion, to: Path | str | None = None, *, force: bool = False
) -> CheckoutResult:
    """Make `to` (default: the path the version was added from) hold exactly `version`'s files.

    Files that already match are kept. Work that no version holds (files edited or created
    since the path's last add or checkout) is only replaced or removed with `force`.
    """
    manifest = version.manifest()
    dest = _destination(ws, version, to)
    if manifest.kind == "file" and dest.is_dir():
        raise InvalidInput(f"{dest} is a folder; {version.ref} is a file: give a file path")
    changes, at_risk = _plan(ws, version, manifest, dest)
    if at_risk and not force:
        shown = ", ".join(at_risk[:5]) + (" ..." if len(at_risk) > 5 else "")
        raise InvalidInput(
            f"{dest} holds {len(at_risk)} file(s) that no version has ({shown}); they would "
            "be lost: save them with `loopml data add`, or use --force"
        )
    links = link_types(ws.root)
    _require_blobs(ws, version, manifest)  # before anything here is touched
    if manifest.kind == "file":
        pairs = [(dest, manifest.files[0])] if not changes.clean else []
    else:
        if dest.exists() and not dest.is_dir():
            raise InvalidInput(f"{dest} is a file; {version.ref} is a folder: give a folder path")
        for relpath in changes.added:
            entry_path(dest, relpath).unlink()
        make_dirs(dest)
        wanted = set(changes.changed) | set(changes.removed)
        pairs = [(entry_path(dest, e.path), e) for e in manifest.files if e.path in wanted]
    _write_files(ws, pairs, links)
    if changes.added:
        _prune_empty_folders(dest)
    if dest.is_relative_to(ws.root) and not dest.is_relative_to(ws.settings.dir):
        key = tracked.key_for(ws.root, dest)
        tracked.record(
            ws.settings.dir,
            tracked.Tracked(
                key, version.name, version.version, version.manifest_digest, manifest.kind
            ),
        )
    return CheckoutResult(dest, len(pairs), len(manifest.files) - len(pairs), len(changes.added))


def _plan(
    ws: Workspace, version: DatasetVersion, manifest: Manifest, dest: Path
) -> tuple[Changes, list[str]]:
    """Return how `dest` differs from `version`, and the local work a checkout would lose:
    files that differ from the version the path last held (its recorded baseline)."""
    baseline = tracked.load(ws.settings.dir).get(tracked.key_for(ws.root, dest))
    cache = StatCache(ws.settings.dir)
    try:
        changes = compare(dest, manifest, cache)
        if baseline is not None and baseline.manifest != version.manifest_digest:
            local = compare(dest, load_manifest(ws, baseline.manifest), cache)
        else:
            local = changes
    finally:
        cache.close()
    if manifest.kind == "file":  # one file, compared by content whatever its name
        return changes, [dest.name] if changes.changed and local.changed else []
    replaced = set(changes.changed) | set(changes.added)
    return changes, sorted(replaced & (set(local.changed) | set(local.added)))


def entry_path(root: Path, relpath: str) -> Path:
    """Return where `relpath` lives under `root`: its folder resolved, so it cannot lead
    outside; its own name not, so a symlink there is replaced or removed, never followed."""
    folder, _, name = clean_relpath(relpath, what="manifest path").rpartition("/")
    return (safe_join(root, folder, what="manifest path") if folder else root.resolve()) / name


def _require_blobs(ws: Workspace, version: DatasetVersion, manifest: Manifest) -> None:
    missing = [e for e in manifest.files if not ws.blobs.has(Blob(e.digest, e.size))]
    if missing:
        raise NotFound(
            f"{len(missing)} of the {len(manifest.files)} files of {version.ref} are not in this "
            f"workspace's blob store (e.g. {missing[0].path}); run `loopml data pull "
            f"{version.ref}` first"
        )


def _destination(ws: Workspace, version: DatasetVersion, to: Path | str | None) -> Path:
    dest = _requested(ws, version, to)
    real, store = Path(os.path.realpath(dest)), ws.settings.dir.resolve()
    if real.is_relative_to(store) or store.is_relative_to(real):
        raise InvalidInput(
            f"{dest} is or holds the workspace's own {store.name}/ folder; check out elsewhere"
        )
    return dest


def _requested(ws: Workspace, version: DatasetVersion, to: Path | str | None) -> Path:
    if to is not None:
        dest = Path(os.path.abspath(to))
        # A trailing separator names a folder to put a file version in (as `cp` reads it).
        into = isinstance(to, str) and to.endswith(("/", os.sep))
        if version.kind == "file" and (dest.is_dir() or into):
            dest = dest / version.manifest().files[0].path
        return dest
    # The path this version was added from; else the one path holding this dataset now.
    holding = [k for k, e in tracked.load(ws.settings.dir).items() if e.dataset == version.name]
    if version.source not in holding and len(holding) == 1:
        return tracked.location(ws.root, holding[0])
    return tracked.location(ws.root, version.source)


def materialize(ws: Workspace, version: DatasetVersion) -> Path:
    """Return a read-only local copy of `version`, made once under `.loopml/checkouts/`."""
    manifest = version.manifest()
    home = ws.settings.dir / "checkouts" / version.manifest_digest.split(":", 1)[1][:32]
    done = home / ".complete"
    if not done.exists():
        lock_fd = os.open(ws.settings.dir / "checkouts.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            if not done.exists():
                shutil.rmtree(home, ignore_errors=True)
                files = home / "files"
                _write_files(ws, [(files / e.path, e) for e in manifest.files], link_types(ws.root))
                for entry in manifest.files:
                    (files / entry.path).chmod(entry.mode & 0o555)
                done.touch()
        finally:
            os.close(lock_fd)
    files = home / "files"
    return files / manifest.files[0].path if manifest.kind == "file" else files


def _write_files(
    ws: Workspace, pairs: list[tuple[Path, FileEntry]], links: tuple[str, ...]
) -> None:
    total = sum(entry.size for _, entry in pairs)
    # Link types this filesystem refuses are dropped after the first refusal (shared by the
    # threads; list.remove is atomic), so a failing reflink is tried once, not once per file.
    usable = list(links)
    with file_progress("Checking out", len(pairs), total) as advance:

        def one(pair: tuple[Path, FileEntry]) -> None:
            dest, entry = pair
            make_dirs(dest.parent, durable=False)
            _place(ws.blobs, entry, dest, usable)
            advance(1, entry.size)

        with ThreadPoolExecutor(JOBS) as pool:
            list(pool.map(one, pairs))


def _place(blobs: ContentStore, entry: FileEntry, dest: Path, links: list[str]) -> None:
    """Put blob `entry.digest` at `dest` with the first link type that works."""
    storage = blobs.storage
    source = storage.path_of(entry.digest) if isinstance(storage, LocalStorage) else None
    if source is not None and not blobs.has(Blob(entry.digest, entry.size)):
        source = None  # missing or damaged: the verified copy says which, and how to fix it
    for link in list(links):
        if link == "copy":
            blobs.copy_to(entry.digest, dest, durable=False, mode=entry.mode)
            return
        if source is None:
            continue
        tmp = dest.with_name(f".loopml-{os.urandom(6).hex()}-{dest.name}"[:255])
        try:
            linked = _link(link, source, tmp, entry.mode)
            if linked:
                tmp.replace(dest)
                return
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with contextlib.suppress(ValueError):  # another thread dropped it first
            links.remove(link)
    raise InvalidInput(
        f"none of the link types {', '.join(links) or '(none left)'} could place {dest}; "
        "add 'copy' to [data] link in config.toml"
    )


def _link(kind: str, source: Path, tmp: Path, mode: int) -> bool:
    """Try one link type; return False when this filesystem cannot do it."""
    try:
        if kind == "reflink":
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                with source.open("rb") as src:
                    fcntl.ioctl(fd, _FICLONE, src.fileno())
            finally:
                os.close(fd)
        elif kind == "hardlink":
            os.link(source, tmp)  # the blob is read-only, and so is this name for it
        else:
            tmp.symlink_to(source)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in _CANNOT_LINK:
            return False
        raise
    return True


def _prune_empty_folders(root: Path) -> None:
    for folder, _subfolders, _files in os.walk(root, topdown=False):
        if Path(folder) != root and not any(Path(folder).iterdir()):
            Path(folder).rmdir()
