"""The registry's rows: registered models, their versions, tags, aliases and alias history."""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from loopml.core.store import insert_for, now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, InvalidState, NotFound, StoreError
from loopml.registry.uris import ModelRef, check_name, parse
from loopml.tracking.current import check_key, current_user

_RETRIES = 5
_M, _V, _A, _T, _E = (
    db.registered_models,
    db.model_versions,
    db.model_aliases,
    db.model_tags,
    db.alias_events,
)


@dataclass(frozen=True)
class ModelVersionRecord:
    """One version of a registered model."""

    name: str
    version: int
    package_digest: str
    flavor: str
    run_id: str | None
    source: str
    description: str
    user: str
    created_at: int
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """Return `models:/name/N`."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "package_digest": self.package_digest,
            "flavor": self.flavor,
            "run_id": self.run_id,
            "source": self.source,
            "description": self.description,
            "user": self.user,
            "created_at": self.created_at,
            "aliases": list(self.aliases),
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class RegisteredModelRecord:
    """A registered model: its name, description, tags, aliases and latest version."""

    name: str
    description: str
    created_at: int
    updated_at: int
    versions: int
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "versions": self.versions,
            "latest_version": self.latest_version,
            "aliases": dict(self.aliases),
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: from which version to which, by whom, why, past which gate."""

    alias: str
    from_version: int | None
    to_version: int | None
    user: str
    reason: str
    gate_result: dict[str, Any] | None
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "user": self.user,
            "reason": self.reason,
            "gate_result": self.gate_result,
            "created_at": self.created_at,
        }


def register_version(
    ws: Workspace,
    name: str,
    package_digest: str,
    flavor: str,
    *,
    run_id: str | None = None,
    source: str = "",
    description: str = "",
    tags: Mapping[str, Any] | None = None,
) -> ModelVersionRecord:
    """Record a stored model package as the next version of model `name` (made if new)."""
    check_name(name)
    tag_items = {check_key(k, "tag"): str(v) for k, v in (tags or {}).items()}
    from loopml.registry.package import read_package

    package = read_package(ws, package_digest)  # a stored, whole package, or refused here
    if package.flavor != flavor:
        raise InvalidInput(
            f"package {package_digest} is a {package.flavor!r} model, not {flavor!r}"
        )
    for _attempt in range(_RETRIES):
        try:
            with ws.store.write() as conn:
                model_id = _ensure_model(conn, name)
                latest = conn.execute(
                    select(func.max(_V.c.version)).where(_V.c.model_id == model_id)
                ).scalar()
                version = 1 if latest is None else int(latest) + 1
                now = now_ms()
                conn.execute(
                    _V.insert().values(
                        model_id=model_id,
                        version=version,
                        package_digest=package_digest,
                        flavor=flavor,
                        run_id=run_id,
                        source=source,
                        description=description,
                        user=current_user(),
                        created_at=now,
                    )
                )
                if tag_items:
                    conn.execute(
                        _T.insert(),
                        [
                            {"model_id": model_id, "version": version, "key": k, "value": v}
                            for k, v in tag_items.items()
                        ],
                    )
                conn.execute(update(_M).where(_M.c.id == model_id).values(updated_at=now))
                return _version_record(conn, name, model_id, version)
        except SQLIntegrityError:
            continue  # a concurrent registration took this number (PostgreSQL): number again
    raise StoreError(f"could not number a new version of {name!r}: too many concurrent writers")


def get_version(ws: Workspace, name: str, version: int | None = None) -> ModelVersionRecord:
    """Return version `version` of model `name` (the latest when None)."""
    with ws.store.read() as conn:
        model_id = _require_model(conn, name)
        if version is None:
            found = conn.execute(
                select(func.max(_V.c.version)).where(_V.c.model_id == model_id)
            ).scalar()
            if found is None:
                raise NotFound(f"model {name!r} has no versions yet")
            version = int(found)
        return _version_record(conn, name, model_id, version)


def resolve(ws: Workspace, uri: str | ModelRef) -> ModelVersionRecord:
    """Return the registered version a `models:/` URI points at."""
    ref = uri if isinstance(uri, ModelRef) else parse(uri)
    if ref.name is None:
        raise InvalidInput(f"{ref} is a run's model, not a registered version")
    if ref.alias is None:
        return get_version(ws, ref.name, ref.version)
    with ws.store.read() as conn:
        model_id = _require_model(conn, ref.name)
        version = conn.execute(
            select(_A.c.version).where(_A.c.model_id == model_id, _A.c.alias == ref.alias)
        ).scalar()
        if version is None:
            raise NotFound(
                f"model {ref.name!r} has no alias {ref.alias!r}; {_aliases_text(conn, model_id)}"
            )
        return _version_record(conn, ref.name, model_id, int(version))


def list_models(ws: Workspace) -> list[RegisteredModelRecord]:
    """Return every registered model, by name."""
    with ws.store.read() as conn:
        rows = conn.execute(select(_M).order_by(_M.c.name)).mappings().all()
        return [_model_record(conn, row) for row in rows]


