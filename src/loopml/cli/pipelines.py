"""`loopml run`, `loopml sweep` and `loopml pipelines`: runs, show, lineage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.errors import InvalidInput, StepFailed

if TYPE_CHECKING:
    from loopml.core.workspace import Workspace
    from loopml.pipelines.graph import Pipeline
    from loopml.pipelines.lineage import Origin
    from loopml.pipelines.records import StepRecord, StepValue
    from loopml.pipelines.results import PipelineResult, StepResult
    from loopml.pipelines.sweep import SweepResult
    from loopml.pipelines.task import Stored
    from loopml.tracking.entities import RunRecord

app = typer.Typer(
    help="Look at pipeline runs: list them, show their steps, trace an output's lineage.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TargetArg = Annotated[
    str | None,
    typer.Argument(
        metavar="TARGET", help="The pipeline: path/file.py:function or package.module:function."
    ),
]
ParamOption = Annotated[
    list[str] | None, typer.Option("--param", "-p", metavar="NAME=VALUE", help="A pipeline param.")
]
ExecutorOption = Annotated[
    str, typer.Option("--executor", help="Where steps run: local (processes) or ray.")
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="Run every step, even those with a cached result.")
]
ExperimentOption = Annotated[
    str | None,
    typer.Option("--experiment", "-e", help="Experiment to log to (default: the pipeline's name)."),
]

_STATUS = {
    "COMPLETED": "completed ✓",
    "CACHED": "cached ↺",
    "FAILED": "failed ✗",
    "SKIPPED": "skipped",
    "RUNNING": "running",
}


def _ws() -> Workspace:
    from loopml.core.workspace import set_workspace

    return set_workspace()  # refuses (WorkspaceNotFound) rather than creating one here


def _project_on_path(ws: Workspace) -> None:
    """Put the current folder and the workspace root on sys.path, as `python -m` would."""
    import sys
    from pathlib import Path

    # A console script has its own folder on sys.path, not the current one; without this,
    # MODULE:FUNCTION (`pipelines.churn:churn`) could not name the project's own code.
    for folder in (str(ws.root), str(Path.cwd())):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def _load(target: str, ws: Workspace) -> Pipeline:
    """Return the pipeline TARGET names: FILE.py:FUNCTION or MODULE:FUNCTION."""
    from loopml.pipelines.loader import load_pipeline

    _project_on_path(ws)
    return load_pipeline(target, root=ws.root)


def _assignments(texts: list[str] | None) -> dict[str, str]:
    """Return `-p NAME=VALUE` options as a dict, refusing a malformed or repeated one."""
    found: dict[str, str] = {}
    for text in texts or []:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidInput(f"-p takes NAME=VALUE, not {text!r}")
        if name in found:
            raise InvalidInput(f"param {name!r} is given twice; give each -p once")
        found[name] = value
    return found


def _split_values(text: str) -> list[str]:
    """Split `a,b,c` on the commas outside brackets and quotes: `[1,2],[3]` is two JSON
    lists, `"a,b",c` two strings (a value wholly in quotes loses them)."""
    values: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
            if depth < 0:
                raise InvalidInput(f"-p value {text!r} closes a bracket it never opened")
        elif char == "," and depth == 0:
            values.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote or depth:
        raise InvalidInput(f"-p value {text!r} leaves a quote or a bracket open")
    values.append("".join(current))
    return [_unquote(v) for v in values]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


# ---- loopml run ------------------------------------------------------------------------


def run(
    target: TargetArg = None,
    param: ParamOption = None,
    executor: ExecutorOption = "local",
    no_cache: NoCacheOption = False,
    experiment: ExperimentOption = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume", metavar="RUN_ID", help="Rerun a failed pipeline run from its failed step."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline; steps whose code, params and inputs are unchanged are reused."""
    from loopml.pipelines.runner import resume_pipeline, run_pipeline

    ws = _ws()
    params = _assignments(param)
    if resume is not None:
        extra = [
            flag
            for flag, given in (
                ("-p", params),
                ("--no-cache", no_cache),
                ("--experiment", experiment),
            )
            if given
        ]
        if extra:
            raise InvalidInput(
                f"--resume reruns with the run's own params and cache; drop {', '.join(extra)}"
            )
    elif target is None:
        raise InvalidInput(
            "give the pipeline to run: `loopml run FILE.py:FUNCTION` (or --resume ID)"
        )
    pipeline = None if target is None else _load(target, ws)
    _project_on_path(ws)  # resuming loads the pipeline from the run's source
    try:
        if resume is not None:
            result = resume_pipeline(resume, pipeline=pipeline, executor=executor, progress=True)
        else:
            assert pipeline is not None
            result = run_pipeline(
                pipeline,
                pipeline.bind(params, from_text=True),
                executor=executor,
                cache=not no_cache,
                experiment=experiment,
                progress=True,
            )
    except StepFailed as exc:
        if exc.result is not None:
            _print_result(exc.result, as_json)  # type: ignore[arg-type]
        raise
    _print_result(result, as_json)


