"""Runs: create, resume, end, read, list, soft delete; write-once params and tags."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Row,
    and_,
    bindparam,
    select,
    update,
)

from loopml.core.store import insert_for, now_ms
from loopml.core.store import schema as db
from loopml.core.store.database import insert_for_dialect
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, InvalidState, NotFound, ParamConflict
from loopml.tracking import experiments
from loopml.tracking.current import check_key
from loopml.tracking.entities import (
    RUN_STATUSES,
    MetricPoint,
    RunRecord,
    RunStatus,
    view_stage,
)
from loopml.tracking.records import in_active_experiments, load_records, select_runs

MAX_RUN_NAME = 250
RUN_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
_ADJECTIVES = (
    "amber",
    "bold",
    "brisk",
    "calm",
    "clever",
    "eager",
    "fair",
    "gentle",
    "keen",
    "lucid",
)
_NOUNS = ("otter", "heron", "lynx", "finch", "badger", "falcon", "marten", "panda", "raven", "yak")


def check_run_id(run_id: object) -> str:
    """Return `run_id` if it looks like a run id, else raise InvalidInput."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidInput(f"{run_id!r} is not a run id (32 lowercase hex characters)")
    return run_id


def resolve_id(ws: Workspace, ref: str) -> str:
    """Return the full id of the run whose id is `ref` or starts with it (at least 4 chars)."""
    if isinstance(ref, str) and RUN_ID_PATTERN.fullmatch(ref):
        return ref
    if not isinstance(ref, str) or not re.fullmatch(r"[0-9a-f]{4,31}", ref):
        raise InvalidInput(f"{ref!r} is not a run id or a prefix of one (4+ lowercase hex)")
    with ws.store.read() as conn:
        found = [
            row[0]
            for row in conn.execute(
                select(db.runs.c.id).where(db.runs.c.id.startswith(ref)).limit(5)
            )
        ]
    if not found:
        raise NotFound(f"no run id starts with {ref!r}; `loopml runs list` shows the runs")
    if len(found) > 1:
        raise InvalidInput(f"run id prefix {ref!r} is ambiguous ({', '.join(found)}); give more")
    return str(found[0])


def create(
    ws: Workspace,
    experiment: str | int | None = None,
    *,
    name: str | None = None,
    parent_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    then: Callable[[Connection, str], None] | None = None,
) -> RunRecord:
    """Insert a RUNNING run with its tags and params; the caller owns journal writer 0.

    `then(conn, run_id)` runs in the same write transaction, for rows that belong with it.
    """
    if name is not None and (not isinstance(name, str) or len(name) > MAX_RUN_NAME):
        raise InvalidInput(f"run name must be a string of at most {MAX_RUN_NAME} characters")
    run_id = uuid.uuid4().hex
    tag_rows = _tag_rows(run_id, tags or {})
    param_rows = [
        {"run_id": run_id, "key": check_key(k, "param"), "value": _text(v, "param")}
        for k, v in (params or {}).items()
    ]
    if isinstance(experiment, bool) or not isinstance(experiment, str | int | None):
        raise InvalidInput(f"experiment must be a name or an id, not {type(experiment).__name__}")
    record = RunRecord(
        id=run_id,
        name=name or _run_name(),
        experiment_id=-1,  # set below, inside the transaction that inserts the run
        status="RUNNING",
        start_time=now_ms(),
        end_time=None,
        parent_id=parent_id,
        user=str((tags or {}).get("loopml.user", "")),
        lifecycle_stage="active",
        params={row["key"]: row["value"] for row in param_rows},
        tags={row["key"]: row["value"] for row in tag_rows},
    )
    with ws.store.write() as conn:
        experiment_id = experiments.ensure_active(conn, experiment).id
        if parent_id is not None:
            require(conn, check_run_id(parent_id))
        conn.execute(
            _sql(conn.dialect.name).insert_run,
            {
                "id": run_id,
                "experiment_id": experiment_id,
                "parent_id": parent_id,
                "name": record.name,
                "status": "RUNNING",
                "user": record.user,
                "start_time": record.start_time,
                "end_time": None,
                "lifecycle_stage": "active",
                "journal_writers": 1,
            },
        )
        if tag_rows:
            conn.execute(_sql(conn.dialect.name).insert_tags, tag_rows)
        if param_rows:
            conn.execute(_sql(conn.dialect.name).insert_params, param_rows)
        if then is not None:
            then(conn, run_id)
    return dataclasses.replace(record, experiment_id=experiment_id)


