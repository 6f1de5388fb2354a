"""Prediction log: requests, responses and feedback written to day-partitioned Parquet files."""

from __future__ import annotations

import logging
import math
import os
import queue
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput, InvalidState

log = logging.getLogger("loopml")

COLUMNS = ("request_id", "row", "ts", "model_version", "latency_ms", "status", "sample_rate")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_STOP = object()


@dataclass(eq=False)
class _Record:
    """One request as the caller handed it over; turned into rows on the writer thread."""

    request_id: str
    inputs: Any
    outputs: Any
    model_version: str
    latency_ms: float
    status: int
    ts: datetime
    sample_rate: float
    rows: int = 1


@dataclass(eq=False)
class _Feedback:
    """Ground truth for one earlier request."""

    request_id: str
    label: object
    ts: datetime


@dataclass(eq=False)
class _Group:
    """Requests waiting for one file: same partition folder, same columns."""

    folder: Path
    items: list[Any] = field(default_factory=list)
    rows: int = 0


class PredictionLog:
    """Log predictions and feedback to Parquet through a background writer that never blocks."""

    def __init__(
        self,
        root: Path,
        deployment: str,
        *,
        sample_rate: float = 1.0,
        flush_rows: int = 1000,
        flush_seconds: float = 1.0,
        max_queue: int = 10_000,
        seed: int | None = None,
    ) -> None:
        self.deployment = _check_name(deployment)
        if not _is_number(sample_rate) or not 0 < sample_rate <= 1:
            raise InvalidInput(f"sample_rate must be above 0 and at most 1, not {sample_rate!r}")
        for name, count in (("flush_rows", flush_rows), ("max_queue", max_queue)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise InvalidInput(f"{name} must be an integer of 1 or more, not {count!r}")
        if not _is_number(flush_seconds) or not math.isfinite(flush_seconds) or flush_seconds <= 0:
            raise InvalidInput(
                f"flush_seconds must be a finite number above 0, not {flush_seconds!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidInput(f"seed must be an integer or None, not {seed!r}")
        self.root = Path(root)
        self.sample_rate = float(sample_rate)
        self.flush_rows = flush_rows
        self.flush_seconds = float(flush_seconds)
        self.dropped = 0  # requests refused because the queue was full
        self.failed = 0  # requests or feedback that could not be turned into rows or written
        self._rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._closed = False
        self._known: set[Path] = set()
        self._thread = threading.Thread(
            target=self._run, name=f"prediction-log-{self.deployment}", daemon=True
        )
        self._thread.start()

    def record(
        self,
        *,
        request_id: str,
        inputs: Any,
        outputs: Any,
        model_version: str,
        latency_ms: float,
        status: int = 200,
        ts: datetime | None = None,
    ) -> None:
        """Queue one request's rows for the log, or skip it by sampling; never waits on I/O."""
        _check_text("request_id", request_id)
        _check_text("model_version", model_version)
        if not _is_number(latency_ms) or not math.isfinite(latency_ms) or latency_ms < 0:
            raise InvalidInput(f"latency_ms must be a finite number, 0 or more, not {latency_ms!r}")
        if isinstance(status, bool) or not isinstance(status, int):
            raise InvalidInput(f"status must be an HTTP status code (int), not {status!r}")
        when, rate = _utc(ts, "ts") or datetime.now(UTC), self.sample_rate
        if rate < 1 and self._rng.random() >= rate:
            return
        self._put(
            _Record(request_id, inputs, outputs, model_version, latency_ms, status, when, rate)
        )

    def record_feedback(
        self, request_id: str, label: object, *, ts: datetime | None = None
    ) -> None:
        """Queue the ground truth `label` for the earlier request `request_id`."""
        _check_text("request_id", request_id)
        self._put(_Feedback(request_id, label, _utc(ts, "ts") or datetime.now(UTC)))

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far; return False if `timeout` seconds passed first."""
        done = threading.Event()
        self._check_open()
        self._queue.put(done)  # waits while the queue is full, as a flush must
        return done.wait(timeout)

    def close(self) -> None:
        """Write everything queued and stop the writer thread; later records are refused."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        while not self._queue.empty():  # a flush that raced with close: its rows are written
            item = self._queue.get_nowait()
            if isinstance(item, threading.Event):
                item.set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidState(
                f"prediction log for deployment {self.deployment!r} is closed; "
                "open a new PredictionLog to record more"
            )

    def _put(self, item: object) -> None:
        with self._lock:  # so that nothing is queued behind the stop marker
            self._check_open()
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                # Serving must not slow down because the disk did: lose the row, count it.
                self.dropped += 1

    def _run(self) -> None:
        groups: dict[tuple[Any, ...], _Group] = {}
        pending, started = 0, 0.0
        while True:
            left = started + self.flush_seconds - time.monotonic()
            try:
                item = self._queue.get(timeout=max(0.0, left) if pending else None)
            except queue.Empty:
                item = None
            if isinstance(item, _Record | _Feedback):
                if not pending:
                    started = time.monotonic()
                try:
                    pending += self._add(groups, item)
                except (InvalidInput, ValueError, TypeError) as exc:
                    log.warning("prediction log skipped request %r: %s", item.request_id, exc)
                    self.failed += 1
                except Exception:  # the writer must outlive any one bad request
                    log.exception("prediction log skipped request %r", item.request_id)
                    self.failed += 1
            due = pending >= self.flush_rows or time.monotonic() - started >= self.flush_seconds
            if item is _STOP or isinstance(item, threading.Event) or (pending and due):
                for group in groups.values():
                    self._write(group)
                groups.clear()
                pending = 0
            if isinstance(item, threading.Event):
                item.set()
            if item is _STOP:
                return

    def _add(self, groups: dict[tuple[Any, ...], _Group], item: _Record | _Feedback) -> int:
        """File `item` under its partition and schema; return its row count."""
        day = f"date={item.ts.date().isoformat()}"
        if isinstance(item, _Feedback):
            folder = Path("feedback", f"deployment={self.deployment}", day)
            # Labels of different types cannot share one Parquet column.
            key: tuple[Any, ...] = (folder, type(item.label).__name__)
            rows = 1
        else:
            item.inputs, item.outputs = _tidy(item.inputs), _tidy(item.outputs)
            counts = {_count(value) for value in (item.inputs, item.outputs) if value is not None}
            if len(counts) > 1:
                raise InvalidInput(f"inputs and outputs have different row counts {sorted(counts)}")
            # A refused or failed request has no inputs or outputs to show; it is still one row.
            rows = item.rows = counts.pop() if counts else 1
            folder = Path(f"deployment={self.deployment}", day)
            key = (folder, _schema(item.inputs), _schema(item.outputs))
        group = groups.setdefault(key, _Group(folder))
        group.items.append(item)
        group.rows += rows
        return rows

    def _write(self, group: _Group) -> None:
        folder = self.root / group.folder
        tmp = folder / f".tmp-{uuid.uuid4().hex}.parquet"
        if not group.rows:
            return
        try:
            frame = _frame(group.items)
            folder.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as file:
                frame.to_parquet(file, engine="pyarrow", index=False)
                file.flush()
                os.fsync(file.fileno())
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            tmp.replace(folder / f"part-{stamp}-{uuid.uuid4().hex}.parquet")
            # The rename is durable only once the folder is; new folders need their parents too.
            _fsync_dir(folder)
            if folder not in self._known:
                for parent in folder.relative_to(self.root).parents:
                    _fsync_dir(self.root / parent)
                self._known.add(folder)
        except Exception:
            tmp.unlink(missing_ok=True)
            # Same columns but different dtypes (an int column that once held text) cannot share a
            # file; the slower per-dtype split runs only when that happens.
            split: dict[tuple[str, ...], _Group] = {}
            for item in group.items:
                key = _dtypes(item) if isinstance(item, _Record) else ()
                part = split.setdefault(key, _Group(group.folder))
                part.items.append(item)
                part.rows += item.rows if isinstance(item, _Record) else 1
            if len(split) > 1:
                for part in split.values():
                    self._write(part)
                return
            log.exception(
                "prediction log could not write %d requests to %s", len(group.items), folder
            )
            self.failed += len(group.items)


def read_predictions(
    root: Path, deployment: str, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Return the logged rows of `deployment` with since <= ts < until, oldest first."""
    name = _check_name(deployment)
    start, end = _utc(since, "since"), _utc(until, "until")
    frame = _read(Path(root) / f"deployment={name}", start, end)
    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    if start is not None:
        frame = frame[frame["ts"] >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame["ts"] < pd.Timestamp(end)]
    return frame.sort_values(["ts", "request_id", "row"], kind="stable").reset_index(drop=True)


def read_labelled(
    root: Path, deployment: str, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Return the logged rows that have feedback, each with the latest `label` of its request."""
    predictions = read_predictions(root, deployment, since=since, until=until)
    # Feedback arrives after its prediction, so any day from `since` on may hold it.
    labels = read_feedback(root, deployment, since=since)
    if labels.empty or predictions.empty:
        return predictions.iloc[0:0].assign(label=pd.Series(dtype=object))
    return predictions.merge(labels.reset_index(), on="request_id", how="inner")


def iter_predictions(
    root: Path,
    deployment: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_rows: int = 65_536,
    on_file: Callable[[Path], None] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the logged rows of `deployment` with since <= ts < until in chunks of at most
    `batch_rows` rows, file by file, so a long log is read in bounded memory; `on_file` is
    called with each file once it is read."""
    import pyarrow.parquet as pq

    name = _check_name(deployment)
    start, end = _utc(since, "since"), _utc(until, "until")
    for path in _files(Path(root) / f"deployment={name}", start, end):
        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
            for batch in batches:
                frame = batch.to_pandas()
                if start is not None:
                    frame = frame[frame["ts"] >= pd.Timestamp(start)]
                if end is not None:
                    frame = frame[frame["ts"] < pd.Timestamp(end)]
                if not frame.empty:
                    yield frame
        except (ValueError, OSError, TypeError, NotImplementedError) as exc:
            log.warning("prediction log skipped unreadable file %s: %s", path, exc)
        if on_file is not None:
            on_file(path)


def log_files(
    root: Path, deployment: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[Path]:
    """Return the files that may hold rows of `deployment` with since <= ts < until."""
    base = Path(root) / f"deployment={_check_name(deployment)}"
    return list(_files(base, _utc(since, "since"), _utc(until, "until")))


def read_feedback(root: Path, deployment: str, *, since: datetime | None = None) -> pd.Series:
    """Return the latest label of each request with feedback sent on or after `since`'s day,
    indexed by request id."""
    base = Path(root) / "feedback" / f"deployment={_check_name(deployment)}"
    feedback = _read(base, _utc(since, "since"), None)
    if feedback.empty:
        return pd.Series(dtype=object, name="label")
    latest = feedback.sort_values("ts", kind="stable").drop_duplicates("request_id", keep="last")
    return latest.set_index("request_id")["label"]


def _files(base: Path, start: datetime | None, end: datetime | None) -> Iterator[Path]:
    """Yield the log's files in the day partitions from `start`'s day to `end`'s."""
    for folder in sorted(base.glob("date=*")):
        try:
            day = date.fromisoformat(folder.name.removeprefix("date="))
        except ValueError:
            continue  # not a partition this log wrote
        if (start is not None and day < start.date()) or (end is not None and day > end.date()):
            continue
        yield from sorted(folder.glob("part-*.parquet"))


def _read(base: Path, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    frames = []
    for path in _files(base, start, end):
        try:
            frames.append(pd.read_parquet(path, engine="pyarrow"))
        # pyarrow's errors subclass these builtins (ArrowInvalid is a ValueError, ArrowIOError
        # an OSError); one bad file must not hide the rest of the log.
        except (ValueError, OSError, TypeError, NotImplementedError) as exc:
            log.warning("prediction log skipped unreadable file %s: %s", path, exc)
    frames = [frame for frame in frames if not frame.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _tidy(value: Any) -> Any:
    """Return `value` as None, a DataFrame, a dict of arrays, or an array with one entry a row."""
    if value is None or isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, pd.Series):
        return value.to_frame(name=0 if value.name is None else value.name)
    if isinstance(value, Mapping):
        return {str(name): np.asarray(array) for name, array in value.items()}
    array = np.asarray(value)
    if array.ndim == 0:
        raise InvalidInput(f"inputs and outputs need one entry per row, not a scalar {value!r}")
    return array


def _count(value: Any) -> int:
    if isinstance(value, dict):
        counts = {len(array) for array in value.values()}
        if len(counts) != 1:
            raise InvalidInput(f"named arrays have different lengths {sorted(counts)}")
        return counts.pop()
    return len(value)


def _schema(value: Any) -> tuple[Any, ...]:
    """Return what decides the columns `value` becomes; it is cheap, so it runs per request."""
    if value is None:
        return ()
    if isinstance(value, pd.DataFrame):
        return ("frame", *value.columns)
    if isinstance(value, dict):
        return ("named", *((name, a.shape[1:], a.dtype.str) for name, a in value.items()))
    return ("array", value.shape[1:], value.dtype.str)


def _dtypes(item: _Record) -> tuple[str, ...]:
    """Return the dtypes of a request's columns, with the type held by each object column."""
    found: list[str] = []
    for value in (item.inputs, item.outputs):
        if isinstance(value, pd.DataFrame):
            columns = [value.iloc[:, j].to_numpy() for j in range(value.shape[1])]
        elif isinstance(value, dict):
            columns = list(value.values())
        else:
            columns = [] if value is None else [value]
        for array in columns:
            first = type(array.flat[0]).__name__ if array.dtype == object and array.size else ""
            found.append(array.dtype.str + first)
    return tuple(found)


def _frame(items: list[Any]) -> pd.DataFrame:
    """Return one table of the rows of `items`, all requests or all feedback of one schema."""
    ms = np.array([int(item.ts.timestamp() * 1000) for item in items], dtype="int64")
    if isinstance(items[0], _Feedback):
        ts = pd.to_datetime(ms, unit="ms", utc=True).as_unit("ms")
        ids = [item.request_id for item in items]
        return pd.DataFrame({"request_id": ids, "ts": ts, "label": [i.label for i in items]})
    counts = np.array([item.rows for item in items])
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    meta = pd.DataFrame(
        {
            name: np.repeat(np.array([getattr(item, name) for item in items], dtype=object), counts)
            for name in COLUMNS
            if name != "row"
        }
    )
    meta.insert(1, "row", np.arange(len(meta)) - starts)
    meta["ts"] = pd.to_datetime(np.repeat(ms, counts), unit="ms", utc=True).as_unit("ms")
    meta = meta.astype({"latency_ms": "float64", "status": "int64", "sample_rate": "float64"})
    parts = [_stack([i.inputs for i in items], "in", bare=False)]
    parts.append(_stack([i.outputs for i in items], "out", bare=True))
    return pd.concat([meta, *(part for part in parts if len(part.columns))], axis=1)


def _stack(values: list[Any], prefix: str, *, bare: bool) -> pd.DataFrame:
    """Return the values (all of one schema) stacked, in columns prefix.<name>, or just prefix if
    `bare` and there is one."""
    first = values[0]
    if first is None:
        return pd.DataFrame()
    if isinstance(first, pd.DataFrame):
        frame = pd.concat(values, ignore_index=True)
        columns = {str(name): frame.iloc[:, j] for j, name in enumerate(frame.columns)}
    elif isinstance(first, dict):
        columns = {name: _column(np.concatenate([v[name] for v in values])) for name in first}
    else:
        array = np.concatenate(values)
        if array.ndim == 2:
            columns = {str(j): array[:, j] for j in range(array.shape[1])}
        else:
            columns = {"0": _column(array)}
    if bare and len(columns) == 1:
        return pd.DataFrame({prefix: next(iter(columns.values()))})
    return pd.DataFrame({f"{prefix}.{name}": column for name, column in columns.items()})


def _column(array: np.ndarray[Any, Any]) -> Any:
    """Return a 1-d array as is, and a deeper one as one nested list per row."""
    return array if array.ndim == 1 else [row.tolist() for row in array]


def _check_name(deployment: object) -> str:
    if not isinstance(deployment, str) or not _NAME.fullmatch(deployment):
        raise InvalidInput(
            f"deployment name {deployment!r} is not allowed; use 1-128 letters, digits, _ . - "
            "not starting with '.' (for example 'churn-prod')"
        )
    return deployment


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name} must be a non-empty string, not {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(
            f"{name} must be a timezone-aware datetime, not {value!r}; use datetime.now(UTC)"
        )
    return value.astimezone(UTC)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # Windows cannot open a folder to fsync it
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "PredictionLog",
    "iter_predictions",
    "log_files",
    "read_feedback",
    "read_labelled",
    "read_predictions",
]