def get_model(ws: Workspace, name: str) -> RegisteredModelRecord:
    """Return one registered model."""
    with ws.store.read() as conn:
        model_id = _require_model(conn, name)
        row = conn.execute(select(_M).where(_M.c.id == model_id)).mappings().one()
        return _model_record(conn, row)


def versions(ws: Workspace, name: str) -> list[ModelVersionRecord]:
    """Return every version of model `name`, newest first."""
    with ws.store.read() as conn:
        model_id = _require_model(conn, name)
        numbers = conn.execute(
            select(_V.c.version).where(_V.c.model_id == model_id).order_by(_V.c.version.desc())
        ).scalars()
        return [_version_record(conn, name, model_id, int(n)) for n in numbers]


def set_alias(
    ws: Workspace,
    name: str,
    alias: str,
    version: int,
    *,
    reason: str = "",
    gate_result: Mapping[str, Any] | None = None,
    expected: int | EllipsisType | None = ...,
) -> AliasEvent:
    """Point `alias` at `version` of model `name`, and record the move in its history.

    With `expected` (a version, or None for an alias not set), the move happens only if the
    alias still points there: a gate's verdict against one champion never replaces another.
    """
    check_name(alias, "alias")
    if alias == "latest":
        raise InvalidInput("'latest' always means the newest version; choose another alias")
    gate_json = json.dumps(dict(gate_result), sort_keys=True) if gate_result else None
    with ws.store.write() as conn:
        model_id = _require_model(conn, name, lock=True)
        version = _require_version(conn, name, model_id, version)
        previous = conn.execute(
            select(_A.c.version).where(_A.c.model_id == model_id, _A.c.alias == alias)
        ).scalar()
        if expected is not ... and previous != expected:
            was = f"v{expected}" if expected is not None else "not set"
            now_at = f"v{previous}" if previous is not None else "removed"
            raise InvalidState(
                f"{name}@{alias} moved while this was decided (it was {was}, it is {now_at} "
                "now); nothing was changed: check again against the new version"
            )
        now = now_ms()
        conn.execute(
            insert_for(conn, _A)
            .values(model_id=model_id, alias=alias, version=version, updated_at=now)
            .on_conflict_do_update(
                index_elements=["model_id", "alias"], set_={"version": version, "updated_at": now}
            )
        )
        return _record_event(
            conn,
            model_id,
            alias,
            previous=previous,
            version=version,
            reason=reason,
            gate_json=gate_json,
            now=now,
        )


def delete_alias(ws: Workspace, name: str, alias: str, *, reason: str = "") -> AliasEvent:
    """Remove `alias` from model `name`, recording it in the alias history."""
    with ws.store.write() as conn:
        model_id = _require_model(conn, name, lock=True)
        previous = conn.execute(
            select(_A.c.version).where(_A.c.model_id == model_id, _A.c.alias == alias)
        ).scalar()
        if previous is None:
            raise NotFound(
                f"model {name!r} has no alias {alias!r}; {_aliases_text(conn, model_id)}"
            )
        conn.execute(delete(_A).where(_A.c.model_id == model_id, _A.c.alias == alias))
        return _record_event(
            conn,
            model_id,
            alias,
            previous=previous,
            version=None,
            reason=reason,
            gate_json=None,
            now=now_ms(),
        )


def alias_history(ws: Workspace, name: str, alias: str | None = None) -> list[AliasEvent]:
    """Return the moves of one alias (or of every alias) of model `name`, oldest first."""
    with ws.store.read() as conn:
        model_id = _require_model(conn, name)
        query = select(_E).where(_E.c.model_id == model_id).order_by(_E.c.id)
        if alias is not None:
            query = query.where(_E.c.alias == alias)
        return [
            AliasEvent(
                row["alias"],
                row["from_version"],
                row["to_version"],
                row["user"],
                row["reason"],
                json.loads(row["gate_result"]) if row["gate_result"] else None,
                row["created_at"],
            )
            for row in conn.execute(query).mappings()
        ]


def set_description(ws: Workspace, name: str, description: str, version: int | None = None) -> None:
    """Set the description of model `name`, or of one of its versions."""
    if not isinstance(description, str):
        raise InvalidInput("a description is a string")
    with ws.store.write() as conn:
        model_id = _require_model(conn, name)
        if version is None:
            conn.execute(
                update(_M)
                .where(_M.c.id == model_id)
                .values(description=description, updated_at=now_ms())
            )
            return
        version = _require_version(conn, name, model_id, version)
        conn.execute(
            update(_V)
            .where(_V.c.model_id == model_id, _V.c.version == version)
            .values(description=description)
        )


def set_tags(ws: Workspace, name: str, tags: Mapping[str, Any], version: int | None = None) -> None:
    """Set tags on model `name`, or on one of its versions (overwriting earlier values)."""
    items = {check_key(k, "tag"): str(v) for k, v in tags.items()}
    with ws.store.write() as conn:
        model_id = _require_model(conn, name)
        if version is not None:
            version = _require_version(conn, name, model_id, version)
        for key, value in items.items():
            conn.execute(
                insert_for(conn, _T)
                .values(model_id=model_id, version=version or 0, key=key, value=value)
                .on_conflict_do_update(
                    index_elements=["model_id", "version", "key"], set_={"value": value}
                )
            )


