"""A lease row: one holder may act for a name until its lease expires.

Controllers of one store share the lease `controller`. The holder renews it well before it
expires; a controller that stops renewing (killed, paused, cut off) loses it once it expires,
and another takes over. Taking and renewing are one conditional UPDATE each, so two
processes never both hold it, on SQLite or PostgreSQL. `token` counts takeovers.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy import case, select, update

from loopml.core.store import insert_for, now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace

_LEASE = db.leases
CONTROLLER = "controller"


@dataclass(frozen=True)
class Holding:
    """A lease as stored: who holds it, since when, until when."""

    name: str
    holder: str
    token: int
    acquired_at: int
    expires_at: int


def new_holder() -> str:
    """Return a name for this process as a lease holder: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(ws: Workspace, name: str, holder: str, ttl_s: float, *, now: int | None = None) -> bool:
    """Take or renew lease `name` for `holder` for `ttl_s` seconds; return True if held.

    It is taken only if free or expired, and renewed only by its holder.
    """
    at = now_ms() if now is None else now
    expires = at + int(ttl_s * 1000)
    with ws.store.write() as conn:
        conn.execute(
            insert_for(conn, _LEASE)
            .values(name=name, holder=holder, token=1, acquired_at=at, expires_at=expires)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        mine = _LEASE.c.holder == holder
        taken = conn.execute(
            update(_LEASE)
            .where(_LEASE.c.name == name, mine | (_LEASE.c.expires_at <= at))
            .values(
                holder=holder,
                token=case((mine, _LEASE.c.token), else_=_LEASE.c.token + 1),
                acquired_at=case((mine, _LEASE.c.acquired_at), else_=at),
                expires_at=expires,
            )
        ).rowcount
    return taken == 1


def release(ws: Workspace, name: str, holder: str) -> None:
    """Give lease `name` up, if `holder` holds it (another may take it at once). The row
    stays, expired, so the next holder's token still counts up."""
    with ws.store.write() as conn:
        conn.execute(
            update(_LEASE)
            .where(_LEASE.c.name == name, _LEASE.c.holder == holder)
            .values(expires_at=0)
        )


def current(ws: Workspace, name: str) -> Holding | None:
    """Return lease `name` as stored (expired or not), or None if nobody took it."""
    with ws.store.read() as conn:
        row = conn.execute(select(_LEASE).where(_LEASE.c.name == name)).mappings().first()
    return None if row is None else Holding(**dict(row))
