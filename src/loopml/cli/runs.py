"""`loopml runs`: list, show, compare, search, history, artifacts, download, delete, restore."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from loopml.core.workspace import Workspace
    from loopml.tracking.entities import RunRecord

app = typer.Typer(
    help="Inspect, compare, search and delete runs.", no_args_is_help=True, rich_markup_mode=None
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ExperimentOption = Annotated[
    str | None, typer.Option("--experiment", "-e", help="Experiment name or id.")
]
RunArg = Annotated[str, typer.Argument(help="Run id, or a unique prefix of one.")]


@app.command("list")
def list_(
    experiment: ExperimentOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
    view: Annotated[str, typer.Option(help="active, deleted or all.")] = "active",
    as_json: JsonOption = False,
) -> None:
    """List the newest runs."""
    from loopml.tracking import runs

    _render(runs.list_runs(_ws(), experiment, view=view, limit=limit), as_json)


@app.command()
def search(
    experiment: ExperimentOption = None,
    filter_: Annotated[
        str | None,
        typer.Option("--filter", "-f", help="e.g. \"metrics.loss < 0.1 and params.depth = '5'\""),
    ] = None,
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", "-o", help="e.g. 'metrics.loss ASC'.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
    view: Annotated[str, typer.Option(help="active, deleted or all.")] = "active",
    as_json: JsonOption = False,
) -> None:
    """Search runs with a filter over metrics, params, tags and attributes."""
    from loopml.tracking import search as search_

    found = search_.search_runs(_ws(), experiment, filter_, order_by, max_results=limit, view=view)
    _render(found, as_json)


@app.command()
def show(run: RunArg, as_json: JsonOption = False) -> None:
    """Show one run: attributes, params, metrics, tags and artifacts."""
    from rich.text import Text

    from loopml.cli.output import console, duration, number, print_json, size_text, table, when
    from loopml.data import versions
    from loopml.tracking import artifacts, runs

    ws = _ws()
    record = runs.get(ws, runs.resolve_id(ws, run))
    files = artifacts.list_artifacts(ws, record.id)
    inputs = versions.inputs_of(ws, record.id)
    if as_json:
        print_json(
            record.to_dict()
            | {"artifacts": [vars(f) for f in files], "inputs": [v.ref for v in inputs]}
        )
        return
    console.print(Text(record.name, style="bold") + Text(f"  {record.id}"))
    console.print(
        f"status {record.status}  experiment {record.experiment_id}  "
        f"started {when(record.start_time)}  duration {duration(record.duration_ms)}"
        + (f"  parent {record.parent_id}" if record.parent_id else "")
    )
    if record.params:
        table("Params", ["KEY", "VALUE"], sorted(record.params.items()))
    if record.metrics:
        table(
            "Metrics (latest)",
            ["KEY", "VALUE"],
            [(k, number(v)) for k, v in sorted(record.metrics.items())],
        )
    if record.tags:
        table("Tags", ["KEY", "VALUE"], sorted(record.tags.items()))
    if inputs:
        table(
            "Inputs (dataset versions)",
            ["VERSION", "FILES", "SIZE"],
            [(v.ref, v.num_files, size_text(v.size)) for v in inputs],
        )
    if files:
        table(
            "Artifacts",
            ["PATH", "SIZE", "DIGEST"],
            [(f.path, f.size, f.digest[:19]) for f in files],
        )


@app.command()
def compare(
    runs_: Annotated[list[str], typer.Argument(metavar="RUN...", help="Two or more runs.")],
    as_json: JsonOption = False,
) -> None:
    """Compare runs side by side: params and latest metrics; differing rows are marked."""
    from rich.table import Table
    from rich.text import Text

    from loopml.cli.output import console, number, print_json
    from loopml.tracking import runs

    if len(runs_) < 2:
        raise typer.BadParameter("give two or more runs to compare", param_hint="RUN...")
    ws = _ws()
    records = [runs.get(ws, runs.resolve_id(ws, ref)) for ref in runs_]
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    out = Table(header_style="bold")
    out.add_column("")
    for r in records:
        out.add_column(Text(f"{r.name}\n{r.id[:8]}"))
    sections: list[tuple[str, list[dict[str, str] | dict[str, float]]]] = [
        ("params", [r.params for r in records]),
        ("metrics", [r.metrics for r in records]),
    ]
    for section, per_run in sections:
        for key in sorted({k for values in per_run for k in values}):
            values = [d.get(key) for d in per_run]
            cells = [
                "" if v is None else number(v) if isinstance(v, float) else str(v) for v in values
            ]
            differs = len(set(cells)) > 1
            label = f"{section}.{key}"
            out.add_row(Text(label, style="yellow" if differs else ""), *map(Text, cells))
    console.print(out)


@app.command()
def history(run: RunArg, key: str, as_json: JsonOption = False) -> None:
    """Print every value of one metric of a run."""
    from loopml.cli.output import number, print_json, table, when
    from loopml.tracking import runs

    ws = _ws()
    points = runs.metric_history(ws, runs.resolve_id(ws, run), key)
    if as_json:
        print_json([vars(p) for p in points])
        return
    table(
        key,
        ["STEP", "VALUE", "TIME"],
        [(p.step, number(p.value), when(p.timestamp)) for p in points],
    )


@app.command()
def report(
    runs_: Annotated[
        list[str] | None, typer.Argument(metavar="[RUN]...", help="Runs; default: a search.")
    ] = None,
    experiment: ExperimentOption = None,
    filter_: Annotated[str | None, typer.Option("--filter", "-f", help="Search filter.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 10,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Metrics to plot; default: all.")
    ] = None,
    html: Annotated[Path, typer.Option("--html", help="Where to write the report.")] = Path(
        "runs-report.html"
    ),
) -> None:
    """Write an HTML report: metrics over steps for each run, and a params/metrics table."""
    from loopml.cli.output import console
    from loopml.tracking import report as report_
    from loopml.tracking import runs, search

    ws = _ws()
    if runs_:
        ids = [runs.resolve_id(ws, ref) for ref in runs_]
    else:
        found = search.search_runs(ws, experiment, filter_, None, max_results=limit)
        ids = [r.id for r in found]
    written = report_.write_report(ws, ids, html, metrics=metric)
    console.print(f"Wrote {written} ({len(ids)} runs)")


@app.command("artifacts")
def artifacts_(
    run: RunArg, path: Annotated[str | None, typer.Argument()] = None, as_json: JsonOption = False
) -> None:
    """List a run's artifacts."""
    from loopml.cli.output import print_json, table
    from loopml.tracking import artifacts, runs

    ws = _ws()
    files = artifacts.list_artifacts(ws, runs.resolve_id(ws, run), path)
    if as_json:
        print_json([vars(f) for f in files])
        return
    table(None, ["PATH", "SIZE", "DIGEST"], [(f.path, f.size, f.digest) for f in files])


