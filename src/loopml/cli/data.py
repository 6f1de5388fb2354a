"""`loopml data`: add, status, list, log, show, diff, checkout, validate, tag, push, pull."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from loopml.core.workspace import Workspace
    from loopml.data.entities import DatasetVersion

app = typer.Typer(
    help="Version datasets, compare and validate them, move them to and from remotes.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
remote_app = typer.Typer(help="Name the places datasets are pushed to.", no_args_is_help=True)
app.add_typer(remote_app, name="remote")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RefArg = Annotated[str, typer.Argument(help="NAME, NAME@vN, NAME@latest or NAME@TAG.")]


def _ws() -> Workspace:
    from loopml.core.workspace import Workspace

    return Workspace.open()


def _version_dict(v: DatasetVersion) -> dict[str, Any]:
    return {
        "ref": v.ref,
        "name": v.name,
        "version": v.version,
        "kind": v.kind,
        "files": v.num_files,
        "size": v.size,
        "source": v.source,
        "manifest": v.manifest_digest,
        "tags": list(v.tags),
        "message": v.message,
        "user": v.user,
        "created_at": v.created_at,
    }


@app.command()
def add(
    path: Annotated[Path, typer.Argument(help="File or folder to version.")],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Dataset name (default: from PATH).")
    ] = None,
    message: Annotated[str, typer.Option("--message", "-m", help="What changed.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Version a file or folder: only new content is stored; unchanged content makes no version."""
    from loopml.cli.output import console, print_json, size_text
    from loopml.data.registration import add as add_

    version, created = add_(_ws(), path, name=name, message=message)
    if as_json:
        print_json({**_version_dict(version), "created": created})
    elif created:
        console.print(
            f"Added {version.ref}: {version.num_files} file(s), {size_text(version.size)}"
        )
    else:
        console.print(f"Unchanged: {path} is still {version.ref}")


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Show which tracked paths changed since the version they hold."""
    from loopml.cli.fast import print_status

    sys.exit(print_status(as_json))


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List datasets with their latest version."""
    from loopml.cli.output import console, print_json, size_text, table, when
    from loopml.data import versions

    found = versions.list_all(_ws())
    if as_json:
        print_json([{**_version_dict(s.latest), "versions": s.versions} for s in found])
    elif not found:
        console.print("No datasets yet: add one with `loopml data add PATH --name NAME`.")
    else:
        rows = [
            (
                s.name,
                f"v{s.latest.version}",
                s.versions,
                s.latest.num_files,
                size_text(s.latest.size),
                when(s.latest.created_at),
                s.latest.source,
            )
            for s in found
        ]
        table(None, ["NAME", "LATEST", "VERSIONS", "FILES", "SIZE", "UPDATED", "PATH"], rows)


@app.command()
def log(
    name: Annotated[str, typer.Argument(help="Dataset name.")], as_json: JsonOption = False
) -> None:
    """List the versions of a dataset, newest first."""
    from loopml.cli.output import print_json, size_text, table, when
    from loopml.data import versions

    found = versions.history(_ws(), name)
    if as_json:
        print_json([_version_dict(v) for v in found])
        return
    rows = [
        (
            v.ref,
            ", ".join(v.tags),
            v.num_files,
            size_text(v.size),
            when(v.created_at),
            v.user,
            v.message,
        )
        for v in found
    ]
    table(
        None,
        ["VERSION", "TAGS", "FILES", "SIZE", "CREATED", "USER", "MESSAGE"],
        rows,
        wrap=("MESSAGE",),
    )


