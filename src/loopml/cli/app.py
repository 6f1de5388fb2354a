"""The `loopml` command: global options, error handling and the command groups."""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli import (
    data,
    deploy,
    evaluation,
    experiments,
    loop,
    models,
    monitor,
    pipelines,
    predict,
    runs,
    serving,
)
from loopml.errors import LoopMLError

app = typer.Typer(
    name="loopml",
    help="LoopML: data, pipelines, tracking, registry, deployment and monitoring as one loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich's help renderer alone costs ~100 ms of startup
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
app.add_typer(data.app, name="data")
app.add_typer(pipelines.app, name="pipelines")
app.add_typer(models.app, name="models")
app.add_typer(deploy.app, name="deploy")
app.add_typer(monitor.app, name="monitor")
app.add_typer(loop.app, name="loop")
app.command("drift")(monitor.drift_command)

_debug: ContextVar[bool] = ContextVar("loopml_cli_debug", default=False)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    _debug.set(debug or os.environ.get("LOOPML_DEBUG") == "1")


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Folder to make a workspace of.")] = Path(),
    store_uri: Annotated[
        str | None, typer.Option(help="Metadata store, e.g. postgresql+psycopg://user@host/db.")
    ] = None,
    blob_uri: Annotated[
        str | None, typer.Option(help="Blob storage, e.g. s3://bucket/prefix.")
    ] = None,
) -> None:
    """Create a workspace (.loopml/) in PATH."""
    from loopml.cli.output import console
    from loopml.core.workspace import Workspace

    ws = Workspace.init(path, store_uri=store_uri, blob_uri=blob_uri)
    console.print(f"Initialised LoopML workspace in {ws.settings.dir}")
    console.print(f"  store: {ws.store.engine.url.render_as_string(hide_password=True)}")
    console.print(f"  blobs: {ws.settings.blob_uri}")


@app.command()
def gc(
    force: Annotated[
        bool, typer.Option("--force", help="Remove them (without it, only list them).")
    ] = False,
) -> None:
    """Find blobs that no dataset version, run or model references; --force removes them."""
    from loopml.cli.output import console, size_text
    from loopml.core.gc import collect
    from loopml.core.workspace import Workspace

    found = collect(Workspace.open(), force=force)
    count, size = len(found.unreferenced), size_text(found.bytes)
    if force:
        console.print(
            f"Removed {count} unreferenced blob(s), {size}"
            + (
                f", and {found.stale_temp_files} stale temp file(s)"
                if found.stale_temp_files
                else ""
            )
        )
    else:
        console.print(
            f"{count} unreferenced blob(s), {size}; nothing removed "
            "(dry run): run `loopml gc --force` to remove them"
        )


app.command("run")(pipelines.run)
app.command("sweep")(pipelines.sweep)
app.command("check")(evaluation.check)
app.command("serve")(serving.serve)
app.command("predict")(predict.predict)
app.command("controller")(loop.controller_command)
models.app.command("evaluate")(evaluation.evaluate)
models.app.command("evaluations")(evaluation.evaluations)
models.app.command("compare")(evaluation.compare)
models.app.command("promote")(evaluation.promote)


def main() -> None:
    """Run the CLI: an error prints one line and exits 1 (usage errors exit 2)."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        message = _one_line(exc)
        if message is None or _debug.get():
            raise
        from rich.text import Text

        from loopml.cli.output import err_console

        err_console.print(Text("error: ", style="red") + Text(message), soft_wrap=True)
        sys.exit(1)


def _one_line(exc: Exception) -> str | None:
    """Return the line to print for an error a user can act on, or None for a bug."""
    if isinstance(exc, LoopMLError):
        return str(exc)
    if isinstance(exc, OSError):  # a permission, a full disk, a missing file: name it
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    if type(exc).__module__.startswith("sqlalchemy"):
        orig = getattr(exc, "orig", None) or exc
        return f"the metadata store failed: {' '.join(str(orig).split())}"
    return None
