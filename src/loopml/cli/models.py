"""`loopml models`: list, show, versions, alias (and its history)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from loopml.core.workspace import Workspace

app = typer.Typer(
    help="The model registry: models, their versions and aliases.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArg = Annotated[str, typer.Argument(help="The registered model's name.")]


def _ws() -> Workspace:
    from loopml.core.workspace import set_workspace

    return set_workspace()


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List registered models: versions, latest, aliases."""
    from loopml.cli.output import print_json, table, when
    from loopml.registry import models

    found = models.list_models(_ws())
    if as_json:
        print_json([m.to_dict() for m in found])
        return
    table(
        "Models",
        ["NAME", "VERSIONS", "LATEST", "ALIASES", "UPDATED", "DESCRIPTION"],
        [
            (
                m.name,
                m.versions,
                m.latest_version or "",
                " ".join(f"{a}=v{v}" for a, v in m.aliases.items()),
                when(m.updated_at, short=True),
                m.description,
            )
            for m in found
        ],
        wrap=("DESCRIPTION", "ALIASES"),
    )


@app.command()
def versions(name: NameArg, as_json: JsonOption = False) -> None:
    """List the versions of a model, newest first."""
    from loopml.cli.output import print_json, table, when
    from loopml.registry import models

    found = models.versions(_ws(), name)
    if as_json:
        print_json([v.to_dict() for v in found])
        return
    table(
        f"Versions of {name}",
        ["VERSION", "FLAVOR", "ALIASES", "RUN", "CREATED", "PACKAGE"],
        [
            (
                v.version,
                v.flavor,
                " ".join(v.aliases),
                (v.run_id or "")[:8],
                when(v.created_at, short=True),
                v.package_digest[:19],
            )
            for v in found
        ],
        wrap=("ALIASES",),
    )


@app.command()
def show(
    uri: Annotated[
        str,
        typer.Argument(help="models:/NAME/N, models:/NAME@ALIAS, NAME (latest) or runs:/RUN/PATH."),
    ],
    as_json: JsonOption = False,
) -> None:
    """Show a model version: flavor, signature, environment, source run and its datasets."""
    from loopml.cli.output import console, print_json, table
    from loopml.data import versions as data_versions
    from loopml.registry import api, models
    from loopml.registry.uris import expand

    ws = _ws()
    target = expand(uri)
    package = api.package_of(ws, target)
    record = None if target.startswith("runs:/") else models.resolve(ws, target)
    run_id = record.run_id if record is not None else target.split("/")[1]
    datasets = [v.ref for v in data_versions.inputs_of(ws, run_id)] if run_id else []
    details = {
        "uri": record.uri if record is not None else target,
        "package": package.digest,
        "flavor": package.flavor,
        "signature": package.signature.to_dict() if package.signature is not None else None,
        "environment": package.environment,
        "files": {path: {"digest": d, "size": size} for path, (d, size) in package.files.items()},
        "run_id": run_id,
        "datasets": datasets,
    } | ({"version": record.to_dict()} if record is not None else {})
    if as_json:
        print_json(details)
        return
    console.print(f"{details['uri']}  flavor {package.flavor}  package {package.digest[:19]}")
    if record is not None:
        aliases = " ".join(record.aliases) or "none"
        console.print(f"aliases {aliases}  created by {record.user or '?'}  {record.description}")
    if run_id:
        console.print(f"source run {run_id}  read {', '.join(datasets) or 'no dataset versions'}")
    signature = package.signature
    if signature is not None:
        table(
            "Inputs",
            ["NAME", "TYPE", "SHAPE"],
            [(c.name or "", c.dtype, c.shape or "") for c in signature.inputs],
        )
    python = package.environment.get("python", "")
    requirements = ", ".join(package.environment.get("requirements", []))
    console.print(f"python {python}  requires {requirements or 'nothing pinned'}")


@app.command()
def alias(
    name: NameArg,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="champion, challenger, ...")],
    version: Annotated[
        str | None, typer.Argument(help="The version to point it at (leave out with --delete).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, kept in the history.")] = "",
    delete_: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    history: Annotated[
        bool, typer.Option("--history", help="Show every move of the alias instead.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version (the move is kept), remove it, or show its history."""
    from loopml.cli.output import console, print_json, table, when
    from loopml.errors import InvalidInput
    from loopml.registry import models

    ws = _ws()
    if history:
        events = models.alias_history(ws, name, alias_name)
        if as_json:
            print_json([e.to_dict() for e in events])
            return
        table(
            f"{name}@{alias_name}",
            ["WHEN", "FROM", "TO", "USER", "GATE", "REASON"],
            [
                (
                    when(e.created_at),
                    f"v{e.from_version}" if e.from_version else "",
                    f"v{e.to_version}" if e.to_version else "(removed)",
                    e.user,
                    _gate_text(e.gate_result),
                    e.reason,
                )
                for e in events
            ],
            wrap=("REASON",),
        )
        return
    if delete_:
        event = models.delete_alias(ws, name, alias_name, reason=reason)
    elif version is None:
        raise InvalidInput(
            f"give the version for {alias_name!r}: loopml models alias {name} {alias_name} N "
            "(or --delete, or --history)"
        )
    elif not version.isdigit():
        raise InvalidInput(f"a model version is a whole number like 3, not {version!r}")
    else:
        event = models.set_alias(ws, name, alias_name, int(version), reason=reason)
    if as_json:
        print_json(event.to_dict())
        return
    before = f"v{event.from_version}" if event.from_version else "nothing"
    after = f"v{event.to_version}" if event.to_version else "nothing"
    console.print(f"{name}@{alias_name}: {before} -> {after}")


def _gate_text(result: dict[str, Any] | None) -> str:
    """Return how a move got past its gate: passed, failed (forced), forced, or nothing."""
    if not result:
        return ""
    verdict = result.get("passed")
    forced = " (forced)" if result.get("forced") else ""
    if verdict is None:
        return "forced, no gate" if result.get("forced") else ""
    return ("passed" if verdict else "failed") + forced
