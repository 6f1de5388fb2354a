"""The store side of a pipeline run: its run, a nested run and a row per step, logs, metrics.

Each step opens in one write transaction (its run, tags, params, dataset inputs and step row
together), so a cache hit costs one transaction, or two when it has metrics to log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection

from loopml.core.workspace import Workspace
from loopml.data.versions import link_input
from loopml.errors import InvalidInput
from loopml.pipelines import records
from loopml.pipelines.fingerprint import CodeFingerprint
from loopml.pipelines.graph import Node
from loopml.pipelines.params import exact_text, param_text
from loopml.pipelines.records import StepValue
from loopml.pipelines.step_log import Logged
from loopml.pipelines.task import Outcome
from loopml.tracking import context, runs
from loopml.tracking.current import check_key
from loopml.tracking.entities import RunRecord, RunStatus
from loopml.tracking.run import Run

# The params exactly as bound, for resume (see params.exact_text).
PARAMS_TAG = "loopml.pipeline.params"
DATASETS_TAG = "loopml.pipeline.datasets"
CACHE_TAG = "loopml.pipeline.cache"  # "off" for a --no-cache run, which resumes without it


class Recorder:
    """Writes what a driver decides into the metadata store and the run artifacts."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def open_pipeline_run(
        self,
        *,
        pipeline: str,
        source: str,
        params: Mapping[str, Any],
        datasets: Mapping[str, str],
        executor: str,
        cache: bool,
        experiment: str | int,
        parent_run_id: str | None = None,
        run_name: str | None = None,
        extra_tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Open the run of a pipeline, with its params and what resume needs in tags."""
        exact = exact_text(params)
        tags = {
            **context.capture(),
            "loopml.run_type": "pipeline",
            "loopml.pipeline": pipeline,
            "loopml.pipeline.source": source,
            "loopml.executor": executor,
            CACHE_TAG: "on" if cache else "off",
            DATASETS_TAG: json.dumps(dict(datasets), sort_keys=True),
            **({PARAMS_TAG: exact} if exact is not None else {}),
            **(extra_tags or {}),
        }
        record = runs.create(
            self.ws,
            experiment,
            name=run_name or pipeline,
            parent_id=parent_run_id,
            tags=tags,
            params={k: param_text(v) for k, v in params.items()},
        )
        return Run(self.ws, record, 0)

    def reopen_pipeline_run(self, run_id: str) -> Run:
        """Mark a stopped pipeline run RUNNING again, for resume."""
        record, writer = runs.resume(self.ws, run_id)
        return Run(self.ws, record, writer)

    def open_step(
        self,
        parent: Run,
        node: Node,
        key: str | None,
        *,
        caching: bool,
        code: CodeFingerprint,
        inputs: list[StepValue],
    ) -> Run:
        """Open a step's run and its RUNNING row, before its first attempt."""
        code_blob = self.ws.blobs.put_bytes(
            json.dumps(code.sources, sort_keys=True, indent=1).encode()
        )

        def rows(conn: Connection, run_id: str) -> None:
            self._insert_row(
                conn,
                parent,
                node,
                run_id,
                key=key,
                status="RUNNING",
                inputs=inputs,
                code_digest=code_blob.digest,
            )

        record = self._create(parent, node, {"loopml.cache": "miss" if caching else "off"}, rows)
        return Run(self.ws, record, 0)

    def record_cached(
        self,
        parent: Run,
        node: Node,
        *,
        key: str,
        source: str,
        outputs: list[StepValue],
        inputs: list[StepValue],
        metrics: Mapping[str, float],
    ) -> str:
        """Record a step whose outputs were reused from run `source`; return its run id."""

        def rows(conn: Connection, run_id: str) -> None:
            self._insert_row(
                conn,
                parent,
                node,
                run_id,
                key=key,
                status="CACHED",
                inputs=inputs,
                cached_from=source,
            )
            records.finish_step(conn, run_id, status="CACHED", attempts=0, outputs=outputs)
            if not metrics:
                runs.set_ended(conn, run_id, "FINISHED")

        tags = {"loopml.cache": "hit", "loopml.cached_from": source}
        record = self._create(parent, node, tags, rows)
        if metrics:
            step_run = Run(self.ws, record, 0)
            step_run.log_metrics(metrics)
            step_run.end("FINISHED")
        return record.id

    def record_success(
        self, step_run: Run, outcome: Outcome, outputs: list[StepValue], attempts: int
    ) -> None:
        """Record a step whose attempt returned, with its outputs, logs and metrics."""
        self._store_logs(step_run, outcome)
        self._replay(step_run, outcome.logged)
        with self.ws.store.write() as conn:
            records.finish_step(
                conn, step_run.id, status="COMPLETED", attempts=attempts, outputs=outputs
            )
        metrics = scores(outcome.metrics)
        if metrics:
            step_run.log_metrics(metrics)
        step_run.end("FINISHED")

    def record_attempt_failure(self, step_run: Run, outcome: Outcome, attempt: int) -> None:
        """Keep the traceback of an attempt that will be retried, and what it logged."""
        self._replay(step_run, outcome.logged)
        step_run.log_text(outcome.error or "", f"attempt-{attempt}/traceback.txt")

    def record_failure(self, step_run: Run, outcome: Outcome, attempts: int) -> None:
        """Record a step that failed for good: its traceback, logs and FAILED status."""
        self._store_logs(step_run, outcome)
        self._replay(step_run, outcome.logged)
        step_run.log_text(outcome.error or "", "traceback.txt")
        self.record_stopped(step_run, "FAILED", attempts, outcome.error or "")

    def record_stopped(self, step_run: Run, status: RunStatus, attempts: int, error: str) -> None:
        """End a step's row and run with `status` (its run was stopped, or recording failed)."""
        with self.ws.store.write() as conn:
            records.finish_step(conn, step_run.id, status=status, attempts=attempts, error=error)
        step_run.end(status)

    def latest_metrics(self, run_id: str) -> dict[str, float]:
        """Return the last value of each metric a step run logged (to reuse with its outputs)."""
        with self.ws.store.read() as conn:
            return records.latest_metrics(conn, run_id)

    def _create(
        self,
        parent: Run,
        node: Node,
        tags: Mapping[str, str],
        rows: Callable[[Connection, str], None],
    ) -> RunRecord:
        params = {k: param_text(v) for k, v in node.params.items()}
        params.update({k: v.ref for k, v in node.datasets.items()})
        return runs.create(
            self.ws,
            parent.experiment_id,
            name=node.name,
            parent_id=parent.id,
            tags={
                "loopml.run_type": "step",
                "loopml.step": node.name,
                "loopml.step.function": node.step.reference,
                **tags,
            },
            params=params,
            then=rows,
        )

    @staticmethod
    def _insert_row(
        conn: Connection,
        parent: Run,
        node: Node,
        run_id: str,
        *,
        key: str | None,
        status: str,
        inputs: list[StepValue],
        code_digest: str | None = None,
        cached_from: str | None = None,
    ) -> None:
        """Insert a step's row and inputs, and link the dataset versions it reads."""
        for parameter, version in node.datasets.items():
            link_input(conn, run_id, version, parameter[:64])
            link_input(conn, parent.id, version, node.name[:64])
        records.insert_step(
            conn,
            run_id=run_id,
            pipeline_run_id=parent.id,
            node=node.name,
            function=node.step.reference,
            cache_key=key,
            code_digest=code_digest,
            status=status,
            cached_from=cached_from,
            inputs=inputs,
        )

    @staticmethod
    def _replay(step_run: Run, logged: Logged) -> None:
        """Write what the step logged while it ran (fluent calls inside it) to its run."""
        for key, value, step, ms in logged.points:
            step_run.log_metric(key, value, step, ms)
        if logged.params:
            step_run.log_params(logged.params)
        if logged.tags:
            step_run.set_tags(logged.tags)
        for path, text in logged.texts.items():
            step_run.log_text(text, path)
        for ref, context_name in logged.inputs:
            step_run.log_input(ref, context_name)

    @staticmethod
    def _store_logs(step_run: Run, outcome: Outcome) -> None:
        if outcome.stdout:
            step_run.log_text(outcome.stdout, "stdout.txt")
        if outcome.stderr:
            step_run.log_text(outcome.stderr, "stderr.txt")


def scores(metrics: dict[str, float]) -> dict[str, float]:
    """Return a step's dict output as metrics if every key is a metric name, else nothing.

    Counts by label (`{"<=50K": 100}`) are data, not scores; logging them would fail the run.
    """
    try:
        for key in metrics:
            check_key(key, "metric")
    except InvalidInput:
        return {}
    return metrics