def _print_result(result: PipelineResult, as_json: bool) -> None:
    from loopml.cli.output import console, number, print_json, table

    if as_json:
        print_json(
            {
                "run_id": result.run_id,
                "pipeline": result.pipeline,
                "status": result.status,
                "params": result.params,
                "metrics": result.metrics,
                "steps": [_step_result_dict(s) for s in result.steps.values()],
            }
        )
        return
    failed = any(s.error_line for s in result.steps.values())
    rows = [
        (
            s.node,
            _STATUS.get(s.status, s.status),
            "" if s.status in ("CACHED", "SKIPPED") else f"{s.seconds:.2f}s",
            (s.run_id or "")[:8],
            (s.cached_from or "")[:8],
            *([s.error_line] if failed else []),
        )
        for s in result.steps.values()
    ]
    table(
        f"Pipeline {result.pipeline}: run {result.run_id} {result.status}",
        ["STEP", "STATUS", "DURATION", "RUN", "CACHED FROM", *(["ERROR"] if failed else [])],
        rows,
        wrap=("ERROR",),
    )
    if result.metrics:
        console.print(
            "metrics: " + "  ".join(f"{k}={number(v)}" for k, v in sorted(result.metrics.items()))
        )


def _step_result_dict(s: StepResult) -> dict[str, Any]:
    return {
        "node": s.node,
        "status": s.status,
        "run_id": s.run_id,
        "cached_from": s.cached_from,
        "attempts": s.attempts,
        "seconds": s.seconds,
        "outputs": {name: _stored_dict(stored) for name, stored in s.outputs.items()},
        "error": s.error_line,
    }


def _stored_dict(s: Stored) -> dict[str, Any]:
    return {"digest": s.digest, "materializer": s.materializer, "type": s.type_name, "size": s.size}


# ---- loopml sweep ----------------------------------------------------------------------


