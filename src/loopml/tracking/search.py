"""Run search: the filter AST compiled to one SQL query (never filtered in Python)."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import operator
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    case,
    false,
    func,
    or_,
    select,
)

from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput
from loopml.tracking import experiments as experiments_
from loopml.tracking.entities import RunList, view_stage
from loopml.tracking.records import in_active_experiments, load_records, select_runs
from loopml.tracking.search_filter import (
    ATTRIBUTES,
    And,
    Comparison,
    Expr,
    Or,
    parse_filter,
    parse_order_by,
)

MAX_RESULTS = 50_000
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    # Backslash escapes % and _ on both stores (PostgreSQL's default; SQLite has none).
    "LIKE": lambda column, value: column.like(value, escape="\\"),
    "ILIKE": lambda column, value: func.lower(column).like(func.lower(value), escape="\\"),
    "IN": lambda column, value: column.in_(value),
    "NOT IN": lambda column, value: column.not_in(value),
    "IS NULL": lambda column, _: column.is_(None),
    "IS NOT NULL": lambda column, _: column.is_not(None),
}
_ATTRIBUTE_COLUMNS = {
    "run_id": "id",
    "run_name": "name",
    "status": "status",
    "user": "user",
    "start_time": "start_time",
    "end_time": "end_time",
}


def search_runs(
    ws: Workspace,
    experiments: str | int | Sequence[str | int] | None = None,
    filter_text: str | None = None,
    order_by: Sequence[str] | None = None,
    *,
    max_results: int = 1000,
    page_token: str | None = None,
    view: str = "active",
) -> RunList:
    """Return one page of runs matching the filter, in the requested order."""
    if (
        isinstance(max_results, bool)
        or not isinstance(max_results, int)
        or not 0 < max_results <= MAX_RESULTS
    ):
        raise InvalidInput(
            f"max_results must be an integer from 1 to {MAX_RESULTS}, not {max_results!r}"
        )
    if filter_text is not None and not isinstance(filter_text, str):
        raise InvalidInput(f"filter must be a string, not {type(filter_text).__name__}")
    if isinstance(order_by, str):
        order_by = [order_by]
    if order_by is not None and not all(isinstance(item, str) for item in order_by):
        raise InvalidInput(f"order_by must be a list of strings, not {order_by!r}")
    offset = _decode_token(page_token)
    refs = [experiments] if isinstance(experiments, str | int) else experiments
    with ws.store.read() as conn:
        ids = None if refs is None else tuple(experiments_.require(conn, r).id for r in refs)
        query = _query(ws.store.dialect, filter_text, tuple(order_by or ()), ids, view)
        rows = list(conn.execute(query, {"page_offset": offset, "page_limit": max_results + 1}))
        page = RunList(load_records(conn, rows[:max_results]))
    if len(rows) > max_results:
        page.next_page_token = _encode_token(offset + max_results)
    return page


@functools.lru_cache(maxsize=256)
def _query(
    dialect: str,
    filter_text: str | None,
    order_by: tuple[str, ...],
    experiment_ids: tuple[int, ...] | None,
    view: str,
) -> Select[Any]:
    """Build the SELECT of one search; kept, as dashboards repeat the same searches."""
    runs = db.runs
    query: Select[Any] = select_runs(dialect)
    stage = view_stage(view)
    if stage is not None:
        query = query.where(runs.c.lifecycle_stage == stage)
    if experiment_ids is not None:
        query = query.where(runs.c.experiment_id.in_(experiment_ids))
    elif stage == "active":  # runs of deleted experiments show only when asked for by name
        query = query.where(in_active_experiments())
    expr = parse_filter(filter_text)
    if expr is not None:
        query = query.where(_compile(expr))
    query = _order(query, parse_order_by(order_by), dialect)
    return query.offset(bindparam("page_offset")).limit(bindparam("page_limit"))


def _compile(expr: Expr) -> ColumnElement[bool]:
    if isinstance(expr, And):
        return and_(*(_compile(item) for item in expr.items))
    if isinstance(expr, Or):
        return or_(*(_compile(item) for item in expr.items))
    return _comparison(expr)


def _comparison(c: Comparison) -> ColumnElement[bool]:
    runs = db.runs
    _check_pattern(c)
    if c.kind == "attribute":
        return _apply(runs.c[_ATTRIBUTE_COLUMNS[c.key]], c.op, c.value)
    table: Table = {"metric": db.latest_metrics, "param": db.params, "tag": db.tags}[c.kind]
    # Uncorrelated IN subqueries: each is evaluated once (SQLite indexes its result), where
    # correlated EXISTS probes once per run (about 15% faster on SQLite, 1,000 runs).
    with_key = select(table.c.run_id).where(table.c.key == c.key)
    if c.op == "IS NULL":
        return runs.c.id.not_in(with_key)
    if c.op == "IS NOT NULL":
        return runs.c.id.in_(with_key)
    matching = with_key.where(_apply(table.c.value, c.op, c.value))
    if c.kind == "metric":
        matching = matching.where(table.c.is_nan == false())  # NaN compares false, as in SQL
    return runs.c.id.in_(matching)


def _check_pattern(c: Comparison) -> None:
    if c.op in ("LIKE", "ILIKE") and isinstance(c.value, str):
        trailing = len(c.value) - len(c.value.rstrip("\\"))
        if trailing % 2:
            raise InvalidInput(
                f"the {c.op} pattern {c.value!r} ends with a lone backslash, which escapes "
                "nothing; write two backslashes for a literal one"
            )


def _apply(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    return _OPERATORS[op](column, value)  # type: ignore[no-any-return]


def _order(query: Select[Any], keys: Sequence[Any], dialect: str) -> Select[Any]:
    runs = db.runs
    clauses: list[Any] = []
    for i, key in enumerate(keys):
        if key.kind == "attribute":
            column: Any = runs.c[_ATTRIBUTE_COLUMNS[key.key]]
        else:
            table = {"metric": db.latest_metrics, "param": db.params, "tag": db.tags}[key.kind]
            alias = table.alias(f"order_{i}")
            query = query.outerjoin(
                alias, and_(alias.c.run_id == runs.c.id, alias.c.key == key.key)
            )
            if key.kind == "metric":  # numbers, then NaN, then runs without the metric
                clauses.append(
                    case((alias.c.run_id.is_(None), 2), (alias.c.is_nan.is_(True), 1), else_=0)
                )
            column = alias.c.value
        text = key.kind in ("param", "tag") or ATTRIBUTES.get(key.key) == "string"
        if text and dialect == "postgresql":
            column = column.collate("C")  # byte order, as SQLite sorts, whatever the locale
        clauses.append(column.asc().nulls_last() if key.ascending else column.desc().nulls_last())
    clauses += [runs.c.start_time.desc(), runs.c.id]
    return query.order_by(*clauses)


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"page_token {token!r} is not one this search returned") from exc
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**62:
        raise InvalidInput(f"page_token {token!r} is not one this search returned")
    return offset