@app.command()
def show(
    ref: RefArg,
    files: Annotated[int, typer.Option("--files", help="How many files to list.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show a version: its files and the columns of its tables."""
    from loopml.cli.output import console, number, print_json, size_text, table, when
    from loopml.data import versions

    version = versions.get(_ws(), ref)
    manifest = version.manifest()
    profiles = version.profile()
    if as_json:
        print_json(
            {
                **_version_dict(version),
                "file_list": [
                    {"path": e.path, "digest": e.digest, "size": e.size, "mode": e.mode}
                    for e in manifest.files
                ],
                "profiles": profiles,
            }
        )
        return
    console.print(
        f"{version.ref}  ({version.kind}, {version.num_files} file(s), {size_text(version.size)})"
    )
    console.print(
        f"  added from {version.source} by {version.user or '?'} at {when(version.created_at)}"
    )
    if version.tags:
        console.print(f"  tags: {', '.join(version.tags)}")
    if version.message:
        console.print(f"  message: {version.message}")
    shown = manifest.files[:files]
    table(
        "Files",
        ["PATH", "SIZE", "DIGEST"],
        [(e.path, size_text(e.size), e.digest[:19]) for e in shown],
    )
    if len(manifest.files) > files:
        console.print(f"... and {len(manifest.files) - files} more (--files N)")
    for path, profile in profiles.items():
        rows = []
        for column, stats in profile["columns"].items():
            mean = stats.get("mean")
            rows.append(
                (
                    column,
                    stats["type"],
                    f"{stats['null_share']:.1%}",
                    stats.get("distinct"),
                    _fmt(stats.get("min")),
                    _fmt(stats.get("max")),
                    number(mean) if isinstance(mean, int | float) else "",
                )
            )
        table(
            f"{path}: {profile['rows']} rows",
            ["NAME", "TYPE", "NULLS", "DISTINCT", "MIN", "MAX", "MEAN"],
            rows,
        )


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@app.command()
def diff(old: RefArg, new: RefArg, as_json: JsonOption = False) -> None:
    """Compare two versions: files added, removed and changed; rows, schema and stats of tables."""
    from loopml.cli.output import console, print_json, table
    from loopml.data.compare import diff as diff_

    result = diff_(_ws(), old, new)
    if as_json:
        print_json(result)
        return
    files = result["files"]
    console.print(
        f"{result['old']} -> {result['new']}: {len(files['added'])} added, "
        f"{len(files['removed'])} removed, {len(files['changed'])} changed"
    )
    rows = [("+", p) for p in files["added"]] + [("-", p) for p in files["removed"]]
    rows += [("M", p) for p in files["changed"]]
    if rows:
        table(None, ["", "PATH"], sorted(rows, key=lambda r: r[1]))
    for path, change in result["tables"].items():
        _print_table_diff(path, change)


def _print_table_diff(path: str, change: dict[str, Any]) -> None:
    from loopml.cli.output import console, table

    rows = change.get("rows", {})
    console.print(f"table {path}: rows {rows.get('old')} -> {rows.get('new')}")
    for key, label in (("added", "new columns"), ("removed", "removed columns")):
        if change.get(key):
            console.print(f"  {label}: {', '.join(change[key])}")
    for column, types in (change.get("type_changes") or {}).items():
        console.print(f"  {column}: type {types.get('old')} -> {types.get('new')}")
    stats_rows = [
        (column, stat, _fmt(values.get("old")), _fmt(values.get("new")))
        for column, stats in (change.get("changed") or {}).items()
        for stat, values in stats.items()
    ]
    if stats_rows:
        table(None, ["COLUMN", "STAT", "OLD", "NEW"], stats_rows)


@app.command()
def checkout(
    ref: RefArg,
    to: Annotated[
        str | None,  # not Path: a trailing "/" (put a file version in this folder) must survive
        typer.Option(
            "--to", help="Where to put it (default: where it was added from); DIR/ for a folder."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace or remove files the version does not have.")
    ] = False,
) -> None:
    """Put the files of a version in place; files that already match are left alone."""
    from loopml.cli.output import console
    from loopml.data import versions
    from loopml.data.links import checkout as checkout_

    ws = _ws()
    version = versions.get(ws, ref)
    result = checkout_(ws, version, to, force=force)
    console.print(
        f"Checked out {version.ref} to {result.path}: {result.written} written, "
        f"{result.kept} unchanged" + (f", {result.removed} removed" if result.removed else "")
    )


@app.command()
def validate(
    ref: RefArg,
    against: Annotated[
        str | None, typer.Option("--against", help="Reference version, e.g. churn@v2.")
    ] = None,
    schema: Annotated[
        Path | None, typer.Option("--schema", help="Schema JSON (see `loopml data schema`).")
    ] = None,
    threshold: Annotated[
        float, typer.Option("--skew-threshold", help="Distance that counts as skew.")
    ] = 0.1,
    html: Annotated[Path | None, typer.Option("--html", help="Also write an HTML report.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check a version's tables against a reference version or a schema; exit 1 on errors."""
    from loopml.cli.output import console, print_json, table
    from loopml.data.compare import check
    from loopml.data.validation_report import render_html

    checks = check(_ws(), ref, against=against, schema=schema, skew_threshold=threshold)
    if html is not None:
        for i, item in enumerate(checks):
            target = html if i == 0 else html.with_name(f"{html.stem}-{i + 1}{html.suffix}")
            target.parent.mkdir(parents=True, exist_ok=True)
            page = render_html(
                item.report,
                item.current,
                item.reference,
                title=f"LoopML validation of {ref}:{item.path}",
            )
            target.write_text(page, encoding="utf-8")
    failed = any(not item.report.ok for item in checks)
    if as_json:
        print_json(
            {
                "ref": ref,
                "ok": not failed,
                "tables": {item.path: item.report.to_dict() for item in checks},
            }
        )
    else:
        for item in checks:
            report = item.report
            rows = [
                (
                    c["column"],
                    c.get("type") or "",
                    _share(c.get("null_share")),
                    c.get("method") or "",
                    _fmt(c.get("score")),
                    c.get("status", ""),
                )
                for c in report.columns
            ]
            table(
                f"{item.path}: {report.rows} rows, {len(report.errors)} error(s), "
                f"{len(report.warnings)} warning(s)",
                ["COLUMN", "TYPE", "NULLS", "METHOD", "SCORE", "STATUS"],
                rows,
            )
            for issue in report.issues:
                console.print(f"  {issue.severity.upper()}: {issue.message}")
        if html is not None:
            console.print(f"Report written to {html}")
        console.print("FAILED" if failed else "PASSED")
    if failed:
        raise typer.Exit(1)


def _share(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else ""


@app.command()
def schema(
    ref: RefArg,
    file: Annotated[
        str | None, typer.Option("--file", help="Table, when there are several.")
    ] = None,
) -> None:
    """Print the schema inferred from a version's table (edit it, then validate with --schema)."""
    from loopml.cli.output import print_json
    from loopml.data.compare import schema_of

    print_json(schema_of(_ws(), ref, file))


@app.command()
def tag(ref: RefArg, name: Annotated[str, typer.Argument(help="Tag, e.g. prod.")]) -> None:
    """Point a tag at a version, so NAME@TAG names it (an existing tag moves)."""
    from loopml.cli.output import console
    from loopml.data import versions

    version = versions.tag(_ws(), ref, name)
    console.print(f"{version.name}@{name} -> {version.ref}")


@app.command()
def untag(
    dataset: Annotated[str, typer.Argument(help="Dataset name.")],
    name: Annotated[str, typer.Argument(help="Tag to remove.")],
) -> None:
    """Remove a tag from a dataset."""
    from loopml.cli.output import console
    from loopml.data import versions

    versions.untag(_ws(), dataset, name)
    console.print(f"Removed tag {dataset}@{name}")


@app.command("used-by")
def used_by(ref: RefArg, as_json: JsonOption = False) -> None:
    """List the runs that read a version."""
    from loopml.cli.output import console, print_json, table
    from loopml.data import versions

    found = versions.used_by(_ws(), ref)
    if as_json:
        print_json([{"run_id": r, "name": n, "status": s, "context": c} for r, n, s, c in found])
    elif not found:
        console.print(f"No run has read {ref}.")
    else:
        table(None, ["RUN", "NAME", "STATUS", "CONTEXT"], found)


RemoteOption = Annotated[
    str | None, typer.Option("--remote", "-r", help="Remote name (default: the default remote).")
]
RefsArg = Annotated[
    list[str] | None, typer.Argument(help="Versions to move (default: every version).")
]


@app.command()
def push(refs: RefsArg = None, remote: RemoteOption = None) -> None:
    """Copy the blobs of versions to a remote; only what it lacks travels."""
    from loopml.cli.output import console, size_text
    from loopml.data.remotes import push as push_

    result = push_(_ws(), remote=remote, refs=refs)
    console.print(
        f"Pushed {result.copied} blob(s), {size_text(result.bytes)}; {result.skipped} already there"
    )


@app.command()
def pull(refs: RefsArg = None, remote: RemoteOption = None) -> None:
    """Fetch the blobs of versions from a remote; only what is missing here travels."""
    from loopml.cli.output import console, size_text
    from loopml.data.remotes import pull as pull_

    result = pull_(_ws(), remote=remote, refs=refs)
    console.print(
        f"Pulled {result.copied} blob(s), {size_text(result.bytes)}; {result.skipped} already here"
    )


@remote_app.command("add")
def remote_add(
    name: Annotated[str, typer.Argument(help="Remote name, e.g. origin.")],
    url: Annotated[str, typer.Argument(help="A path, file:// or s3:// URL, or any fsspec URL.")],
    default: Annotated[bool, typer.Option("--default", help="Make it the default.")] = False,
) -> None:
    """Name a remote (the first one becomes the default)."""
    from loopml.cli.output import console
    from loopml.data.remotes import add_remote

    remote = add_remote(_ws(), name, url, default=default)
    console.print(
        f"Remote {remote.name} -> {remote.url}" + (" (default)" if remote.default else "")
    )


@remote_app.command("list")
def remote_list(as_json: JsonOption = False) -> None:
    """List the configured remotes."""
    from loopml.cli.output import console, print_json, table
    from loopml.data.remotes import list_remotes

    found = list_remotes(_ws())
    if as_json:
        print_json([{"name": r.name, "url": r.url, "default": r.default} for r in found])
    elif not found:
        console.print("No remotes: add one with `loopml data remote add NAME URL`.")
    else:
        table(
            None,
            ["NAME", "URL", "DEFAULT"],
            [(r.name, r.url, "*" if r.default else "") for r in found],
        )


@remote_app.command("remove")
def remote_remove(name: Annotated[str, typer.Argument(help="Remote name.")]) -> None:
    """Forget a remote (nothing is deleted from it)."""
    from loopml.cli.output import console
    from loopml.data.remotes import remove_remote

    remove_remote(_ws(), name)
    console.print(f"Removed remote {name}")