def resume(ws: Workspace, run_id: str) -> tuple[RunRecord, int]:
    """Mark a run RUNNING again and allocate it a new journal writer number."""
    check_run_id(run_id)
    with ws.store.write() as conn:
        require_active(conn, run_id)
        # One UPDATE ... RETURNING: two processes resuming at once get different numbers.
        writers = conn.execute(
            update(db.runs)
            .where(db.runs.c.id == run_id)
            .values(status="RUNNING", end_time=None, journal_writers=db.runs.c.journal_writers + 1)
            .returning(db.runs.c.journal_writers)
        ).scalar_one()
    return get(ws, run_id), writers - 1


def set_ended(
    conn: Connection, run_id: str, status: RunStatus = "FINISHED", end_time: int | None = None
) -> None:
    """Set a run's final status and end time inside the caller's write transaction."""
    if status not in RUN_STATUSES or status == "RUNNING":
        raise InvalidInput(f"status {status!r} is not one of FINISHED, FAILED, KILLED")
    conn.execute(
        _sql(conn.dialect.name).set_ended,
        {"rid": run_id, "new_status": status, "new_end_time": end_time or now_ms()},
    )


def get(ws: Workspace, run_id: str) -> RunRecord:
    """Return a run with its params, tags and latest metrics."""
    check_run_id(run_id)
    with ws.store.read() as conn:
        query = select_runs(conn.dialect.name).where(db.runs.c.id == run_id)
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no run {run_id}; `loopml runs list` shows the existing ones")
        return load_records(conn, [row])[0]


def list_runs(
    ws: Workspace, experiment: str | int | None = None, *, view: str = "active", limit: int = 100
) -> list[RunRecord]:
    """Return the newest runs of an experiment (or of all experiments)."""
    query = (
        select_runs(ws.store.dialect)
        .order_by(db.runs.c.start_time.desc(), db.runs.c.id)
        .limit(limit)
    )
    stage = view_stage(view)
    if stage is not None:
        query = query.where(db.runs.c.lifecycle_stage == stage)
    with ws.store.read() as conn:
        if experiment is not None:
            exp_id = experiments.require(conn, experiment).id
            query = query.where(db.runs.c.experiment_id == exp_id)
        elif stage == "active":
            query = query.where(in_active_experiments())
        return load_records(conn, conn.execute(query))


def delete(ws: Workspace, run_id: str) -> None:
    """Soft-delete a run: hidden from lists and searches, restorable."""
    _set_stage(ws, run_id, "deleted")


def restore(ws: Workspace, run_id: str) -> None:
    """Undo a soft delete."""
    _set_stage(ws, run_id, "active")


def log_params(ws: Workspace, run_id: str, values: Mapping[str, Any]) -> None:
    """Store params; all or none: a key already logged with another value raises ParamConflict."""
    rows = sorted(
        (
            {"run_id": run_id, "key": check_key(k, "param"), "value": _text(v, "param")}
            for k, v in values.items()
        ),
        key=lambda row: row["key"],
    )
    if not rows:
        return
    with ws.store.write() as conn:
        require_active(conn, run_id)
        sql = _sql(conn.dialect.name)
        conn.execute(sql.insert_params, rows)
        found = conn.execute(sql.params_of, {"rid": run_id, "keys": [r["key"] for r in rows]})
        stored = dict(iter(found))
        for row in rows:
            if stored[row["key"]] != row["value"]:
                raise ParamConflict(
                    f"param {row['key']!r} of run {run_id} is already {stored[row['key']]!r}; "
                    f"params are write-once, so {row['value']!r} was not stored (log it under "
                    "another key, or use a tag or a metric for values that change)"
                )


