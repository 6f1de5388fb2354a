"""Loops in the store: one pass of a policy, its state, and the policy's audit timeline.

A loop is a row that moves through the steps train -> register -> gate -> approval -> release
-> watch, one compare-and-set at a time, each with its event in the same transaction. The row's
`active` column holds the policy's id while the loop runs and is unique, so a policy never has
two active loops, whoever starts them. A controller's moves also require it to hold the
controller lease, so one that lost its lease (paused, partitioned) changes nothing.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from loopml.automation.policy import Policy
from loopml.core.store import now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import InvalidState, NotFound
from loopml.tracking.current import current_user

_L = db.loops
_E = db.loop_events
_P = db.policies
_LEASE = db.leases
ACTIVE = ("running", "waiting", "rolling_out")
FINISHED = ("succeeded", "blocked", "rolled_back", "failed", "cancelled")


@dataclass(frozen=True)
class Loop:
    """One pass of a policy, as stored."""

    id: str
    policy: str
    number: int
    status: str  # running | waiting (for approval) | rolling_out | succeeded | blocked | ...
    step: str  # the next step to do (done once finished)
    trigger: dict[str, Any]
    params: dict[str, Any]
    run_id: str | None
    model: str | None
    details: dict[str, Any]
    error: str
    user: str
    started_at: int
    updated_at: int
    finished_at: int | None

    @property
    def active(self) -> bool:
        """Return True until the loop has finished."""
        return self.status in ACTIVE

    @property
    def label(self) -> str:
        """Return `policy #N`."""
        return f"{self.policy} #{self.number}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "id": self.id,
            "policy": self.policy,
            "number": self.number,
            "status": self.status,
            "step": self.step,
            "trigger": self.trigger,
            "params": self.params,
            "run_id": self.run_id,
            "model": self.model,
            "details": self.details,
            "error": self.error,
            "user": self.user,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True)
class Event:
    """One entry of a policy's timeline."""

    id: int
    policy: str
    loop_id: str | None
    loop: int | None  # the loop's number
    kind: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    user: str = ""
    created_at: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "id": self.id,
            "policy": self.policy,
            "loop_id": self.loop_id,
            "loop": self.loop,
            "kind": self.kind,
            "reason": self.reason,
            "details": self.details,
            "user": self.user,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Fence:
    """The lease a controller's moves require: it must hold `name` as `holder`."""

    name: str
    holder: str

    def held(self, now: int) -> Any:
        """Return the SQL condition that the lease is held and unexpired at `now`."""
        return exists().where(
            _LEASE.c.name == self.name,
            _LEASE.c.holder == self.holder,
            _LEASE.c.expires_at > now,
        )


def start(
    ws: Workspace,
    policy: Policy,
    trigger: dict[str, Any],
    params: dict[str, Any],
    details: dict[str, Any],
    *,
    cursors: dict[str, Any] | None = None,
    fence: Fence | None = None,
) -> Loop | None:
    """Start a loop of `policy` (and store the triggers' consumed `cursors` with it, in one
    transaction). Return None if a controller's `fence` no longer holds; raise InvalidState
    if the policy already has an active loop."""
    loop_id = uuid.uuid4().hex
    now = now_ms()
    try:
        with ws.store.write() as conn:
            if fence is not None and not conn.execute(select(fence.held(now))).scalar():
                return None
            number = conn.execute(
                select(func.coalesce(func.max(_L.c.number), 0)).where(_L.c.policy_id == policy.id)
            ).scalar_one()
            conn.execute(
                insert(_L).values(
                    id=loop_id,
                    policy_id=policy.id,
                    number=int(number) + 1,
                    active=policy.id,
                    status="running",
                    step="train",
                    trigger=_json(trigger),
                    params=_json(params),
                    run_id=None,
                    model=None,
                    details=_json(details),
                    error="",
                    user=current_user(),
                    started_at=now,
                    updated_at=now,
                    finished_at=None,
                )
            )
            if cursors is not None:
                conn.execute(
                    update(_P).where(_P.c.id == policy.id).values(cursors=json.dumps(cursors))
                )
            _event(conn, policy.id, loop_id, "triggered", trigger["reason"], trigger, now)
    except SQLIntegrityError:
        busy = active(ws, policy)
        where = f" (#{busy.number}, {busy.status} at {busy.step})" if busy else ""
        raise InvalidState(
            f"policy {policy.name!r} has an active loop{where}; wait for it to finish or cancel "
            f"it (loopml loop cancel {policy.name})"
        ) from None
    return get(ws, loop_id)


