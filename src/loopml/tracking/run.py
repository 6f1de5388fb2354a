"""The live run handle: every fluent call's explicit form, safe to share between threads."""

from __future__ import annotations

import logging
import operator
import sys
import threading
import time
from collections.abc import Mapping
from contextvars import Token
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loopml.core.journal import Journal
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, InvalidState
from loopml.tracking import artifacts, runs
from loopml.tracking.current import check_key, current_run
from loopml.tracking.entities import ArtifactInfo, MetricPoint, RunRecord, RunStatus
from loopml.tracking.writer import MetricRow, MetricWriter, format_line

if TYPE_CHECKING:
    from loopml.data.entities import DatasetVersion

log = logging.getLogger("loopml")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


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
        try:
            for run in live:
                try:
                    run.end(status)
                except Exception as exc:  # noqa: BLE001 - end the others; this one's journal stays
                    log.warning("LoopML: could not end run %s at exit: %s", run.id, exc)
        finally:
            self.writer.close()

    def after_fork_in_child(self) -> None:
        """Leave the parent's runs to the parent, and start with a writer of this process's own."""
        inherited, self._live = list(self._live.values()), {}
        self._lock = threading.Lock()  # the parent's may have been held at the fork
        for run in inherited:
            run.disown()
        self.writer = MetricWriter(self.writer.store)


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
        self._end_lock = threading.Lock()
        self._ended = False
        self._foreign = False
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
            self._keys.add(check_key(key, "metric"))
        part = self._row(key, value, step, timestamp)
        with self._lock:
            self._check_open()
            row = (self.id, self._next_seq, *part)
            self._next_seq += 1
            self._journal.append(format_line(row))
            self._writer.submit(row)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int = 0, timestamp: int | None = None
    ) -> None:
        """Record several metrics at one step in one journal write."""
        for key in metrics:
            if key not in self._keys:
                self._keys.add(check_key(key, "metric"))
        parts = [self._row(k, v, step, timestamp) for k, v in metrics.items()]
        with self._lock:
            self._check_open()
            rows: list[MetricRow] = []
            for part in parts:
                rows.append((self.id, self._next_seq, *part))
                self._next_seq += 1
            self._journal.append("".join(map(format_line, rows)))
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

    def log_input(self, dataset: DatasetVersion | str, context: str = "") -> DatasetVersion:
        """Record that this run read a dataset version (a DatasetVersion or a ref like
        'churn@v2'); return the version, so `run.log_input("churn@latest")` pins it."""
        from loopml.data import versions

        self._check_open()
        if isinstance(dataset, str):
            dataset = versions.get(self.ws, dataset)
        elif not hasattr(dataset, "manifest_digest"):
            raise InvalidInput(
                f"log_input takes a dataset version or a ref like 'churn@v2', not "
                f"{type(dataset).__name__}"
            )
        if len(context) > 64:
            raise InvalidInput(f"input context {context[:20]!r}... is over 64 characters")
        versions.log_input(self.ws, self.id, dataset, context)
        return dataset

    def metric_history(self, key: str) -> list[MetricPoint]:
        """Return every stored point of a metric, including ones logged a moment ago."""
        self._writer.flush()
        return runs.metric_history(self.ws, self.id, key)

    def info(self) -> RunRecord:
        """Return the run as stored now."""
        self._writer.flush()
        return runs.get(self.ws, self.id)

    def end(self, status: RunStatus = "FINISHED") -> None:
        """Flush every metric, set the final status and release the journal; idempotent.

        A second caller waits for the first to finish. If the store cannot be written, the
        run stays open (call `end` again) and its journal keeps every point for replay.
        """
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise InvalidInput(f"status {status!r} is not one of FINISHED, FAILED, KILLED")
        with self._end_lock:
            if self.status != "RUNNING" or self._foreign:
                return
            with self._lock:
                self._ended = True  # no point may slip in after the final flush
            try:
                self._writer.flush(then=lambda conn: runs.set_ended(conn, self.id, status))
            except BaseException:
                with self._lock:
                    self._ended = False
                raise
            self.status = status
            self._journal.close(remove=True)
        self._tracker.discard(self)
        self._leave_context()

    def disown(self) -> None:
        """Detach this run from a forked child: the parent keeps logging and ending it."""
        # No locks here: the child has one thread, and a lock copied mid-use would never free.
        self._foreign = True
        self._journal.close_inherited()

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
        if self._foreign:
            raise InvalidState(
                f"run {self.id} belongs to the parent of this forked process; log from here "
                "into a run of its own: `with loopml.start_run(nested=True):`"
            )
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
        if not (_INT64_MIN <= step <= _INT64_MAX and _INT64_MIN <= ts <= _INT64_MAX):
            raise InvalidInput(
                f"step and timestamp of metric {key!r} must fit in 64 bits, not {step}, {ts}"
            )
        return key, value, step, ts


def _mapping(values: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(values, Mapping):
        raise InvalidInput(
            f"{what} must be a mapping of names to values, not {type(values).__name__}"
        )
    return values
