"""Running pipelines: the driver that schedules steps, checks the cache, retries, and records.

The driver alone talks to the metadata store. For every step that is ready (its upstream steps
done) it computes the cache key, reuses an earlier run's outputs on a hit, and otherwise hands
an attempt to the executor, within the executor's CPUs and GPUs. Several pipeline runs (the
trials of a sweep) share one driver, so a step the trials have in common runs once.
"""

from __future__ import annotations

import heapq
import itertools
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
from blake3 import blake3

from loopml.core.workspace import Workspace, workspace
from loopml.errors import InvalidInput, InvalidState, StepTimeout, WorkerLost
from loopml.pipelines import records
from loopml.pipelines.cache import cache_key
from loopml.pipelines.cache import canonical as canonical_param
from loopml.pipelines.display import Display
from loopml.pipelines.executors import Executor, make_executor
from loopml.pipelines.executors.base import Capacity, Modules
from loopml.pipelines.fingerprint import CodeFingerprint, fingerprint, is_local
from loopml.pipelines.graph import Graph, Node, Pipeline
from loopml.pipelines.materializers import Materializer
from loopml.pipelines.params import from_exact_text
from loopml.pipelines.recording import CACHE_TAG, DATASETS_TAG, PARAMS_TAG, Recorder, scores
from loopml.pipelines.records import StepValue
from loopml.pipelines.results import PipelineResult, StepResult, failure_of
from loopml.pipelines.task import Outcome, StepTask, Stored
from loopml.tracking import runs
from loopml.tracking.entities import RunStatus
from loopml.tracking.run import Run

MAX_BACKOFF = 300.0


@dataclass
class _Job:
    """One pipeline run being driven."""

    pipeline: Pipeline
    graph: Graph
    params: dict[str, Any]
    run: Run
    cache: bool
    reuse: dict[str, records.StepRecord]  # resume: node -> the step that succeeded before
    results: dict[str, StepResult] = field(default_factory=dict)
    values: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # executor value handles
    started: set[str] = field(default_factory=set)
    failed: bool = False
    node_metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """Return the run's metrics: each step's, in graph order, so a later step's value of
        a name two steps log wins however the steps were scheduled."""
        merged: dict[str, float] = {}
        for name in self.graph.nodes:
            merged.update(self.node_metrics.get(name, {}))
        return merged

    def ready(self) -> list[Node]:
        if self.failed:
            return []
        return [
            node
            for name, node in self.graph.nodes.items()
            if name not in self.started
            and all(
                self.results.get(up) is not None and self.results[up].ok for up in node.upstream
            )
        ]

    @property
    def running(self) -> bool:
        return any(n not in self.results for n in self.started)


@dataclass
class _Attempt:
    job: _Job
    node: Node
    step_run: Run
    key: str | None
    number: int
    deadline: float | None
    handle: Any = None