def sweep(
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET",
            help="The pipeline: path/file.py:function or package.module:function.",
        ),
    ],
    metric: Annotated[str, typer.Option("--metric", "-m", help="The metric that ranks trials.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=V1,V2,...",
            help="Values to sweep, split on commas outside brackets (one value: a fixed param).",
        ),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="max or min: which end is best.")] = "max",
    random: Annotated[
        int | None, typer.Option("--random", help="Run N combinations drawn at random.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the --random draw.")] = 0,
    executor: ExecutorOption = "local",
    no_cache: NoCacheOption = False,
    experiment: ExperimentOption = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write a report of the trials (metrics, params)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline once per combination of param values; list the trials, best first."""
    from loopml.pipelines.sweep import run_sweep

    ws = _ws()
    values = {name: _split_values(text) for name, text in _assignments(param).items()}
    fixed = {name: v[0] for name, v in values.items() if len(v) == 1}
    grid = {name: v for name, v in values.items() if len(v) > 1}
    pipeline = _load(target, ws)
    result = run_sweep(
        pipeline,
        grid,
        metric=metric,
        mode=mode,  # type: ignore[arg-type]  # run_sweep names the allowed values
        params=fixed,
        random=random,
        seed=seed,
        executor=executor,
        cache=not no_cache,
        experiment=experiment,
        progress=True,
        from_text=True,
    )
    _print_sweep(result, list(grid), as_json)
    if html is not None and result.trials:
        from loopml.cli.output import console
        from loopml.tracking.report import write_report

        written = write_report(
            ws, [t.run_id for t in result.trials], html, title=f"{pipeline.name} sweep"
        )
        if not as_json:
            console.print(f"Wrote {written} ({len(result.trials)} trials)")
    if not any(t.status == "FINISHED" for t in result.trials):
        first = result.trials[0].error_line if result.trials else ""
        raise StepFailed(
            f"every trial of the sweep failed (first: {first}); "
            f"`loopml pipelines show {result.trials[0].run_id[:8]}` shows why"
            if result.trials
            else "the sweep ran no trials"
        )


def _print_sweep(result: SweepResult, names: list[str], as_json: bool) -> None:
    from loopml.cli.output import console, number, print_json, table
    from loopml.pipelines.params import param_text

    best = result.best
    if as_json:
        print_json(
            {
                "run_id": result.run_id,
                "metric": result.metric,
                "mode": result.mode,
                "best": best.run_id if best else None,
                "trials": [
                    {
                        "run_id": t.run_id,
                        "params": t.params,
                        "status": t.status,
                        "value": t.value,
                        "metrics": t.metrics,
                        "error": t.error_line,
                        "best": t is best,
                    }
                    for t in result.trials
                ],
            }
        )
        return
    rows = [
        (
            "★ best" if t is best else "",
            t.run_id[:8],
            t.status,
            *(param_text(t.params.get(name)) for name in names),
            "" if t.value is None else number(t.value),
            t.error_line,
        )
        for t in result.trials
    ]
    table(
        f"Sweep {result.run_id}: {len(result.trials)} trial(s) by {result.metric} ({result.mode})",
        ["", "RUN", "STATUS", *names, result.metric.upper(), "ERROR"],
        rows,
        wrap=("ERROR",),
    )
    if best is None:
        console.print(f"No trial logged the metric {result.metric!r}.")
    else:
        console.print(f"best: run {best.run_id} with {result.metric}={number(best.value or 0)}")


# ---- loopml pipelines runs / show / lineage ---------------------------------------------


@app.command("runs")
def runs_(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List pipeline runs, newest first."""
    from loopml.cli.output import console, duration, print_json, table, when
    from loopml.pipelines import records
    from loopml.tracking.search import search_runs

    ws = _ws()
    query = "tags.loopml.run_type = 'pipeline'"
    if pipeline is not None:
        query += " and tags.loopml.pipeline = '{}'".format(pipeline.replace("'", "''"))
    found = search_runs(ws, None, query, ["attributes.start_time DESC"], max_results=limit)
    counts = records.step_counts(ws, [r.id for r in found])
    if as_json:
        print_json([_run_dict(r, counts.get(r.id, (0, 0))) for r in found])
        return
    if not found:
        console.print("No pipeline runs yet: run one with `loopml run FILE.py:FUNCTION`.")
        return
    rows = []
    for r in found:
        cached, total = counts.get(r.id, (0, 0))
        rows.append(
            (
                r.id[:8],
                r.tags.get("loopml.pipeline", r.name),
                r.status,
                when(r.start_time, short=True),
                duration(r.duration_ms),
                f"{cached} cached / {total}",
            )
        )
    table(None, ["ID", "PIPELINE", "STATUS", "STARTED", "DURATION", "STEPS"], rows)


def _run_dict(r: RunRecord, counts: tuple[int, int]) -> dict[str, Any]:
    return {
        "id": r.id,
        "pipeline": r.tags.get("loopml.pipeline", r.name),
        "source": r.tags.get("loopml.pipeline.source"),
        "status": r.status,
        "start_time": r.start_time,
        "end_time": r.end_time,
        "steps": counts[1],
        "cached": counts[0],
        "params": r.params,
        "metrics": r.metrics,
    }


