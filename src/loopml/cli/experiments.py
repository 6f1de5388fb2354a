"""`loopml experiments`: list, create, rename, delete, restore."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    help="Create, list, rename and delete experiments.", no_args_is_help=True, rich_markup_mode=None
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("list")
def list_(
    view: Annotated[str, typer.Option(help="active, deleted or all.")] = "active",
    as_json: JsonOption = False,
) -> None:
    """List experiments."""
    from loopml.cli.output import print_json, table, when
    from loopml.core.workspace import Workspace
    from loopml.tracking import experiments

    found = experiments.list_all(Workspace.open(), view=view)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    table(
        None,
        ["ID", "NAME", "STAGE", "CREATED"],
        [(e.id, e.name, e.lifecycle_stage, when(e.created_at)) for e in found],
    )


@app.command()
def create(name: str, as_json: JsonOption = False) -> None:
    """Create an experiment."""
    from loopml.core.workspace import Workspace
    from loopml.tracking import experiments

    _report(experiments.create(Workspace.open(), name).to_dict(), "Created", as_json)


@app.command()
def rename(name: str, new_name: str, as_json: JsonOption = False) -> None:
    """Rename an experiment."""
    from loopml.core.workspace import Workspace
    from loopml.tracking import experiments

    _report(experiments.rename(Workspace.open(), name, new_name).to_dict(), "Renamed", as_json)


@app.command()
def delete(name: str, as_json: JsonOption = False) -> None:
    """Soft-delete an experiment (its runs are kept; `restore` undoes it)."""
    from loopml.core.workspace import Workspace
    from loopml.tracking import experiments

    _report(experiments.delete(Workspace.open(), name).to_dict(), "Deleted", as_json)


@app.command()
def restore(name: str, as_json: JsonOption = False) -> None:
    """Restore a deleted experiment."""
    from loopml.core.workspace import Workspace
    from loopml.tracking import experiments

    _report(experiments.restore(Workspace.open(), name).to_dict(), "Restored", as_json)


def _report(exp: dict[str, object], verb: str, as_json: bool) -> None:
    from loopml.cli.output import console, print_json

    if as_json:
        print_json(exp)
    else:
        console.print(f"{verb} experiment {exp['name']!r} (id {exp['id']})")
