"""Comparing versions: `diff` (files, and rows/schema/stats of tables) and `validate`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.core.workspace import Workspace
from loopml.data import versions
from loopml.data.entities import DatasetVersion
from loopml.data.profile import diff_profiles
from loopml.data.schema import Schema, infer_schema, load_schema
from loopml.data.validation import Issue, ValidationReport, validate
from loopml.errors import InvalidInput


def diff(ws: Workspace, old_ref: str, new_ref: str) -> dict[str, Any]:
    """Return files added, removed and changed from `old_ref` to `new_ref`, and table diffs."""
    old, new = versions.get(ws, old_ref), versions.get(ws, new_ref)
    before, after = old.manifest().by_path(), new.manifest().by_path()
    if old.kind == new.kind == "file":  # one file each: compared whatever their names
        (path_a, a), (path_b, b) = next(iter(before.items())), next(iter(after.items()))
        changed = [path_b] if a.digest != b.digest else []
        added, removed = ([path_b], [path_a]) if path_a != path_b and changed else ([], [])
        changed = [] if added else changed
    else:
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(p for p in set(before) & set(after) if before[p].digest != after[p].digest)
    tables = {
        new_path: diff_profiles(old_profile, new_profile)
        for _, new_path, old_profile, new_profile in _paired_tables(old, new)
    }
    return {
        "old": old.ref,
        "new": new.ref,
        "files": {"added": added, "removed": removed, "changed": changed},
        "size": {"old": old.size, "new": new.size},
        "tables": tables,
    }


def _paired_tables(
    old: DatasetVersion, new: DatasetVersion
) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """Return (old path, new path, old profile, new profile) of the tables both hold.

    Tables pair up by path; two versions of one table each pair up whatever their names.
    """
    a, b = old.profile(), new.profile()
    if len(a) == 1 and len(b) == 1:
        (path_a, profile_a), (path_b, profile_b) = next(iter(a.items())), next(iter(b.items()))
        return [(path_a, path_b, profile_a, profile_b)]
    return [(path, path, a[path], b[path]) for path in sorted(set(a) & set(b))]


@dataclass(frozen=True)
class TableCheck:
    """The validation of one table of a version, with the profiles it compared."""

    path: str
    report: ValidationReport
    current: dict[str, Any]
    reference: dict[str, Any] | None


def check(
    ws: Workspace,
    ref: str,
    *,
    against: str | None = None,
    schema: Path | Schema | None = None,
    skew_threshold: float = 0.1,
) -> list[TableCheck]:
    """Validate every table of version `ref` against a reference version or a schema."""
    if (against is None) == (schema is None):
        raise InvalidInput("validate needs exactly one of --against REF or --schema FILE")
    current = versions.get(ws, ref)
    profiles = current.profile()
    if not profiles:
        raise InvalidInput(f"{current.ref} holds no CSV or Parquet table to validate")
    if schema is not None:
        contract = load_schema(schema) if isinstance(schema, Path) else schema
        return [
            TableCheck(path, validate(p, schema=contract, label=f"{current.ref}:{path}"), p, None)
            for path, p in sorted(profiles.items())
        ]
    assert against is not None
    reference = versions.get(ws, against)
    paired = _paired_tables(reference, current)
    checks = [
        TableCheck(
            path,
            validate(
                cur,
                reference=ref_profile,
                skew_threshold=skew_threshold,
                label=f"{current.ref}:{path}",
            ),
            cur,
            ref_profile,
        )
        for _, path, ref_profile, cur in paired
    ]
    for path in sorted(set(reference.profile()) - {ref_path for ref_path, *_ in paired}):
        missing = Issue(
            None,
            "missing_table",
            "error",
            f"table {path} of {reference.ref} is missing from {current.ref}",
        )
        checks.append(
            TableCheck(
                path,
                ValidationReport([missing], [], 0, "reference", skew_threshold, table=path),
                {},
                None,
            )
        )
    return checks


def schema_of(ws: Workspace, ref: str, file: str | None = None) -> Schema:
    """Return the schema inferred from a table of version `ref`."""
    from loopml.data.tabular import table_path

    version = versions.get(ws, ref)
    profiles = version.profile()
    return infer_schema(profiles[table_path(version, file, profiles)])
