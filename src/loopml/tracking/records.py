"""Reading runs: one query yields each run with its params, tags and latest metrics."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, Select, Text, case, cast, func, literal, select

from loopml.core.store import schema as db
from loopml.tracking.entities import RunRecord

# Unit and record separators: key validation keeps them out of metric keys.
_UNIT, _RECORD = "\x1f", "\x1e"
_INEXACT = "?"
_EXACT_BELOW = 1e100


@functools.cache
def select_runs(dialect: str) -> Select[Any]:
    """Return a SELECT of runs with their params, tags and latest metrics, for `load_records`.

    One row per run, with the details folded in by the database: on a page of runs, making
    Python rows out of every param, tag and metric was most of a search's time.
    """
    r, p, t, m = db.runs.c, db.params.c, db.tags.c, db.latest_metrics.c
    if dialect == "postgresql":
        as_object, joined = func.json_object_agg, func.string_agg
        number: Any = cast(m.value, Text)  # float8 text is exact (shortest round-trip digits)
    else:
        as_object, joined = func.json_group_object, func.group_concat
        # SQLite's printf is exact to 17 digits below ~1e195 but not above (3.40), so large
        # magnitudes and infinities are marked and read exactly by `load_records`.
        number = case(
            (func.abs(m.value) < _EXACT_BELOW, func.printf("%!.17g", m.value)),
            else_=literal(_INEXACT),
        )
    value = case((m.is_nan.is_(True), literal("nan")), else_=number)
    params = select(as_object(p.key, p.value)).where(p.run_id == r.id).scalar_subquery()
    tags = select(as_object(t.key, t.value)).where(t.run_id == r.id).scalar_subquery()
    metrics = (
        select(joined(m.key + literal(_UNIT) + value, literal(_RECORD)))
        .where(m.run_id == r.id)
        .scalar_subquery()
    )
    return select(
        db.runs,
        params.label("params_json"),
        tags.label("tags_json"),
        metrics.label("metrics_text"),
    )


def load_records(conn: Connection, rows: Iterable[Row[Any]]) -> list[RunRecord]:
    """Turn rows of `select_runs` into records."""
    rows = list(rows)
    metrics = {row.id: _metrics(row.metrics_text) for row in rows}
    inexact = [run_id for run_id, values in metrics.items() if _INEXACT in values.values()]
    if inexact:
        m = db.latest_metrics.c
        exact = select(m.run_id, m.key, m.value).where(m.run_id.in_(inexact), m.is_nan.is_(False))
        for run_id, key, number in conn.execute(exact):
            metrics[run_id][key] = number
    return [
        RunRecord(
            id=row.id,
            name=row.name,
            experiment_id=row.experiment_id,
            status=row.status,
            start_time=row.start_time,
            end_time=row.end_time,
            parent_id=row.parent_id,
            user=row.user,
            lifecycle_stage=row.lifecycle_stage,
            params=_json_object(row.params_json),
            metrics=metrics[row.id],  # type: ignore[arg-type]
            tags=_json_object(row.tags_json),
        )
        for row in rows
    ]


def _metrics(text: str | None) -> dict[str, float | str]:
    if not text:
        return {}
    pairs = (item.split(_UNIT) for item in text.split(_RECORD))
    return {key: value if value == _INEXACT else float(value) for key, value in pairs}


def _json_object(value: str | dict[str, str] | None) -> dict[str, str]:
    # psycopg decodes json itself; SQLite hands back text; no rows aggregate to NULL.
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    decoded: dict[str, str] = json.loads(value)
    return decoded


def in_active_experiments() -> Any:
    """Return a condition keeping runs whose experiment is not deleted."""
    e = db.experiments.c
    return db.runs.c.experiment_id.in_(select(e.id).where(e.lifecycle_stage == "active"))
