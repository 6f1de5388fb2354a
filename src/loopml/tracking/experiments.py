"""Experiments: create, find, list, rename, soft delete and restore."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from loopml.core.store import insert_for, now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from loopml.tracking.entities import Experiment, view_stage

MAX_NAME = 500
DEFAULT = "Default"


def create(ws: Workspace, name: str) -> Experiment:
    """Create the experiment `name`."""
    name = _check_name(name)
    now = now_ms()
    try:
        with ws.store.write() as conn:
            _refuse_taken(conn, name)
            conn.execute(
                db.experiments.insert().values(
                    name=name, lifecycle_stage="active", created_at=now, updated_at=now
                )
            )
    except SQLIntegrityError as exc:  # a concurrent create won the race
        raise AlreadyExists(f"experiment {name!r} already exists") from exc
    return get(ws, name)


def get(ws: Workspace, ref: str | int) -> Experiment:
    """Return the experiment named `ref` (or with id `ref`), deleted ones included."""
    with ws.store.read() as conn:
        return _record(require(conn, ref))


def ensure_active(conn: Connection, ref: str | int | None) -> Row[Any]:
    """Return the active experiment `ref` (default: Default), creating a missing named one.

    Runs inside the caller's write transaction, so starting a run costs one transaction; on
    PostgreSQL a concurrent creator's row is picked up instead of failing on the unique name.
    """
    ref = DEFAULT if ref is None else ref
    row = _find(conn, ref)
    if row is None:
        if isinstance(ref, int):
            require(conn, ref)  # raises NotFound: ids are never created on demand
        name = _check_name(ref)
        now = now_ms()
        conn.execute(
            insert_for(conn, db.experiments)
            .values(name=name, lifecycle_stage="active", created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = require(conn, name)
    if row.lifecycle_stage == "deleted":
        raise InvalidState(
            f"experiment {row.name!r} is deleted; restore it with "
            f"`loopml experiments restore {row.name}` or use another name"
        )
    return row


def list_all(ws: Workspace, *, view: str = "active") -> list[Experiment]:
    """Return experiments by name; `view` is active, deleted or all."""
    query = select(db.experiments).order_by(db.experiments.c.name)
    stage = view_stage(view)
    if stage is not None:
        query = query.where(db.experiments.c.lifecycle_stage == stage)
    with ws.store.read() as conn:
        return [_record(row) for row in conn.execute(query)]


def rename(ws: Workspace, ref: str | int, new_name: str) -> Experiment:
    """Rename an experiment; the new name must be free."""
    new_name = _check_name(new_name)
    with ws.store.write() as conn:
        row = require(conn, ref)
        _refuse_taken(conn, new_name)
        conn.execute(
            update(db.experiments)
            .where(db.experiments.c.id == row.id)
            .values(name=new_name, updated_at=now_ms())
        )
    return get(ws, row.id)


def delete(ws: Workspace, ref: str | int) -> Experiment:
    """Soft-delete an experiment: its runs stay stored and it can be restored."""
    return _set_stage(ws, ref, "deleted")


def restore(ws: Workspace, ref: str | int) -> Experiment:
    """Undo a soft delete."""
    return _set_stage(ws, ref, "active")


def _set_stage(ws: Workspace, ref: str | int, stage: str) -> Experiment:
    with ws.store.write() as conn:
        row = require(conn, ref)
        conn.execute(
            update(db.experiments)
            .where(db.experiments.c.id == row.id)
            .values(lifecycle_stage=stage, updated_at=now_ms())
        )
    return get(ws, row.id)


def _find(conn: Connection, ref: str | int) -> Row[Any] | None:
    if isinstance(ref, bool) or not isinstance(ref, str | int):
        raise InvalidInput(f"experiment must be a name or an id, not {type(ref).__name__}")
    table = db.experiments
    if isinstance(ref, int):
        return conn.execute(select(table).where(table.c.id == ref)).first()
    row = conn.execute(select(table).where(table.c.name == ref)).first()
    if row is None and ref.isdigit():
        row = conn.execute(select(table).where(table.c.id == int(ref))).first()
    return row


def require(conn: Connection, ref: str | int) -> Row[Any]:
    """Return the experiment row named (or numbered) `ref` in `conn`, or raise NotFound."""
    row = _find(conn, ref)
    if row is None:
        raise NotFound(f"no experiment {ref!r}; `loopml experiments list` shows the existing ones")
    return row


def _refuse_taken(conn: Connection, name: str) -> None:
    row = conn.execute(
        select(db.experiments.c.lifecycle_stage).where(db.experiments.c.name == name)
    ).first()
    if row is None:
        return
    hint = " (it is deleted: restore it or pick another name)" if row[0] == "deleted" else ""
    raise AlreadyExists(f"experiment {name!r} already exists{hint}")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"experiment name must be a non-empty string, not {name!r}")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"experiment name is {len(name)} characters; the limit is {MAX_NAME}")
    return name.strip()


def _record(row: Row[Any]) -> Experiment:
    return Experiment(
        id=row.id,
        name=row.name,
        lifecycle_stage=row.lifecycle_stage,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