class Driver:
    """Drives one or more pipeline runs on one executor."""

    def __init__(
        self, ws: Workspace, executor: str | Executor, *, display: Display | None = None
    ) -> None:
        self.ws = ws
        self.executor: Executor = make_executor(executor) if isinstance(executor, str) else executor
        self.display = display or Display(enabled=False)
        self.jobs: list[_Job] = []
        self._capacity: Capacity | None = None
        self._cpu_used = 0.0
        self._gpu_used = 0.0
        self._queue: list[tuple[_Job, Node, StepTask, _Attempt]] = []
        self._running: dict[Any, _Attempt] = {}
        self._retries: list[tuple[float, int, _Attempt]] = []
        self._order = itertools.count()
        self._inflight: dict[str, _Attempt] = {}  # cache key -> the attempt computing it
        self._waiting: dict[str, list[tuple[_Job, Node]]] = {}
        self._fingerprints: dict[int, CodeFingerprint] = {}
        self._modules: Modules = {}
        self.recorder = Recorder(ws)

    # ---- building jobs ---------------------------------------------------------------
    def add(
        self,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        *,
        cache: bool = True,
        experiment: str | int | None = None,
        parent_run_id: str | None = None,
        run_name: str | None = None,
        extra_tags: Mapping[str, str] | None = None,
    ) -> _Job:
        """Build the pipeline's graph and open its run; return the job."""
        bound = pipeline.bind(params)
        resolved: dict[str, str] = {}
        graph = pipeline.build(bound, lambda ref: self._dataset(ref, resolved))
        self._check_graph(graph)
        run = self.recorder.open_pipeline_run(
            pipeline=pipeline.name,
            source=pipeline.source or pipeline.reference,
            params=bound,
            datasets=resolved,
            executor=self.executor.name,
            cache=cache,
            experiment=experiment if experiment is not None else pipeline.name,
            parent_run_id=parent_run_id,
            run_name=run_name,
            extra_tags=extra_tags,
        )
        job = _Job(pipeline, graph, bound, run, cache, {})
        self.jobs.append(job)
        return job

    def add_resumed(self, pipeline: Pipeline, run_id: str) -> _Job:
        """Reopen a failed pipeline run: steps that succeeded are reused, the rest run."""
        record = runs.get(self.ws, run_id)
        if record.tags.get("loopml.run_type") != "pipeline":
            raise InvalidInput(f"run {run_id} is not a pipeline run; `loopml pipelines runs`")
        if record.status == "FINISHED":
            raise InvalidState(
                f"pipeline run {run_id} finished; there is nothing to resume (run it again)"
            )
        if record.status == "RUNNING":
            raise InvalidState(
                f"pipeline run {run_id} is still running; resume it once it has stopped"
            )
        resolved: dict[str, str] = json.loads(record.tags.get(DATASETS_TAG, "{}"))
        exact = record.tags.get(PARAMS_TAG)
        bound = (
            pipeline.bind(from_exact_text(exact))
            if exact is not None
            else pipeline.bind(record.params, from_text=True)
        )
        graph = pipeline.build(bound, lambda ref: self._dataset(resolved.get(ref, ref), {}))
        self._check_graph(graph)
        reuse = {
            step.node: step
            for step in records.steps_of(self.ws, run_id)
            if step.status in ("COMPLETED", "CACHED")
        }
        run = self.recorder.reopen_pipeline_run(run_id)
        cache = record.tags.get(CACHE_TAG) != "off"  # a --no-cache run resumes without it
        job = _Job(pipeline, graph, bound, run, cache=cache, reuse=reuse)
        self.jobs.append(job)
        return job

    def _dataset(self, ref: str, resolved: dict[str, str]) -> Any:
        from loopml.data import versions

        version = versions.get(self.ws, ref)
        resolved[ref] = version.ref
        return version

    def _check_graph(self, graph: Graph) -> None:
        """Refuse a step that asks for more than the executor has, before anything runs."""
        for node in graph.nodes.values():
            self._check_fits(node)
            for name, value in node.params.items():
                canonical_param(node.name, name, value)  # unpicklable params fail here
        for node in graph.nodes.values():
            code = self._fingerprint(node)
            names = {name.partition(":")[0] for name in code.sources}
            for module in sorted(names - {node.step.fn.__module__}):
                self._add_module(module)
            self._add_module(node.step.fn.__module__)

    def _add_module(self, name: str) -> None:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if name == "__main__" or not file or not is_local(name):
            return
        digest = blake3(Path(file).read_bytes()).hexdigest()
        self._modules.pop(name, None)  # re-added last: step modules import their helpers
        self._modules[name] = (file, digest)

    def _fingerprint(self, node: Node) -> CodeFingerprint:
        key = id(node.step.fn)
        if key not in self._fingerprints:
            self._fingerprints[key] = fingerprint(node.step.fn)
        return self._fingerprints[key]

    # ---- the loop --------------------------------------------------------------------
    def drive(self) -> None:
        """Run every job to its end (or its first failed step)."""
        self.display.start(sum(len(job.graph.nodes) for job in self.jobs))
        try:
            with self.ws.blob_lock():  # GC waits: outputs are stored before rows point at them
                self._loop()
        except BaseException as exc:
            self._abort("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        finally:
            self.display.stop()
            self.executor.close()
        for job in self.jobs:
            self._end_job(job, "FAILED" if job.failed else "FINISHED")

    def _loop(self) -> None:
        while True:
            progressed = True
            while progressed:  # cache hits can make more steps ready at once
                progressed = False
                for job in self.jobs:
                    for node in job.ready():
                        job.started.add(node.name)
                        self._schedule(job, node)
                        progressed = True
            self._submit_queued()
            if not (self._running or self._retries or self._queue):
                if self._waiting:  # nothing computes what they wait for any more
                    waiting, self._waiting = self._waiting, {}
                    for key, pairs in waiting.items():
                        for job, node in pairs:
                            self._enqueue(job, node, key)
                    continue
                return
            self._wait_once()

    def _key(self, job: _Job, node: Node) -> str:
        inputs: dict[str, str | None] = {
            parameter: job.results[output.node].outputs[output.name].digest
            for parameter, output in node.inputs.items()
        }
        inputs.update({p: v.manifest_digest for p, v in node.datasets.items()})
        return cache_key(node.name, node.step, self._fingerprint(node), node.params, inputs)

    def _schedule(self, job: _Job, node: Node) -> None:
        key = self._key(job, node)
        earlier = job.reuse.get(node.name)
        if earlier is not None and earlier.cache_key == key:
            result = StepResult(
                node.name,
                "CACHED",
                earlier.run_id,
                {v.name: v.stored for v in earlier.outputs},
                cached_from=earlier.cached_from or earlier.run_id,
            )
            job.results[node.name] = result
            self._add_metrics(job, node.name, self.recorder.latest_metrics(earlier.run_id))
            self.display.step_done(job, result, reused=True)
            return
        if job.cache and node.step.options.cache:
            hit = records.find_cached(self.ws, key, self.ws.blobs.exists)
            if hit is not None:
                self._record_cached(job, node, key, *hit)
                return
            if key in self._inflight:
                self._waiting.setdefault(key, []).append((job, node))
                return
        self._enqueue(job, node, key)

    def _enqueue(self, job: _Job, node: Node, key: str) -> None:
        caching = job.cache and node.step.options.cache
        step_run = self.recorder.open_step(
            job.run,
            node,
            key,
            caching=caching,
            code=self._fingerprint(node),
            inputs=self._input_values(job, node),
        )
        attempt = _Attempt(job, node, step_run, key, 1, None)
        if caching:
            self._inflight.setdefault(key, attempt)
        self._queue.append((job, node, self._task(job, node, step_run.id), attempt))

    def _check_fits(self, node: Node) -> None:
        capacity = self._start()
        options = node.step.options
        where = (
            "this machine"
            if self.executor.name == "local"
            else "the largest machine of the Ray cluster"
        )
        if options.gpus > capacity.step_gpu:
            raise InvalidInput(
                f"step {node.name!r} asks for {options.gpus:g} GPU(s) but {where} has "
                f"{capacity.step_gpu:g}; run it where there are GPUs (--executor ray on a "
                "cluster with them) or lower resources={'gpu': ...}"
            )
        if options.cpus > capacity.step_cpu:
            raise InvalidInput(
                f"step {node.name!r} asks for {options.cpus:g} CPUs but {where} has "
                f"{capacity.step_cpu:g}; lower resources={{'cpu': ...}} or use a bigger "
                "machine or cluster"
            )

    def _start(self) -> Capacity:
        if self._capacity is None:
            self._capacity = self.executor.start()
        return self._capacity

    def _submit_queued(self) -> None:
        capacity = self._start() if self._queue else self._capacity
        waiting: list[tuple[_Job, Node, StepTask, _Attempt]] = []
        for job, node, task, attempt in self._queue:
            options = node.step.options
            fits = (
                self._cpu_used + options.cpus <= capacity.cpu + 1e-9  # type: ignore[union-attr]
                and self._gpu_used + options.gpus <= capacity.gpu + 1e-9  # type: ignore[union-attr]
            )
            if not fits:
                waiting.append((job, node, task, attempt))
                continue
            self._submit(job, node, task, attempt)
        self._queue = waiting

    def _submit(self, job: _Job, node: Node, task: StepTask, attempt: _Attempt) -> None:
        options = node.step.options
        passed = [
            job.values[o.node][o.index]
            for p, o in sorted(node.inputs.items())
            if p in task.passed_inputs
        ]
        attempt.handle = self.executor.submit(
            self._modules,
            cloudpickle.dumps(task),
            dict(node.step.options.resources),
            passed,
            outputs=len(node.step.outputs),
        )
        attempt.deadline = time.monotonic() + options.timeout if options.timeout else None
        self._cpu_used += options.cpus
        self._gpu_used += options.gpus
        self._running[attempt.handle] = attempt
        self.display.step_started(job, node.name)

    def _task(self, job: _Job, node: Node, run_id: str) -> StepTask:
        stored: dict[str, Stored] = {}
        passed: dict[str, int] = {}
        custom: dict[str, tuple[Materializer, ...]] = {}
        index = 0
        for parameter, output in sorted(node.inputs.items()):
            handles = job.values.get(output.node)
            if handles:
                passed[parameter] = index
                index += 1
            else:
                stored[parameter] = job.results[output.node].outputs[output.name]
                producer = job.graph.nodes[output.node].step.options.materializers
                if producer:
                    custom[parameter] = producer
        params = {**node.params, **node.datasets}
        return StepTask(
            node.name,
            node.step,
            params,
            stored,
            passed,
            self.ws.settings.blob_uri,
            run_id=run_id,
            input_materializers=custom,
        )

    def _wait_once(self) -> None:
        now = time.monotonic()
        wakeups = [a.deadline for a in self._running.values() if a.deadline is not None]
        if self._retries:
            wakeups.append(self._retries[0][0])
        timeout = max(0.0, min(wakeups) - now) if wakeups else None
        if self._running:
            for finished in self.executor.wait(timeout):
                attempt = self._running.pop(finished.handle, None)
                if attempt is not None:
                    self._release(attempt)
                    self._finished(attempt, finished.outcome, finished.values)
        elif timeout:
            time.sleep(timeout)
        now = time.monotonic()
        for handle, attempt in list(self._running.items()):
            if attempt.deadline is not None and now >= attempt.deadline:
                self.executor.cancel(handle)
                del self._running[handle]
                self._release(attempt)
                line = (
                    f"StepTimeout: step {attempt.node.name!r} ran past its timeout of "
                    f"{attempt.node.step.options.timeout:g} s and was stopped"
                )
                outcome = Outcome(
                    attempt.node.name,
                    error=line + "\n",
                    error_line=line,
                    retryable=issubclass(StepTimeout, attempt.node.step.options.retry_on),
                    seconds=attempt.node.step.options.timeout or 0.0,
                )
                self._finished(attempt, outcome, ())
        while self._retries and self._retries[0][0] <= now:
            _, _, attempt = heapq.heappop(self._retries)
            task = self._task(attempt.job, attempt.node, attempt.step_run.id)
            self._queue.append((attempt.job, attempt.node, task, attempt))

    def _release(self, attempt: _Attempt) -> None:
        self._cpu_used -= attempt.node.step.options.cpus
        self._gpu_used -= attempt.node.step.options.gpus

    def _finished(self, attempt: _Attempt, outcome: Outcome, values: tuple[Any, ...]) -> None:
        job, node, options = attempt.job, attempt.node, attempt.node.step.options
        if outcome.error_line.startswith("WorkerLost"):
            outcome.retryable = issubclass(WorkerLost, options.retry_on)
        try:
            if outcome.ok:
                self._record_success(attempt, outcome, values)
            elif outcome.retryable and attempt.number <= options.retries:
                self.recorder.record_attempt_failure(attempt.step_run, outcome, attempt.number)
                delay = min(options.backoff * 2 ** (attempt.number - 1), MAX_BACKOFF)
                attempt.number += 1
                self.display.step_retry(job, node.name, attempt.number, delay, outcome.error_line)
                heapq.heappush(
                    self._retries, (time.monotonic() + delay, next(self._order), attempt)
                )
                return
            else:
                self._record_failure(attempt, outcome)
        except BaseException as exc:
            # The store refused what the step produced: its row and run must not stay RUNNING.
            self._stop(attempt, "FAILED", f"recording the step failed: {exc}")
            raise
        if attempt.key is not None and self._inflight.get(attempt.key) is attempt:
            del self._inflight[attempt.key]
            result = job.results[node.name]
            for other_job, other in self._waiting.pop(attempt.key, []):
                if result.ok:
                    self._record_cached(
                        other_job,
                        other,
                        attempt.key,
                        result.run_id or "",
                        [StepValue(n, s) for n, s in result.outputs.items()],
                    )
                else:
                    self._enqueue(other_job, other, attempt.key)

    def _input_values(self, job: _Job, node: Node) -> list[StepValue]:
        values = [
            StepValue(
                parameter,
                job.results[output.node].outputs[output.name],
                job.results[output.node].cached_from or job.results[output.node].run_id,
            )
            for parameter, output in node.inputs.items()
        ]
        values += [
            StepValue(p, Stored(v.manifest_digest, "dataset", v.ref, v.size))
            for p, v in node.datasets.items()
        ]
        return values

    def _record_cached(
        self, job: _Job, node: Node, key: str, source: str, outputs: list[StepValue]
    ) -> None:
        stored = {v.name: v.stored for v in outputs}
        metrics = self.recorder.latest_metrics(source)
        run_id = self.recorder.record_cached(
            job.run,
            node,
            key=key,
            source=source,
            outputs=outputs,
            inputs=self._input_values(job, node),
            metrics=metrics,
        )
        result = StepResult(node.name, "CACHED", run_id, stored, cached_from=source)
        job.results[node.name] = result
        self._add_metrics(job, node.name, metrics)
        self.display.step_done(job, result)

    def _record_success(self, attempt: _Attempt, outcome: Outcome, values: tuple[Any, ...]) -> None:
        job, node = attempt.job, attempt.node
        names = [o.name for o in node.step.outputs]
        outputs = [StepValue(n, s) for n, s in zip(names, outcome.outputs, strict=True)]
        self.recorder.record_success(attempt.step_run, outcome, outputs, attempt.number)
        result = StepResult(
            node.name,
            "COMPLETED",
            attempt.step_run.id,
            dict(zip(names, outcome.outputs, strict=True)),
            attempts=attempt.number,
            seconds=outcome.seconds,
        )
        job.results[node.name] = result
        if values:
            job.values[node.name] = values
        # The pipeline run gets each metric's last value: what a sweep ranks trials by.
        self._add_metrics(job, node.name, {**outcome.logged.latest(), **scores(outcome.metrics)})
        self.display.step_done(job, result)

    def _record_failure(self, attempt: _Attempt, outcome: Outcome) -> None:
        job, node = attempt.job, attempt.node
        self.recorder.record_failure(attempt.step_run, outcome, attempt.number)
        result = StepResult(
            node.name,
            "FAILED",
            attempt.step_run.id,
            attempts=attempt.number,
            seconds=outcome.seconds,
            error_line=outcome.error_line,
            error=outcome.error or "",
        )
        job.results[node.name] = result
        job.failed = True
        self.display.step_done(job, result)

    @staticmethod
    def _add_metrics(job: _Job, node: str, metrics: dict[str, float]) -> None:
        if metrics:
            job.node_metrics[node] = metrics

    def _end_job(self, job: _Job, status: RunStatus) -> None:
        for name in job.graph.nodes:
            job.results.setdefault(name, StepResult(name, "SKIPPED"))
        metrics = job.metrics
        if metrics:
            job.run.log_metrics(metrics)
        job.run.end(status)

    def _stop(self, attempt: _Attempt, status: RunStatus, error: str) -> None:
        if not attempt.step_run.ended:
            self.recorder.record_stopped(attempt.step_run, status, attempt.number, error)

    def _abort(self, status: RunStatus) -> None:
        for handle in list(self._running):
            self.executor.cancel(handle)
        stopped = [
            *self._running.values(),
            *(attempt for _, _, attempt in self._retries),
            *(attempt for _, _, _, attempt in self._queue),
        ]
        for attempt in stopped:
            self._stop(
                attempt, status, f"the pipeline run was stopped ({status}) while this step ran"
            )
        for job in self.jobs:
            job.run.end(status)

    def result(self, job: _Job) -> PipelineResult:
        """Return a job's result once `drive` has returned."""
        order = {name: i for i, name in enumerate(job.graph.nodes)}
        steps = dict(sorted(job.results.items(), key=lambda kv: order[kv[0]]))
        return PipelineResult(
            job.run.id,
            job.pipeline.name,
            "FAILED" if job.failed else "FINISHED",
            job.params,
            steps,
            dict(job.metrics),
            self.ws,
            {name: n.step.options.materializers for name, n in job.graph.nodes.items()},
        )


def run_pipeline(
    pipeline: Pipeline,
    params: Mapping[str, Any],
    *,
    executor: str | Executor = "local",
    cache: bool = True,
    experiment: str | int | None = None,
    progress: bool | None = None,
    on_job: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run `pipeline` with `params`; return its result, or raise StepFailed naming the step."""
    ws = workspace()
    driver = Driver(ws, executor, display=Display(progress))
    job = driver.add(pipeline, params, cache=cache, experiment=experiment)
    if on_job is not None:
        on_job(job.run.id)
    driver.drive()
    result = driver.result(job)
    if result.status == "FAILED":
        raise failure_of(result)
    return result


def resume_pipeline(
    run_id: str,
    *,
    pipeline: Pipeline | None = None,
    executor: str | Executor = "local",
    progress: bool | None = None,
) -> PipelineResult:
    """Run a failed pipeline run again from its failed step, reusing the steps that succeeded.

    A step is reused only while its cache key is unchanged: fix the failing step's code and
    the steps before it are not run again; change theirs and they are.
    """
    from loopml.pipelines.loader import load_pipeline

    ws = workspace()
    run_id = runs.resolve_id(ws, run_id)
    if pipeline is None:
        source = runs.get(ws, run_id).tags.get("loopml.pipeline.source", "")
        pipeline = load_pipeline(source, root=ws.root)
    driver = Driver(ws, executor, display=Display(progress))
    job = driver.add_resumed(pipeline, run_id)
    driver.drive()
    result = driver.result(job)
    if result.status == "FAILED":
        raise failure_of(result)
    return result
