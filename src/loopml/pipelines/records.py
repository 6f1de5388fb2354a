"""Step rows in the store: cache lookups, each step's inputs and outputs, and lineage."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, case, func, select, update

from loopml.core.store import now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import NotFound
from loopml.pipelines.task import Stored

StepStatus = str  # RUNNING COMPLETED CACHED FAILED


@dataclass(frozen=True)
class StepValue:
    """An input or output of a step run."""

    name: str
    stored: Stored
    source_run_id: str | None = None  # for inputs: the step run that produced it


@dataclass
class StepRecord:
    """One step of a pipeline run, as stored."""

    run_id: str
    pipeline_run_id: str
    node: str
    function: str
    cache_key: str | None
    code_digest: str | None
    status: StepStatus
    cached_from: str | None
    attempts: int
    error: str
    created_at: int
    inputs: list[StepValue] = field(default_factory=list)
    outputs: list[StepValue] = field(default_factory=list)
    # Filled from the run: start and end times (ms), so durations need no second query.
    start_time: int = 0
    end_time: int | None = None

    @property
    def seconds(self) -> float | None:
        """Return how long the step run took, or None while it runs."""
        return None if self.end_time is None else (self.end_time - self.start_time) / 1000


def insert_step(
    conn: Connection,
    *,
    run_id: str,
    pipeline_run_id: str,
    node: str,
    function: str,
    cache_key: str | None,
    code_digest: str | None,
    status: StepStatus,
    cached_from: str | None = None,
    inputs: Iterable[StepValue] = (),
) -> None:
    """Insert a step row and its inputs."""
    conn.execute(
        db.pipeline_steps.insert(),
        {
            "run_id": run_id,
            "pipeline_run_id": pipeline_run_id,
            "node": node,
            "function": function[:500],
            "cache_key": cache_key,
            "code_digest": code_digest,
            "status": status,
            "cached_from": cached_from,
            "attempts": 0,
            "error": "",
            "created_at": now_ms(),
        },
    )
    _insert_values(conn, run_id, "in", inputs)


def finish_step(
    conn: Connection,
    run_id: str,
    *,
    status: StepStatus,
    attempts: int,
    error: str = "",
    outputs: Iterable[StepValue] = (),
) -> None:
    """Record how a step ended, and its outputs."""
    conn.execute(
        update(db.pipeline_steps)
        .where(db.pipeline_steps.c.run_id == run_id)
        .values(status=status, attempts=attempts, error=error)
    )
    _insert_values(conn, run_id, "out", outputs)


def _insert_values(conn: Connection, run_id: str, direction: str, values: Iterable[StepValue]):  # type: ignore[no-untyped-def]
    rows = [
        {
            "run_id": run_id,
            "direction": direction,
            "name": value.name,
            "digest": value.stored.digest,
            "materializer": value.stored.materializer,
            "type_name": value.stored.type_name[:250],
            "size": value.stored.size,
            "source_run_id": value.source_run_id,
        }
        for value in values
    ]
    if rows:
        conn.execute(db.step_values.insert(), rows)


def find_cached(ws: Workspace, cache_key: str, exists: Any) -> tuple[str, list[StepValue]] | None:
    """Return (run id, outputs) of the newest completed step with `cache_key` whose output
    blobs are all still stored (`exists(digest)`), or None."""
    steps = db.pipeline_steps
    with ws.store.read() as conn:
        candidates = [
            row[0]
            for row in conn.execute(
                select(steps.c.run_id)
                .join(db.runs, db.runs.c.id == steps.c.run_id)
                .where(
                    steps.c.cache_key == cache_key,
                    steps.c.status == "COMPLETED",
                    db.runs.c.lifecycle_stage == "active",  # a deleted run is not reused
                )
                .order_by(steps.c.created_at.desc())
                .limit(5)
            )
        ]
        for run_id in candidates:
            outputs = _values(conn, [run_id], "out").get(run_id, [])
            if all(v.stored.digest is None or exists(v.stored.digest) for v in outputs):
                return run_id, outputs
    return None


def steps_of(ws: Workspace, pipeline_run_id: str) -> list[StepRecord]:
    """Return the steps of a pipeline run in the order they started, with inputs and outputs."""
    with ws.store.read() as conn:
        return _records(conn, db.pipeline_steps.c.pipeline_run_id == pipeline_run_id)


def get_step(ws: Workspace, run_id: str) -> StepRecord:
    """Return the step whose run is `run_id`."""
    with ws.store.read() as conn:
        found = _records(conn, db.pipeline_steps.c.run_id == run_id)
    if not found:
        raise NotFound(f"run {run_id} is not a pipeline step")
    return found[0]


def producers_of(ws: Workspace, digest: str) -> list[StepRecord]:
    """Return the step runs that output `digest`, oldest first (the first one made it)."""
    values = db.step_values
    with ws.store.read() as conn:
        run_ids = [
            row[0]
            for row in conn.execute(
                select(values.c.run_id).where(
                    values.c.digest == digest, values.c.direction == "out"
                )
            )
        ]
        if not run_ids:
            return []
        return _records(conn, db.pipeline_steps.c.run_id.in_(run_ids))


def step_counts(ws: Workspace, pipeline_run_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Return (cached steps, all steps) of each pipeline run, by its run id."""
    ids = list(pipeline_run_ids)
    steps = db.pipeline_steps
    cached = func.sum(case((steps.c.status == "CACHED", 1), else_=0))
    found: dict[str, tuple[int, int]] = {}
    with ws.store.read() as conn:
        for start in range(0, len(ids), 500):  # bound the IN list
            rows = conn.execute(
                select(steps.c.pipeline_run_id, cached, func.count())
                .where(steps.c.pipeline_run_id.in_(ids[start : start + 500]))
                .group_by(steps.c.pipeline_run_id)
            )
            found.update({row[0]: (int(row[1] or 0), int(row[2])) for row in rows})
    return found


