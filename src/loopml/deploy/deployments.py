"""Deployments in the store: a named endpoint, its routing, and the history of every change.

Every routing change is a compare-and-set on the deployment's `revision`: a rollout controller
that decided on revision 7 cannot overwrite a rollback a person made meanwhile (revision 8),
and each change writes its event in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from loopml.core.store import now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.deploy.routing import Routing
from loopml.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from loopml.registry import models
from loopml.registry.uris import check_name, expand, parse
from loopml.tracking.current import current_user

_D = db.deployments
_EV = db.deployment_events


@dataclass(frozen=True)
class Deployment:
    """A named endpoint: where it listens and where its traffic goes now."""

    id: int
    name: str
    routing: Routing
    revision: int
    host: str
    port: int
    alias: str | None  # the stable model's alias this deployment moves on promotion
    user: str
    created_at: int
    updated_at: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "name": self.name,
            "routing": self.routing.to_dict(),
            "describe": self.routing.describe(),
            "revision": self.revision,
            "host": self.host,
            "port": self.port,
            "alias": self.alias,
            "user": self.user,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class DeploymentEvent:
    """One entry of a deployment's history."""

    id: int
    deployment: str
    revision: int
    kind: str
    routing: Routing
    details: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    user: str = ""
    created_at: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "id": self.id,
            "deployment": self.deployment,
            "revision": self.revision,
            "kind": self.kind,
            "routing": self.routing.to_dict(),
            "describe": self.routing.describe(),
            "details": self.details,
            "reason": self.reason,
            "user": self.user,
            "created_at": self.created_at,
        }


def version_of(ws: Workspace, model: str) -> tuple[str, str | None]:
    """Return the registered version `model` names, as NAME/N, and the alias it was named by."""
    ref = parse(expand(model))
    if ref.name is None:
        raise InvalidInput(
            f"a deployment serves registered model versions, not a run's model ({model}); "
            "register it first (loopml models register)"
        )
    record = models.resolve(ws, ref)
    return f"{record.name}/{record.version}", ref.alias


def create(ws: Workspace, name: str, model: str, *, host: str, port: int) -> Deployment:
    """Record deployment `name` serving `model` (a version, or an alias it will move)."""
    check_name(name, "deployment name")
    _check_port(port)
    stable, alias = version_of(ws, model)
    routing = Routing("single", stable)
    now = now_ms()
    try:
        with ws.store.write() as conn:
            key = conn.execute(
                insert(_D).values(
                    name=name,
                    routing=_json(routing.to_dict()),
                    revision=1,
                    host=host,
                    port=port,
                    alias=alias,
                    user=current_user(),
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key
            assert key is not None
            _event(conn, key[0], 1, routing, kind="created", reason=f"serving {model}", now=now)
    except SQLIntegrityError:
        raise AlreadyExists(
            f"deployment {name!r} exists; change its routing (loopml deploy canary|bluegreen|ab|"
            "shadow) or delete it first"
        ) from None
    return get(ws, name)


def get(ws: Workspace, name: str) -> Deployment:
    """Return deployment `name`, or raise NotFound listing the deployments there are."""
    with ws.store.read() as conn:
        row = conn.execute(select(_D).where(_D.c.name == name)).mappings().first()
        if row is None:
            known = conn.execute(select(_D.c.name).order_by(_D.c.name)).scalars().all()
    if row is None:
        listed = ", ".join(known) if known else "none yet (loopml deploy create)"
        raise NotFound(f"no deployment {name!r}; deployments: {listed}")
    return _deployment(row)


def list_all(ws: Workspace) -> list[Deployment]:
    """Return every deployment, by name."""
    with ws.store.read() as conn:
        rows = conn.execute(select(_D).order_by(_D.c.name)).mappings().all()
    return [_deployment(row) for row in rows]


def change(
    ws: Workspace,
    deployment: Deployment,
    routing: Routing,
    *,
    kind: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> Deployment:
    """Set the routing of `deployment` if nobody changed it since it was read; record why."""
    now = now_ms()
    revision = deployment.revision + 1
    with ws.store.write() as conn:
        moved = conn.execute(
            update(_D)
            .where(_D.c.id == deployment.id, _D.c.revision == deployment.revision)
            .values(routing=_json(routing.to_dict()), revision=revision, updated_at=now)
        ).rowcount
        if moved != 1:
            raise InvalidState(
                f"deployment {deployment.name!r} changed while this was decided (it is no longer "
                f"at revision {deployment.revision}); nothing was changed: check its status "
                "and try again"
            )
        _event(conn, deployment.id, revision, routing, kind=kind, details=details, reason=reason)
    return get(ws, deployment.name)


def record(
    ws: Workspace, deployment: Deployment, kind: str, details: dict[str, Any], reason: str = ""
) -> None:
    """Record an event that leaves the routing as it is (an analysis, an A/B result)."""
    with ws.store.write() as conn:
        _event(
            conn,
            deployment.id,
            deployment.revision,
            deployment.routing,
            kind=kind,
            details=details,
            reason=reason,
        )


def history(ws: Workspace, name: str, *, limit: int | None = None) -> list[DeploymentEvent]:
    """Return the events of deployment `name`, oldest first (the last `limit` with a limit)."""
    deployment = get(ws, name)
    query = select(_EV).where(_EV.c.deployment_id == deployment.id).order_by(_EV.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with ws.store.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [_history_event(name, row) for row in reversed(rows)]


def delete_deployment(ws: Workspace, name: str) -> None:
    """Forget deployment `name` and its history (a server still running it keeps serving)."""
    deployment = get(ws, name)
    with ws.store.write() as conn:
        conn.execute(delete(_EV).where(_EV.c.deployment_id == deployment.id))
        conn.execute(delete(_D).where(_D.c.id == deployment.id))


def _event(
    conn: Connection,
    deployment_id: int,
    revision: int,
    routing: Routing,
    *,
    kind: str,
    details: dict[str, Any] | None = None,
    reason: str = "",
    now: int | None = None,
) -> None:
    conn.execute(
        insert(_EV).values(
            deployment_id=deployment_id,
            revision=revision,
            kind=kind,
            routing=_json(routing.to_dict()),
            details=_json(details or {}),
            reason=reason,
            user=current_user(),
            created_at=now or now_ms(),
        )
    )


def _deployment(row: RowMapping) -> Deployment:
    return Deployment(
        id=row["id"],
        name=row["name"],
        routing=Routing.from_dict(json.loads(row["routing"])),
        revision=row["revision"],
        host=row["host"],
        port=row["port"],
        alias=row["alias"],
        user=row["user"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _history_event(name: str, row: RowMapping) -> DeploymentEvent:
    return DeploymentEvent(
        id=row["id"],
        deployment=name,
        revision=row["revision"],
        kind=row["kind"],
        routing=Routing.from_dict(json.loads(row["routing"])),
        details=json.loads(row["details"]),
        reason=row["reason"],
        user=row["user"],
        created_at=row["created_at"],
    )


def _check_port(port: object) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidInput(f"port must be a whole number within 1..65535, not {port!r}")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False)