def set_tags(ws: Workspace, run_id: str, values: Mapping[str, Any]) -> None:
    """Set tags, overwriting earlier values."""
    rows = _tag_rows(run_id, values)
    if not rows:
        return
    with ws.store.write() as conn:
        require_active(conn, run_id)
        stmt = insert_for(conn, db.tags)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
            ),
            rows,
        )


def metric_history(ws: Workspace, run_id: str, key: str) -> list[MetricPoint]:
    """Return every point of one metric, ordered by step then time."""
    m = db.metrics.c
    query = (
        select(m.key, m.value, m.is_nan, m.step, m.timestamp)
        .where(and_(m.run_id == check_run_id(run_id), m.key == key))
        .order_by(m.step, m.timestamp, m.seq)
    )
    with ws.store.read() as conn:
        require(conn, run_id)
        points = [
            MetricPoint(key, math.nan if is_nan else value, step, ts)
            for key, value, is_nan, step, ts in conn.execute(query)
        ]
        if not points:
            lm = db.latest_metrics.c
            keys = sorted(k for (k,) in conn.execute(select(lm.key).where(lm.run_id == run_id)))
            raise NotFound(
                f"run {run_id} has no metric {key!r}; "
                + (f"its metrics are {', '.join(keys)}" if keys else "it has no metrics yet")
            )
    return points


@dataclasses.dataclass(frozen=True)
class _Sql:
    """Statements of the run hot paths, built once per dialect: building costs more than running."""

    insert_run: Any
    insert_tags: Any
    insert_params: Any
    params_of: Any
    stage_of: Any
    set_ended: Any


@functools.cache
def _sql(dialect: str) -> _Sql:
    r, p = db.runs.c, db.params.c
    rid: BindParameter[str] = bindparam("rid")
    return _Sql(
        insert_run=db.runs.insert(),
        insert_tags=db.tags.insert(),
        insert_params=insert_for_dialect(dialect)(db.params).on_conflict_do_nothing(),
        params_of=select(p.key, p.value).where(
            p.run_id == rid, p.key.in_(bindparam("keys", expanding=True))
        ),
        stage_of=select(r.lifecycle_stage).where(r.id == rid),
        set_ended=update(db.runs)
        .where(r.id == rid)
        .values(status=bindparam("new_status"), end_time=bindparam("new_end_time")),
    )


def _set_stage(ws: Workspace, run_id: str, stage: str) -> None:
    check_run_id(run_id)
    with ws.store.write() as conn:
        require(conn, run_id)
        conn.execute(update(db.runs).where(db.runs.c.id == run_id).values(lifecycle_stage=stage))


def require(conn: Connection, run_id: str) -> Row[Any]:
    row = conn.execute(select(db.runs).where(db.runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run {run_id}; `loopml runs list` shows the existing ones")
    return row


def require_active(conn: Connection, run_id: str) -> None:
    """Raise unless the run exists and is not deleted."""
    row = conn.execute(_sql(conn.dialect.name).stage_of, {"rid": run_id}).first()
    if row is None:
        raise NotFound(f"no run {run_id}; `loopml runs list` shows the existing ones")
    if row[0] == "deleted":
        raise InvalidState(
            f"run {run_id} is deleted; restore it with `loopml runs restore {run_id}`"
        )


def _tag_rows(run_id: str, values: Mapping[str, Any]) -> list[dict[str, str]]:
    # Sorted by key: concurrent writers then lock rows in one order and cannot deadlock.
    return sorted(
        (
            {"run_id": run_id, "key": check_key(k, "tag"), "value": _text(v, "tag")}
            for k, v in values.items()
        ),
        key=lambda row: row["key"],
    )


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        raise InvalidInput(f"{what} values are text; decode bytes before logging them")
    text = str(value)
    if "\x00" in text:
        raise InvalidInput(f"{what} value {text!r} contains a NUL character; remove it")
    return text


def _run_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(100)}"


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
