"""Dataset versions in the metadata store: register, resolve refs, list, tag, lineage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from loopml.core.store import insert_for, now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.data.entities import DatasetSummary, DatasetVersion
from loopml.data.manifest import Manifest, read_manifest
from loopml.data.refs import LATEST, Ref, check_name, check_tag, parse_ref
from loopml.errors import NotFound, StoreError
from loopml.tracking.current import current_user

_V = db.dataset_versions
_RETRIES = 5


def register(
    ws: Workspace,
    name: str,
    manifest: Manifest,
    *,
    source: str,
    profile_digest: str | None = None,
    message: str = "",
) -> tuple[DatasetVersion, bool]:
    """Record `manifest` as the next version of `name`; return (version, created).

    When the latest version already holds exactly these files, nothing new is made and that
    version is returned with created=False.
    """
    check_name(name)
    blob = ws.blobs.put_bytes(manifest.to_bytes())
    for _attempt in range(_RETRIES):
        try:
            with ws.store.write() as conn:
                dataset_id = _ensure_dataset(conn, name)
                latest = conn.execute(
                    select(_V).where(_V.c.dataset_id == dataset_id).order_by(_V.c.version.desc())
                ).first()
                if latest is not None and latest.manifest_digest == blob.digest:
                    return _version(ws, name, latest, conn), False
                result = conn.execute(
                    _V.insert()
                    .values(
                        dataset_id=dataset_id,
                        version=1 if latest is None else latest.version + 1,
                        manifest_digest=blob.digest,
                        profile_digest=profile_digest,
                        kind=manifest.kind,
                        source=source,
                        num_files=len(manifest.files),
                        size=manifest.size,
                        message=message,
                        user=current_user(),
                        created_at=now_ms(),
                    )
                    .returning(_V)
                )
                return _version(ws, name, result.one(), conn), True
        except SQLIntegrityError:
            continue  # a concurrent add took this version number (PostgreSQL): number again
    raise StoreError(f"could not number a new version of {name!r}: too many concurrent adds")


def _ensure_dataset(conn: Connection, name: str) -> int:
    conn.execute(
        insert_for(conn, db.datasets)
        .values(name=name, created_at=now_ms())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    # Locked (on PostgreSQL; SQLite's write transaction already is exclusive), so concurrent
    # adds of one dataset number their versions one after another instead of colliding.
    query = select(db.datasets.c.id).where(db.datasets.c.name == name).with_for_update()
    return int(conn.execute(query).scalar_one())


def get(ws: Workspace, ref: str | Ref) -> DatasetVersion:
    """Return the version `ref` names (`churn`, `churn@v3`, `churn@latest`, `churn@prod`)."""
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    with ws.store.read() as conn:
        dataset_id = _require_dataset(conn, parsed.name)
        query = select(_V).where(_V.c.dataset_id == dataset_id)
        if parsed.version is not None:
            row = conn.execute(query.where(_V.c.version == parsed.version)).first()
        elif parsed.tag == LATEST:
            row = conn.execute(query.order_by(_V.c.version.desc()).limit(1)).first()
        else:
            tag = db.dataset_tags
            row = conn.execute(
                query.join(tag, tag.c.version_id == _V.c.id).where(
                    tag.c.dataset_id == dataset_id, tag.c.tag == parsed.tag
                )
            ).first()
        if row is None:
            raise _no_such_version(conn, parsed, dataset_id)
        return _version(ws, parsed.name, row, conn)


def _require_dataset(conn: Connection, name: str) -> int:
    found = conn.execute(select(db.datasets.c.id).where(db.datasets.c.name == name)).scalar()
    if found is None:
        names = conn.execute(select(db.datasets.c.name).order_by(db.datasets.c.name)).scalars()
        known = ", ".join(list(names)[:20]) or "none yet"
        raise NotFound(
            f"no dataset {name!r}; datasets: {known} (add one with `loopml data add PATH --name "
            f"{name}`)"
        )
    return int(found)


def _no_such_version(conn: Connection, ref: Ref, dataset_id: int) -> NotFound:
    if ref.version is None and ref.tag == LATEST:
        return NotFound(f"dataset {ref.name!r} has no versions")
    numbers = conn.execute(
        select(func.min(_V.c.version), func.max(_V.c.version)).where(_V.c.dataset_id == dataset_id)
    ).one()
    span = f"v{numbers[0]}" if numbers[0] == numbers[1] else f"v{numbers[0]}..v{numbers[1]}"
    if ref.version is not None:
        return NotFound(
            f"dataset {ref.name!r} has no version 'v{ref.version}'; versions are {span}"
        )
    tags = conn.execute(
        select(db.dataset_tags.c.tag)
        .where(db.dataset_tags.c.dataset_id == dataset_id)
        .order_by(db.dataset_tags.c.tag)
    ).scalars()
    known = ", ".join(tags) or "none"
    return NotFound(
        f"dataset {ref.name!r} has no tag {ref.tag!r} (tags: {known}); versions are {span}"
    )


def _version(ws: Workspace, name: str, row: Row[Any], conn: Connection) -> DatasetVersion:
    tags = conn.execute(
        select(db.dataset_tags.c.tag)
        .where(db.dataset_tags.c.version_id == row.id)
        .order_by(db.dataset_tags.c.tag)
    ).scalars()
    return DatasetVersion(
        id=row.id,
        name=name,
        version=row.version,
        manifest_digest=row.manifest_digest,
        profile_digest=row.profile_digest,
        kind=row.kind,
        source=row.source,
        num_files=row.num_files,
        size=row.size,
        message=row.message,
        user=row.user,
        created_at=row.created_at,
        tags=tuple(tags),
        workspace=ws,
    )


def history(ws: Workspace, name: str) -> list[DatasetVersion]:
    """Return every version of dataset `name`, newest first."""
    check_name(name)
    with ws.store.read() as conn:
        dataset_id = _require_dataset(conn, name)
        rows = conn.execute(
            select(_V).where(_V.c.dataset_id == dataset_id).order_by(_V.c.version.desc())
        ).all()
        return [_version(ws, name, row, conn) for row in rows]


def list_all(ws: Workspace) -> list[DatasetSummary]:
    """Return every dataset with its latest version, by name."""
    latest = (
        select(_V.c.dataset_id, func.max(_V.c.version).label("version"), func.count().label("n"))
        .group_by(_V.c.dataset_id)
        .subquery()
    )
    query = (
        select(db.datasets.c.name, latest.c.n, _V)
        .join(latest, latest.c.dataset_id == db.datasets.c.id)
        .join(_V, (_V.c.dataset_id == latest.c.dataset_id) & (_V.c.version == latest.c.version))
        .order_by(db.datasets.c.name)
    )
    with ws.store.read() as conn:
        return [
            DatasetSummary(row.name, int(row.n), _version(ws, row.name, row, conn))
            for row in conn.execute(query)
        ]


def tag(ws: Workspace, ref: str, name: str) -> DatasetVersion:
    """Point tag `name` at the version `ref` names (moving it if it exists); return it."""
    check_tag(name)
    target = get(ws, ref)
    with ws.store.write() as conn:
        dataset_id = _require_dataset(conn, target.name)
        statement = insert_for(conn, db.dataset_tags).values(
            dataset_id=dataset_id, tag=name, version_id=target.id, updated_at=now_ms()
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["dataset_id", "tag"],
                set_={"version_id": target.id, "updated_at": statement.excluded.updated_at},
            )
        )
    return get(ws, target.ref)


def untag(ws: Workspace, dataset: str, name: str) -> None:
    """Remove tag `name` from dataset `dataset`."""
    check_name(dataset)
    with ws.store.write() as conn:
        dataset_id = _require_dataset(conn, dataset)
        removed = conn.execute(
            db.dataset_tags.delete().where(
                db.dataset_tags.c.dataset_id == dataset_id, db.dataset_tags.c.tag == name
            )
        ).rowcount
    if not removed:
        raise NotFound(f"dataset {dataset!r} has no tag {name!r}")


def log_input(ws: Workspace, run_id: str, version: DatasetVersion, context: str = "") -> None:
    """Record that run `run_id` read `version` (idempotent)."""
    with ws.store.write() as conn:
        run = conn.execute(select(db.runs.c.id).where(db.runs.c.id == run_id)).scalar()
        if run is None:
            raise NotFound(f"run {run_id!r} does not exist")
        link_input(conn, run_id, version, context)


def link_input(conn: Connection, run_id: str, version: DatasetVersion, context: str = "") -> None:
    """Record, in the caller's write transaction, that an existing run read `version`."""
    conn.execute(
        insert_for(conn, db.run_inputs)
        .values(run_id=run_id, version_id=version.id, context=context, created_at=now_ms())
        .on_conflict_do_nothing(index_elements=["run_id", "version_id"])
    )