def referenced_digests(ws: Workspace) -> set[str]:
    """Return every blob a step row points at: inputs, outputs and code (for GC)."""
    with ws.store.read() as conn:
        found = {
            row[0]
            for row in conn.execute(
                select(db.step_values.c.digest).where(
                    db.step_values.c.digest.is_not(None),
                    db.step_values.c.materializer != "dataset",
                )
            )
        }
        found.update(
            row[0]
            for row in conn.execute(
                select(db.pipeline_steps.c.code_digest).where(
                    db.pipeline_steps.c.code_digest.is_not(None)
                )
            )
        )
    return found


def latest_metrics(conn: Connection, run_id: str) -> dict[str, float]:
    """Return the last value of each metric of a run."""
    latest = db.latest_metrics
    rows = conn.execute(
        select(latest.c.key, latest.c.value, latest.c.is_nan).where(latest.c.run_id == run_id)
    )
    return {key: math.nan if is_nan else value for key, value, is_nan in rows}


def _records(conn: Connection, where: Any) -> list[StepRecord]:
    steps, runs = db.pipeline_steps, db.runs
    rows = conn.execute(
        select(steps, runs.c.start_time, runs.c.end_time, runs.c.status.label("run_status"))
        .join(runs, runs.c.id == steps.c.run_id)
        .where(where)
        .order_by(runs.c.start_time, steps.c.created_at)
    ).mappings()
    records = [
        StepRecord(
            run_id=row["run_id"],
            pipeline_run_id=row["pipeline_run_id"],
            node=row["node"],
            function=row["function"],
            cache_key=row["cache_key"],
            code_digest=row["code_digest"],
            # A driver killed outright leaves its rows RUNNING; the journal replay of the next
            # process marks the step's run KILLED, and that is the truth.
            status=(
                row["run_status"]
                if row["status"] == "RUNNING" and row["run_status"] != "RUNNING"
                else row["status"]
            ),
            cached_from=row["cached_from"],
            attempts=row["attempts"],
            error=row["error"],
            created_at=row["created_at"],
            start_time=row["start_time"],
            end_time=row["end_time"],
        )
        for row in rows
    ]
    ids = [r.run_id for r in records]
    inputs, outputs = _values(conn, ids, "in"), _values(conn, ids, "out")
    for record in records:
        record.inputs = inputs.get(record.run_id, [])
        record.outputs = outputs.get(record.run_id, [])
    return records


def _values(conn: Connection, run_ids: list[str], direction: str) -> dict[str, list[StepValue]]:
    found: dict[str, list[StepValue]] = {}
    if not run_ids:
        return found
    values = db.step_values
    rows = conn.execute(
        select(values)
        .where(values.c.run_id.in_(run_ids), values.c.direction == direction)
        .order_by(values.c.run_id, values.c.name)
    ).mappings()
    for row in rows:
        found.setdefault(row["run_id"], []).append(
            StepValue(
                row["name"],
                Stored(row["digest"], row["materializer"], row["type_name"], row["size"]),
                row["source_run_id"],
            )
        )
    return found