def package_digests(ws: Workspace) -> set[str]:
    """Return the package manifest digest of every model version (for GC)."""
    with ws.store.read() as conn:
        return set(conn.execute(select(_V.c.package_digest)).scalars())


def _ensure_model(conn: Connection, name: str) -> int:
    now = now_ms()
    conn.execute(
        insert_for(conn, _M)
        .values(name=name, description="", created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    # Locked on PostgreSQL, so concurrent registrations number one after another.
    query = select(_M.c.id).where(_M.c.name == name).with_for_update()
    return int(conn.execute(query).scalar_one())


def _require_model(conn: Connection, name: str, *, lock: bool = False) -> int:
    check_name(name)
    query = select(_M.c.id).where(_M.c.name == name)
    found = conn.execute(query.with_for_update() if lock else query).scalar()
    if found is None:
        names = conn.execute(select(_M.c.name).order_by(_M.c.name).limit(20)).scalars().all()
        known = f"models are {', '.join(names)}" if names else "there are no models yet"
        raise NotFound(f"no registered model {name!r}; {known}")
    return int(found)


def _require_version(conn: Connection, name: str, model_id: int, version: int) -> int:
    """Return `version` as an int if model `name` has it, else raise NotFound."""
    whole = not isinstance(version, bool) and hasattr(version, "__index__")
    if not whole:
        raise InvalidInput(f"a model version is a whole number, not {version!r}")
    version = operator.index(version)  # an int, or a NumPy integer
    found = conn.execute(
        select(_V.c.id).where(_V.c.model_id == model_id, _V.c.version == version)
    ).scalar()
    if found is None:
        last = conn.execute(select(func.max(_V.c.version)).where(_V.c.model_id == model_id))
        latest = last.scalar()
        span = f"versions are 1..{latest}" if latest else "it has no versions yet"
        raise NotFound(f"model {name!r} has no version {version}; {span}")
    return version


def _version_record(conn: Connection, name: str, model_id: int, version: int) -> ModelVersionRecord:
    version = _require_version(conn, name, model_id, version)
    row = (
        conn.execute(select(_V).where(_V.c.model_id == model_id, _V.c.version == version))
        .mappings()
        .one()
    )
    aliases = conn.execute(
        select(_A.c.alias)
        .where(_A.c.model_id == model_id, _A.c.version == version)
        .order_by(_A.c.alias)
    ).scalars()
    tags = conn.execute(
        select(_T.c.key, _T.c.value).where(_T.c.model_id == model_id, _T.c.version == version)
    )
    return ModelVersionRecord(
        name=name,
        version=row["version"],
        package_digest=row["package_digest"],
        flavor=row["flavor"],
        run_id=row["run_id"],
        source=row["source"],
        description=row["description"],
        user=row["user"],
        created_at=row["created_at"],
        aliases=tuple(aliases),
        tags={str(k): str(v) for k, v in tags},
    )


def _model_record(conn: Connection, row: RowMapping) -> RegisteredModelRecord:
    model_id = row["id"]
    count, latest = conn.execute(
        select(func.count(), func.max(_V.c.version)).where(_V.c.model_id == model_id)
    ).one()
    aliases = conn.execute(
        select(_A.c.alias, _A.c.version).where(_A.c.model_id == model_id).order_by(_A.c.alias)
    )
    tags = conn.execute(
        select(_T.c.key, _T.c.value).where(_T.c.model_id == model_id, _T.c.version == 0)
    )
    return RegisteredModelRecord(
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        versions=int(count),
        latest_version=None if latest is None else int(latest),
        aliases={alias: int(version) for alias, version in aliases},
        tags={str(k): str(v) for k, v in tags},
    )


def _aliases_text(conn: Connection, model_id: int) -> str:
    found = conn.execute(
        select(_A.c.alias, _A.c.version).where(_A.c.model_id == model_id).order_by(_A.c.alias)
    ).all()
    if not found:
        return "it has no aliases yet (set one: loopml models alias NAME ALIAS VERSION)"
    return "aliases are " + ", ".join(f"{alias} (v{version})" for alias, version in found)


def _record_event(
    conn: Connection,
    model_id: int,
    alias: str,
    *,
    previous: int | None,
    version: int | None,
    reason: str,
    gate_json: str | None,
    now: int,
) -> AliasEvent:
    user = current_user()
    conn.execute(
        _E.insert().values(
            model_id=model_id,
            alias=alias,
            from_version=previous,
            to_version=version,
            user=user,
            reason=reason,
            gate_result=gate_json,
            created_at=now,
        )
    )
    return AliasEvent(
        alias,
        previous,
        version,
        user,
        reason,
        json.loads(gate_json) if gate_json else None,
        now,
    )