@app.command()
def download(
    run: RunArg,
    path: Annotated[
        str | None, typer.Argument(help="Artifact file or folder; all when omitted.")
    ] = None,
    to: Annotated[
        Path | None, typer.Option("--to", help="Destination folder; default: ./<run id prefix>.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Download artifacts, verified against their digests."""
    from loopml.cli.output import console
    from loopml.tracking import artifacts, runs

    ws = _ws()
    run_id = runs.resolve_id(ws, run)
    where = artifacts.download(ws, run_id, path, to or Path(run_id[:8]), overwrite=force)
    console.print(f"Downloaded to {where}")


@app.command()
def delete(run: RunArg) -> None:
    """Soft-delete a run (`restore` undoes it)."""
    _set_stage(run, deleted=True)


@app.command()
def restore(run: RunArg) -> None:
    """Restore a deleted run."""
    _set_stage(run, deleted=False)


def _set_stage(run: str, *, deleted: bool) -> None:
    from loopml.cli.output import console
    from loopml.tracking import runs

    ws = _ws()
    run_id = runs.resolve_id(ws, run)
    (runs.delete if deleted else runs.restore)(ws, run_id)
    console.print(f"{'Deleted' if deleted else 'Restored'} run {run_id}")


def _ws() -> Workspace:
    from loopml.core.workspace import Workspace

    return Workspace.open()


def _render(found: list[RunRecord], as_json: bool) -> None:
    from loopml.cli.output import console, duration, number, print_json, table, when

    if as_json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        console.print("No runs found.")
        return
    rows = []
    for r in found:
        metrics = "\n".join(f"{k}={number(v)}" for k, v in sorted(r.metrics.items())[:4])
        params = "\n".join(f"{k}={v}" for k, v in sorted(r.params.items())[:4])
        rows.append(
            (
                r.id[:8],
                r.name,
                r.status,
                when(r.start_time, short=True),
                duration(r.duration_ms),
                params,
                metrics,
            )
        )
    table(None, ["ID", "NAME", "STATUS", "STARTED", "DURATION", "PARAMS", "METRICS"], rows)