@app.command()
def show(
    run: Annotated[str, typer.Argument(help="Pipeline run id, or a unique prefix of one.")],
    as_json: JsonOption = False,
) -> None:
    """Show a pipeline run: params, steps with their outputs, metrics, and any traceback."""
    from rich.text import Text

    from loopml.cli.output import console, duration, number, print_json, table, when
    from loopml.pipelines import records
    from loopml.tracking import runs

    ws = _ws()
    record = runs.get(ws, runs.resolve_id(ws, run))
    if record.tags.get("loopml.run_type") != "pipeline":
        raise InvalidInput(
            f"run {record.id} is not a pipeline run; `loopml pipelines runs` lists them"
        )
    steps = records.steps_of(ws, record.id)
    if as_json:
        print_json(
            _run_dict(record, (sum(s.status == "CACHED" for s in steps), len(steps)))
            | {"steps": [_step_record_dict(s) for s in steps]}
        )
        return
    console.print(
        Text(record.tags.get("loopml.pipeline", record.name), style="bold") + Text(f"  {record.id}")
    )
    console.print(
        f"status {record.status}  source {record.tags.get('loopml.pipeline.source', '')}  "
        f"started {when(record.start_time)}  duration {duration(record.duration_ms)}"
    )
    if record.params:
        table("Params", ["KEY", "VALUE"], sorted(record.params.items()))
    table(
        "Steps",
        ["STEP", "STATUS", "RUN", "CACHED FROM", "ATTEMPTS", "DURATION"],
        [
            (
                s.node,
                _STATUS.get(s.status, s.status),
                s.run_id[:8],
                (s.cached_from or "")[:8],
                s.attempts,
                "" if s.seconds is None or s.status == "CACHED" else f"{s.seconds:.2f}s",
            )
            for s in steps
        ],
        wrap=("STEP",),
    )
    outputs = [(s.node, *_value_row(v)) for s in steps for v in s.outputs]
    if outputs:
        table("Outputs", ["STEP", "OUTPUT", "DIGEST", "STORED AS", "SIZE"], outputs, wrap=())
    if record.metrics:
        table(
            "Metrics",
            ["KEY", "VALUE"],
            [(k, number(v)) for k, v in sorted(record.metrics.items())],
        )
    for s in steps:
        if s.status == "FAILED" and s.error:
            console.print(Text(f"Step {s.node} failed (run {s.run_id}):", style="red"))
            console.print(Text(s.error.rstrip()))


def _value_row(v: StepValue) -> tuple[str, str, str, str]:
    from loopml.cli.output import size_text

    if v.stored.digest is None:
        return v.name, "None", "", ""
    return v.name, v.stored.digest[:19], v.stored.materializer, size_text(v.stored.size)


def _step_record_dict(s: StepRecord) -> dict[str, Any]:
    def values(found: list[StepValue]) -> dict[str, Any]:
        return {v.name: _stored_dict(v.stored) | {"source_run_id": v.source_run_id} for v in found}

    return {
        "node": s.node,
        "run_id": s.run_id,
        "function": s.function,
        "status": s.status,
        "cached_from": s.cached_from,
        "attempts": s.attempts,
        "seconds": s.seconds,
        "cache_key": s.cache_key,
        "code_digest": s.code_digest,
        "inputs": values(s.inputs),
        "outputs": values(s.outputs),
        "error": s.error,
    }


@app.command()
def lineage(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="REF", help="An output digest (blake3:...) or STEP_RUN_ID[:OUTPUT]."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Trace a step output back through the steps and code that made it to dataset versions."""
    from rich.tree import Tree

    from loopml.cli.output import console, print_json
    from loopml.pipelines.lineage import resolve_output, trace

    ws = _ws()
    origin = trace(ws, resolve_output(ws, ref))
    if as_json:
        print_json(origin.to_dict() | {"datasets": sorted(origin.datasets())})
        return
    tree = Tree(_origin_label(origin, None))
    _add_inputs(tree, origin, {origin.digest})
    console.print(tree)


def _origin_label(origin: Origin, name: str | None) -> Any:
    from rich.text import Text

    label = Text(f"{name}: " if name else "")
    if origin.step is None:
        label += Text(f"dataset {origin.dataset}", style="bold cyan")
        label += Text(f"  manifest {origin.digest[:19]}", style="dim")
        return label
    step = origin.step
    label += Text(origin.digest[:19])
    label += Text(f"  step {step.node}", style="bold")
    label += Text(f"  {step.function}  run {step.run_id[:8]}")
    label += Text(f"  code {(step.code_digest or '')[:19]}", style="dim")
    return label


def _add_inputs(tree: Any, origin: Origin, seen: set[str]) -> None:
    for name, upstream in origin.inputs.items():
        if upstream.step is not None and upstream.digest in seen:
            tree.add(_origin_label(upstream, name) + " (shown above)")
            continue
        seen.add(upstream.digest)
        branch = tree.add(_origin_label(upstream, name))
        _add_inputs(branch, upstream, seen)