def used_by(ws: Workspace, ref: str) -> list[tuple[str, str, str, str]]:
    """Return (run id, run name, status, context) of every run that read the version `ref`."""
    version = get(ws, ref)
    query = (
        select(db.runs.c.id, db.runs.c.name, db.runs.c.status, db.run_inputs.c.context)
        .join(db.run_inputs, db.run_inputs.c.run_id == db.runs.c.id)
        .where(db.run_inputs.c.version_id == version.id)
        .order_by(db.runs.c.start_time.desc())
    )
    with ws.store.read() as conn:
        return [(r.id, r.name, r.status, r.context) for r in conn.execute(query)]


def inputs_of(ws: Workspace, run_id: str) -> list[DatasetVersion]:
    """Return the dataset versions run `run_id` read."""
    query = (
        select(db.datasets.c.name, _V)
        .join(_V, _V.c.dataset_id == db.datasets.c.id)
        .join(db.run_inputs, db.run_inputs.c.version_id == _V.c.id)
        .where(db.run_inputs.c.run_id == run_id)
        .order_by(db.datasets.c.name, _V.c.version)
    )
    with ws.store.read() as conn:
        return [_version(ws, row.name, row, conn) for row in conn.execute(query)]


def referenced_digests(ws: Workspace) -> set[str]:
    """Return every blob digest a dataset version needs: manifests, their files, profiles."""
    with ws.store.read() as conn:
        rows = conn.execute(select(_V.c.manifest_digest, _V.c.profile_digest)).all()
    return _blobs_of(ws, [(row[0], row[1]) for row in rows])


def load_manifest(ws: Workspace, digest: str) -> Manifest:
    """Return the manifest stored under `digest`, verified."""
    return read_manifest(ws.blobs, digest)


def digests_of(ws: Workspace, versions: Iterable[DatasetVersion]) -> set[str]:
    """Return the blobs the given versions need (manifest, files, profile)."""
    return _blobs_of(ws, [(v.manifest_digest, v.profile_digest) for v in versions])


def _blobs_of(ws: Workspace, versions: Iterable[tuple[str, str | None]]) -> set[str]:
    found: set[str] = set()
    for manifest_digest, profile_digest in versions:
        found.add(manifest_digest)
        if profile_digest:
            found.add(profile_digest)
        found |= load_manifest(ws, manifest_digest).digests()
    return found
