"""The live run handle: every fluent call's explicit form, safe to share between threads."""

from __future__ import annotations

import operator
import sys
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from pathlib import Path
from types import TracebackType
from typing import Any

from loopml.core.journal import Journal
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, InvalidState
from loopml.tracking import artifacts, runs
from loopml.tracking.entities import ArtifactInfo, MetricPoint, RunRecord, RunStatus
from loopml.tracking.writer import MetricRow, MetricWriter

# The run that fluent calls (loopml.log_metric, ...) write to, per thread and per async task.
current_run: ContextVar[Run | None] = ContextVar("loopml_current_run", default=None)


class Tracker:
    """Per-workspace tracking state: the background metric writer and the runs still open."""

    def __init__(self, ws: Workspace) -> None:
        self.writer = MetricWriter(ws.store)
        self._live: dict[str, Run] = {}
        self._lock = threading.Lock()

    def add(self, run: Run) -> None:
        """Remember an open run, so it is ended if the interpreter exits first."""
        with self._lock:
            self._live[f"{run.id}.{run.writer_number}"] = run

    def discard(self, run: Run) -> None:
        """Forget a run that has ended."""
        with self._lock:
            self._live.pop(f"{run.id}.{run.writer_number}", None)

    def close(self) -> None:
        """End runs left open and flush: FINISHED, or FAILED/KILLED after an uncaught error."""
        with self._lock:
            live = list(self._live.values())
        # The interpreter stores an uncaught exception in sys.last_value before exit handlers run.
        error = getattr(sys, "last_value", None)
        status: RunStatus = (
            "KILLED"
            if isinstance(error, KeyboardInterrupt)
            else "FAILED"
            if error is not None
            else "FINISHED"
        )
        for run in live:
            run.end(status)
        self.writer.close()


def tracker(ws: Workspace) -> Tracker:
    """Return the workspace's tracker."""
    return ws.component("tracking", Tracker)


class Run:
    """An open run: log metrics, params, tags and artifacts; `end` or leave the `with` block."""

    def __init__(self, ws: Workspace, record: RunRecord, writer_number: int) -> None:
        self.ws = ws
        self.id = record.id
        self.name = record.name
        self.experiment_id = record.experiment_id
        self.parent_id = record.parent_id
        self.writer_number = writer_number
        self._tracker = tracker(ws)
        self._writer: MetricWriter = self._tracker.writer
        self._journal = Journal.create(ws.journal_dir, f"{record.id}.{writer_number}")
        self._next_seq = writer_number << 32
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        self._ended = False
        self.status: RunStatus = "RUNNING"
        # Set by the fluent API so that ending this run restores its parent as current.
        self.context_token: Token[Run | None] | None = None
        self.parent: Run | None = None
        self._tracker.add(self)

    def log_metric(
        self, key: str, value: float, step: int = 0, timestamp: int | None = None
    ) -> None:
        """Record one metric value; returns once it is journaled (microseconds)."""
        if key not in self._keys:
            self._keys.add(runs.check_key(key, "metric"))
        part = self._row(key, value, step, timestamp)
        with self._lock:
            self._check_open()
            row = (self.id, self._next_seq, *part)
            self._next_seq += 1
            self._journal.append(_line(row))
            self._writer.submit(row)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int = 0, timestamp: int | None = None
    ) -> None:
        """Record several metrics at one step in one journal write."""
        for key in metrics:
            if key not in self._keys:
                self._keys.add(runs.check_key(key, "metric"))
        parts = [self._row(k, v, step, timestamp) for k, v in metrics.items()]
        with self._lock:
            self._check_open()
            rows: list[MetricRow] = []
            for part in parts:
                rows.append((self.id, self._next_seq, *part))
                self._next_seq += 1
            self._journal.append("".join(map(_line, rows)))
            self._writer.submit_many(rows)

    def log_param(self, key: str, value: Any) -> None:
        """Record a write-once param."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record write-once params, all or none."""
        self._check_open()
        runs.log_params(self.ws, self.id, _mapping(params, "params"))

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag (tags may change)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags."""
        self._check_open()
        runs.set_tags(self.ws, self.id, _mapping(tags, "tags"))

    def log_artifact(
        self, local_path: Path | str, artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        """Store a file or a folder as artifacts of this run."""
        self._check_open()
        return artifacts.log_path(self.ws, self.id, local_path, artifact_path)

    def log_dict(self, obj: Any, artifact_file: str) -> ArtifactInfo:
        """Store a dict as a JSON (or YAML) artifact."""
        self._check_open()
        return artifacts.log_dict(self.ws, self.id, obj, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> ArtifactInfo:
        """Store text as an artifact."""
        self._check_open()
        if not isinstance(text, str):
            raise InvalidInput(f"log_text takes a str, not {type(text).__name__}")
        return artifacts.log_bytes(self.ws, self.id, text.encode(), artifact_file)

    def metric_history(self, key: str) -> list[MetricPoint]:
        """Return every stored point of a metric, including ones logged a moment ago."""
        self._writer.flush()
        return runs.metric_history(self.ws, self.id, key)

    def info(self) -> RunRecord:
        """Return the run as stored now."""
        self._writer.flush()
        return runs.get(self.ws, self.id)

    def end(self, status: RunStatus = "FINISHED") -> None:
        """Flush every metric, set the final status and release the journal; idempotent."""
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise InvalidInput(f"status {status!r} is not one of FINISHED, FAILED, KILLED")
        with self._lock:
            if self._ended:
                return
            self._ended = True
        # One transaction stores the last points and the final status. If it fails, the
        # journal stays and the next process to open the workspace replays it: nothing is lost.
        self._writer.flush(then=lambda conn: runs.set_ended(conn, self.id, status))
        self.status = status
        self._journal.close(remove=True)
        self._tracker.discard(self)
        self._leave_context()

    def _leave_context(self) -> None:
        token, self.context_token = self.context_token, None
        if token is None:
            return
        try:
            current_run.reset(token)
        except ValueError:  # ended from another thread or task than the one that started it
            if current_run.get() is self:
                current_run.set(self.parent)

    @property
    def ended(self) -> bool:
        """Return True once `end` has been called."""
        return self._ended

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status: RunStatus = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        self.end(status)

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, status={self.status!r})"

    def _check_open(self) -> None:
        if self._ended:
            raise InvalidState(
                f"run {self.id} ({self.name}) has ended; start a new run, "
                f"or resume this one with start_run(run_id={self.id!r})"
            )

    @staticmethod
    def _row(key: str, value: Any, step: Any, timestamp: Any) -> tuple[str, float, int, int]:
        if type(value) is not float:
            if isinstance(value, str | bytes) or value is None:
                raise InvalidInput(f"metric {key!r} must be a number, not {value!r}")
            try:
                value = float(value)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"metric {key!r} must be a number, not {value!r}") from exc
        try:
            step = operator.index(step)
            ts = time.time_ns() // 1_000_000 if timestamp is None else operator.index(timestamp)
        except TypeError as exc:
            raise InvalidInput(f"step and timestamp of metric {key!r} must be integers") from exc
        return key, value, step, ts


def _line(row: MetricRow) -> str:
    _, seq, key, value, step, ts = row
    return f"{seq}\t{key}\t{value!r}\t{step}\t{ts}\n"


def parse_line(run_id: str, line: str) -> MetricRow:
    """Return the metric row a journal line holds."""
    seq, key, value, step, ts = line.split("\t")
    return run_id, int(seq), key, float(value), int(step), int(ts)


def _mapping(values: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(values, Mapping):
        raise InvalidInput(
            f"{what} must be a mapping of names to values, not {type(values).__name__}"
        )
    return values
