"""Metric points into the store: idempotent inserts and a background writer that batches them."""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, and_, or_

from loopml.core.store import Store
from loopml.core.store import schema as db
from loopml.core.store.database import insert_for_dialect

log = logging.getLogger("loopml")

# run_id, seq, key, value, step, timestamp
MetricRow = tuple[str, int, str, float, int, int]


def format_line(row: MetricRow) -> str:
    """Return the journal line of a metric point (keys never hold tabs or newlines)."""
    _, seq, key, value, step, ts = row
    return f"{seq}\t{key}\t{value!r}\t{step}\t{ts}\n"


def parse_line(run_id: str, line: str) -> MetricRow:
    """Return the metric point a journal line holds; ValueError if it is not one."""
    seq, key, value, step, ts = line.split("\t")
    return run_id, int(seq), key, float(value), int(step), int(ts)


def store_metrics(conn: Connection, rows: Sequence[MetricRow]) -> None:
    """Insert metric points and move each run's latest values; replaying rows adds nothing."""
    if not rows:
        return
    # Sorted: concurrent writers on PostgreSQL then lock rows in one order (no deadlocks).
    points = sorted(map(_point, rows), key=lambda p: (p[0], p[1]))
    insert_points, upsert_latest = _statements(conn.dialect)
    # The points go to the driver's executemany as they are: SQLAlchemy's per-row parameter
    # processing cost more than SQLite's own work on this, the hottest write path.
    if conn.dialect.paramstyle == "qmark":
        conn.exec_driver_sql(insert_points, points)
    else:
        conn.exec_driver_sql(insert_points, [dict(zip(_COLUMNS, p, strict=True)) for p in points])
    latest: dict[tuple[str, str], tuple[Any, ...]] = {}
    for point in points:
        slot = (point[0], point[2])
        best = latest.get(slot)
        if best is None or (point[5], point[6]) >= (best[5], best[6]):
            latest[slot] = point
    conn.execute(
        upsert_latest,
        [
            {k: v for k, v in zip(_COLUMNS, latest[slot], strict=True) if k != "seq"}
            for slot in sorted(latest)  # in key order, like every other write (no deadlocks)
        ],
    )


_COLUMNS = ("run_id", "seq", "key", "value", "is_nan", "step", "timestamp")


@functools.cache
def _statements(dialect: Dialect) -> tuple[str, Any]:
    """Build the two metric statements once per dialect: building them costs more than running."""
    insert = insert_for_dialect(dialect.name)
    points = insert(db.metrics).on_conflict_do_nothing(index_elements=["run_id", "seq"])
    # Compiled for the driver, with columns in _COLUMNS order (the table's own order).
    compiled = points.compile(dialect=dialect)
    assert tuple(compiled.positiontup or _COLUMNS) == _COLUMNS
    current = db.latest_metrics.c
    latest = insert(db.latest_metrics)
    latest = latest.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={
            "value": latest.excluded.value,
            "is_nan": latest.excluded.is_nan,
            "step": latest.excluded.step,
            "timestamp": latest.excluded.timestamp,
        },
        where=or_(
            latest.excluded.step > current.step,
            and_(
                latest.excluded.step == current.step, latest.excluded.timestamp >= current.timestamp
            ),
        ),
    )
    return str(compiled), latest


def _point(row: MetricRow) -> tuple[str, int, str, float, bool, int, int]:
    run_id, seq, key, value, step, timestamp = row
    nan = math.isnan(value)
    return run_id, seq, key, 0.0 if nan else value, nan, step, timestamp


class MetricWriter:
    """Batches submitted points into the store from a background thread.

    `submit` only appends to a list; the thread writes every `interval` seconds or when
    `batch_size` points wait. `flush` writes what is pending in the caller's thread and returns
    once everything submitted before it is committed. A failed write keeps its points pending
    (they are also in the journal) and is raised by the next `flush`.
    """

    def __init__(self, store: Store, *, interval: float = 0.2, batch_size: int = 2000) -> None:
        self.store = store
        self._interval = interval
        self._batch_size = batch_size
        self._pending: list[MetricRow] = []
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, row: MetricRow) -> None:
        """Queue one point."""
        self.submit_many((row,))

    def submit_many(self, rows: Sequence[MetricRow]) -> None:
        """Queue points; the thread is woken early only once a full batch waits."""
        with self._pending_lock:
            self._pending.extend(rows)
            size = len(self._pending)
        if self._thread is None:
            self._start()
        if size >= self._batch_size:
            self._wake.set()

    def flush(self, then: Callable[[Connection], object] | None = None) -> None:
        """Write every pending point now, then run `then` in the same transaction.

        Raises if the write fails; the points stay pending for the next attempt.
        """
        self._write_pending(raise_errors=True, then=then)

    def close(self) -> None:
        """Flush and stop the thread."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _start(self) -> None:
        with self._pending_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="loopml-metric-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._write_pending(raise_errors=False)

    def _write_pending(
        self, *, raise_errors: bool, then: Callable[[Connection], object] | None = None
    ) -> None:
        with self._write_lock:
            with self._pending_lock:
                batch, self._pending = self._pending, []
            if not batch and then is None:
                return
            try:
                with self.store.write() as conn:
                    store_metrics(conn, batch)
                    if then is not None:
                        then(conn)
                self._error = None
            except BaseException as exc:
                with self._pending_lock:
                    self._pending[:0] = batch
                if raise_errors:
                    raise
                if self._error is None:
                    log.warning("LoopML: metric write failed, will retry: %s", exc)
                self._error = exc