def move(
    ws: Workspace,
    loop: Loop,
    *,
    step: str,
    status: str = "running",
    event: tuple[str, str, Mapping[str, Any]] | None = None,
    fence: Fence | None = None,
    **values: Any,
) -> Loop | None:
    """Move `loop` to `step` (with `status` and other column `values`) if it is still where
    it was read and the `fence` holds; record `event` (kind, reason, details) with the move.
    Return the loop as moved, or None when someone else moved it first."""
    now = now_ms()
    finished = status in FINISHED
    changes: dict[str, Any] = {"step": step, "status": status, "updated_at": now}
    if finished:
        changes |= {"active": None, "finished_at": now}
    for key, value in values.items():
        changes[key] = _json(value) if key in ("details", "trigger", "params") else value
    where = [_L.c.id == loop.id, _L.c.step == loop.step, _L.c.status == loop.status]
    if fence is not None:
        where.append(fence.held(now))
    with ws.store.write() as conn:
        moved = conn.execute(update(_L).where(and_(*where)).values(**changes)).rowcount
        if moved != 1:
            return None
        if event is not None:
            kind, reason, details = event
            policy_id = conn.execute(select(_L.c.policy_id).where(_L.c.id == loop.id)).scalar_one()
            _event(conn, int(policy_id), loop.id, kind, reason, details, now)
    return get(ws, loop.id)


def record(
    ws: Workspace,
    policy: Policy,
    loop: Loop | None,
    kind: str,
    reason: str,
    *,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Add an event to `policy`'s timeline (of `loop`, if given)."""
    with ws.store.write() as conn:
        _event(conn, policy.id, loop.id if loop else None, kind, reason, details or {}, now_ms())


def get(ws: Workspace, loop_id: str) -> Loop:
    """Return loop `loop_id`."""
    with ws.store.read() as conn:
        row = conn.execute(_query().where(_L.c.id == loop_id)).mappings().first()
    if row is None:
        raise NotFound(f"no loop {loop_id}")
    return _loop(row)


def active(ws: Workspace, policy: Policy) -> Loop | None:
    """Return the policy's active loop, if it has one."""
    with ws.store.read() as conn:
        row = conn.execute(_query().where(_L.c.active == policy.id)).mappings().first()
    return None if row is None else _loop(row)


def of(ws: Workspace, policy: Policy, *, limit: int | None = None) -> list[Loop]:
    """Return the policy's loops, newest first."""
    query = _query().where(_L.c.policy_id == policy.id).order_by(_L.c.number.desc())
    if limit is not None:
        query = query.limit(limit)
    with ws.store.read() as conn:
        return [_loop(row) for row in conn.execute(query).mappings().all()]


def find(ws: Workspace, policy: Policy, number: int) -> Loop:
    """Return loop number `number` of `policy`."""
    query = _query().where(_L.c.policy_id == policy.id, _L.c.number == number)
    with ws.store.read() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"policy {policy.name!r} has no loop #{number}")
    return _loop(row)


def events(
    ws: Workspace,
    policy: Policy | None = None,
    *,
    loop: Loop | None = None,
    limit: int | None = None,
) -> list[Event]:
    """Return timeline events (of one policy, of one loop), oldest first (the last `limit`)."""
    query = (
        select(_E, _P.c.name.label("policy"), _L.c.number.label("number"))
        .join(_P, _P.c.id == _E.c.policy_id)
        .outerjoin(_L, _L.c.id == _E.c.loop_id)
        .order_by(_E.c.id.desc())
    )
    if policy is not None:
        query = query.where(_E.c.policy_id == policy.id)
    if loop is not None:
        query = query.where(_E.c.loop_id == loop.id)
    if limit is not None:
        query = query.limit(limit)
    with ws.store.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        Event(
            id=row["id"],
            policy=row["policy"],
            loop_id=row["loop_id"],
            loop=row["number"],
            kind=row["kind"],
            reason=row["reason"],
            details=json.loads(row["details"]),
            user=row["user"],
            created_at=row["created_at"],
        )
        for row in reversed(rows)
    ]


def _event(  # noqa: PLR0917 - one row's columns, in the table's order
    conn: Connection,
    policy_id: int,
    loop_id: str | None,
    kind: str,
    reason: str,
    details: Mapping[str, Any],
    at: int,
) -> None:
    conn.execute(
        insert(_E).values(
            policy_id=policy_id,
            loop_id=loop_id,
            kind=kind,
            reason=reason,
            details=_json(dict(details)),
            user=current_user(),
            created_at=at,
        )
    )


def _query() -> Any:
    return select(_L, _P.c.name.label("policy")).join(_P, _P.c.id == _L.c.policy_id)


def _loop(row: RowMapping) -> Loop:
    return Loop(
        id=row["id"],
        policy=row["policy"],
        number=row["number"],
        status=row["status"],
        step=row["step"],
        trigger=json.loads(row["trigger"]),
        params=json.loads(row["params"]),
        run_id=row["run_id"],
        model=row["model"],
        details=json.loads(row["details"]),
        error=row["error"],
        user=row["user"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


def _json(value: Any) -> str:
    return json.dumps(_finite(value), allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    """Return `value` with NaN and infinities as None (a metric that could not be computed)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
