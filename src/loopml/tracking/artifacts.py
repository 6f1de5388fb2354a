"""Run artifacts: files and folders stored by digest, listed by path, downloaded verified."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from loopml.core.paths import clean_relpath, safe_join
from loopml.core.progress import file_progress
from loopml.core.store import insert_for, now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.tracking.entities import ArtifactInfo
from loopml.tracking.runs import check_run_id, require_active


def log_path(
    ws: Workspace, run_id: str, local: Path | str, artifact_path: str | None = None
) -> list[ArtifactInfo]:
    """Store a file, or a folder and everything under it, as artifacts of a run.

    A file lands at `<artifact_path>/<name>`; a folder keeps its own name, as `cp -r` does.
    """
    check_run_id(run_id)
    source = Path(local).expanduser()
    if not source.exists():
        raise NotFound(f"cannot log artifact {str(source)!r}: no such file or folder")
    prefix = clean_relpath(artifact_path, what="artifact path") + "/" if artifact_path else ""
    name = source.resolve().name  # "." and "dir/.." name the folder they point at
    if source.is_file():
        files = [(source, prefix + name)]
    else:
        files = sorted(
            (p, prefix + name + "/" + p.relative_to(source).as_posix())
            for p in source.rglob("*")
            if p.is_file()
        )
    # Every name is checked before any bytes are stored, so a bad one leaves nothing behind.
    pairs = [(path, clean_relpath(name, what="artifact path")) for path, name in files]
    with ws.blob_lock():  # garbage collection waits until the rows point at the blobs
        stored = _put_all(ws, pairs)
        _record(ws, run_id, stored)
    return stored


def _put_all(ws: Workspace, pairs: list[tuple[Path, str]]) -> list[ArtifactInfo]:
    """Store files, with a progress bar (files and bytes) when there is a lot to store."""
    sizes = [path.stat().st_size for path, _ in pairs]
    stored = []
    with file_progress("Storing artifacts", len(pairs), sum(sizes)) as advance:
        for (path, name), size in zip(pairs, sizes, strict=True):
            stored.append(_put(ws, path, name))
            advance(1, size)
    return stored


def log_bytes(ws: Workspace, run_id: str, data: bytes, artifact_file: str) -> ArtifactInfo:
    """Store bytes as the artifact `artifact_file`."""
    name = clean_relpath(artifact_file, what="artifact file")
    with ws.blob_lock():
        blob = ws.blobs.put_bytes(data)
        info = ArtifactInfo(name, blob.digest, blob.size)
        _record(ws, check_run_id(run_id), [info])
    return info


def referenced_digests(ws: Workspace) -> set[str]:
    """Return the digest of every blob a run's artifact points at (for garbage collection)."""
    with ws.store.read() as conn:
        return set(conn.execute(select(db.artifacts.c.digest).distinct()).scalars())


def log_dict(ws: Workspace, run_id: str, obj: Any, artifact_file: str) -> ArtifactInfo:
    """Store a dict as JSON (or YAML when the name ends in .yaml/.yml and PyYAML is present)."""
    if artifact_file.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ModuleNotFoundError as exc:
            raise InvalidInput(
                f"{artifact_file!r} needs PyYAML: pip install pyyaml, or use .json"
            ) from exc
        text = yaml.safe_dump(obj, sort_keys=False)
    else:
        try:
            text = json.dumps(obj, indent=2, default=str)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"cannot store {artifact_file!r} as JSON: {exc}") from exc
    return log_bytes(ws, run_id, text.encode(), artifact_file)


def list_artifacts(ws: Workspace, run_id: str, path: str | None = None) -> list[ArtifactInfo]:
    """Return the artifacts of a run, all of them or those at or under `path`."""
    a = db.artifacts.c
    query = (
        select(a.path, a.digest, a.size).where(a.run_id == check_run_id(run_id)).order_by(a.path)
    )
    if path:
        prefix = clean_relpath(path, what="artifact path")
        query = query.where(or_(a.path == prefix, a.path.startswith(prefix + "/", autoescape=True)))
    with ws.store.read() as conn:
        return [ArtifactInfo(*row) for row in conn.execute(query)]


def download(
    ws: Workspace,
    run_id: str,
    path: str | None = None,
    dest: Path | str | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Copy artifacts to `dest` (default: a new temporary folder), verifying every digest.

    Existing files are not replaced unless `overwrite`; nothing is copied if one would be.
    Returns the downloaded file when `path` names one file, else the folder.
    """
    found = list_artifacts(ws, run_id, path)
    if not found:
        where = f" at {path!r}" if path else ""
        raise NotFound(
            f"run {run_id} has no artifact{where}; `loopml runs artifacts {run_id}` lists them"
        )
    root = Path(dest).expanduser() if dest is not None else Path(tempfile.mkdtemp(prefix="loopml-"))
    targets = [(info, safe_join(root, info.path, what="artifact path")) for info in found]
    existing = [str(target) for _, target in targets if target.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise AlreadyExists(
            f"{existing[0]}{more} already exists; download elsewhere, or overwrite (--force)"
        )
    root.mkdir(parents=True, exist_ok=True)
    for info, target in targets:
        ws.blobs.copy_to(info.digest, target)
    single = len(found) == 1 and path is not None and found[0].path == clean_relpath(path)
    return safe_join(root, found[0].path) if single else root


def read_bytes(ws: Workspace, run_id: str, path: str) -> bytes:
    """Return one artifact's bytes, verified against its digest."""
    name = clean_relpath(path, what="artifact path")
    a = db.artifacts.c
    with ws.store.read() as conn:
        row = conn.execute(
            select(a.digest).where(and_(a.run_id == check_run_id(run_id), a.path == name))
        ).first()
    if row is None:
        raise NotFound(f"run {run_id} has no artifact {name!r}")
    return ws.blobs.read_bytes(row[0])


def _put(ws: Workspace, path: Path, name: str) -> ArtifactInfo:
    blob = ws.blobs.put_file(path)
    return ArtifactInfo(name, blob.digest, blob.size)


def _record(ws: Workspace, run_id: str, infos: list[ArtifactInfo]) -> None:
    if not infos:
        return
    now = now_ms()
    rows = [
        {"run_id": run_id, "path": i.path, "digest": i.digest, "size": i.size, "created_at": now}
        for i in infos
    ]
    with ws.store.write() as conn:
        require_active(conn, run_id)
        # The clash check reads, then writes: hold the run row so two writers of one run take
        # turns on PostgreSQL (SQLite's BEGIN IMMEDIATE already serialises every writer).
        conn.execute(select(db.runs.c.id).where(db.runs.c.id == run_id).with_for_update())
        _refuse_clashes(conn, run_id, [i.path for i in infos])
        stmt = insert_for(conn, db.artifacts)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "path"],
                set_={
                    "digest": stmt.excluded.digest,
                    "size": stmt.excluded.size,
                    "created_at": now,
                },
            ),
            rows,
        )


def _refuse_clashes(conn: Connection, run_id: str, paths: list[str]) -> None:
    """Refuse a path that needs a folder where a file is, or a file where a folder is."""
    a = db.artifacts.c
    files = {row[0] for row in conn.execute(select(a.path).where(a.run_id == run_id))}
    files.update(paths)
    folders = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
    clash = sorted(files & folders)
    if clash:
        raise InvalidInput(
            f"artifact {clash[0]!r} of run {run_id} would be both a file and a folder; "
            "log one of them under another name"
        )
