"""Table schemas: inferred from a profile as a draft, or written by a person and checked on load.

A schema is a JSON object (docs/data-validation.md has the whole story)::

    {"format": 1, "min_rows": 1, "columns": {
        "age":  {"type": "integer", "nullable": false, "max_null_share": 0.0,
                 "min": 18, "max": 99},
        "plan": {"type": "string", "nullable": true, "max_null_share": 0.02,
                 "categories": ["basic", "pro"]}}}

Column keys: type (one of profile.TYPES, or null for any type), nullable, max_null_share
(0..1), min and max (numbers), categories (strings; 7 and true are read as "7" and "true").
Inferred schemas are drafts, as TFDV and pandera call theirs: review them before they
become a contract.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from loopml.data.profile import NUMERIC_TYPES, TYPES, Profile, check_profile
from loopml.errors import InvalidInput, NotFound

FORMAT = 1
TABLE_KEYS = ("format", "min_rows", "columns")
COLUMN_KEYS = ("type", "nullable", "max_null_share", "min", "max", "categories")
CATEGORY_TYPES = ("string", "boolean", "integer")
_FIX = "export a fresh one with `loopml data schema REF` and edit that"

Schema = dict[str, Any]


def infer_schema(profile: Profile) -> Schema:
    """Return a draft schema that the profiled table passes: types, null shares, ranges, domains.

    Numbers get the observed min and max; string columns with at most 100 values get them all
    as categories. A column with no values gets type null (any), since nothing shows its type.
    """
    columns: dict[str, dict[str, Any]] = {}
    for name, col in check_profile(profile)["columns"].items():
        entry: dict[str, Any] = {
            "type": col["type"] if col["count"] else None,
            "nullable": col["null_share"] > 0,
            "max_null_share": col["null_share"],
        }
        if col["type"] in NUMERIC_TYPES and col.get("min") is not None:
            entry.update(min=col["min"], max=col["max"])
        if col["type"] == "string" and col["count"] and "categories" in col:
            entry["categories"] = sorted(col["categories"])
        columns[name] = entry
    return {"format": FORMAT, "min_rows": 1 if profile["rows"] else 0, "columns": columns}


def load_schema(path: Path) -> Schema:
    """Return the checked schema in the JSON file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"schema file {path} does not exist; {_FIX}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"schema file {path} cannot be read ({exc}); {_FIX}") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"schema file {path} is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}; fix the JSON there"
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"schema file {path}: {exc}") from None
    return check_schema(obj, source=f"schema file {path}")


def check_schema(obj: Any, *, source: str = "schema") -> Schema:
    """Return `obj` as a full schema (defaults filled in); raise InvalidInput if it is not one."""
    if not isinstance(obj, dict) or "columns" not in obj:
        raise InvalidInput(f'{source} must be a JSON object with a "columns" object; {_FIX}')
    _no_unknown_keys(obj, TABLE_KEYS, source)
    if obj.get("format", FORMAT) != FORMAT:
        raise InvalidInput(
            f'{source}: "format" is {obj["format"]!r}; this LoopML reads format {FORMAT}'
        )
    min_rows = obj.get("min_rows", 1)
    if not _is_int(min_rows) or min_rows < 0:
        raise InvalidInput(f'{source}: "min_rows" must be a whole number >= 0, not {min_rows!r}')
    columns = obj["columns"]
    if not isinstance(columns, dict):
        raise InvalidInput(f'{source}: "columns" must be an object of column name -> rules')
    checked = {
        str(name): _check_column(rules, f"{source}: column {name!r}")
        for name, rules in columns.items()
    }
    return {"format": FORMAT, "min_rows": min_rows, "columns": checked}


def _check_column(rules: Any, where: str) -> dict[str, Any]:
    if not isinstance(rules, dict):
        raise InvalidInput(f'{where} must be an object such as {{"type": "float"}}')
    _no_unknown_keys(rules, COLUMN_KEYS, where)
    kind = rules.get("type")
    if kind is not None and kind not in TYPES:
        raise InvalidInput(
            f'{where}: "type" {kind!r} is unknown; use one of {", ".join(TYPES)} or null for any'
        )
    out: dict[str, Any] = {"type": kind, **_check_nulls(rules, where)}
    for bound in ("min", "max"):
        if bound in rules:
            value = rules[bound]
            if not _is_number(value):
                raise InvalidInput(f'{where}: "{bound}" must be a finite number, not {value!r}')
            if kind not in (*NUMERIC_TYPES, None):
                raise InvalidInput(
                    f'{where}: "{bound}" applies to integer and float columns, not {kind}; '
                    f'remove it or change "type"'
                )
            out[bound] = value
    if "min" in out and "max" in out and out["min"] > out["max"]:
        raise InvalidInput(f'{where}: "min" {out["min"]} is above "max" {out["max"]}; swap them')
    if "categories" in rules:
        out["categories"] = _check_categories(rules["categories"], kind, where)
    return out


def _check_nulls(rules: dict[str, Any], where: str) -> dict[str, Any]:
    share = rules.get("max_null_share")
    if share is not None and (not _is_number(share) or not 0 <= share <= 1):
        raise InvalidInput(f'{where}: "max_null_share" must be a number from 0 to 1, not {share!r}')
    nullable = rules.get("nullable", True if share is None else share > 0)
    if not isinstance(nullable, bool):
        raise InvalidInput(f'{where}: "nullable" must be true or false, not {nullable!r}')
    if not nullable and share:
        raise InvalidInput(
            f'{where}: "nullable" is false but "max_null_share" is {share}; '
            'drop "max_null_share" or set "nullable" to true'
        )
    if share is None:
        share = 1.0 if nullable else 0.0
    return {"nullable": nullable, "max_null_share": float(share)}


def _check_categories(values: Any, kind: str | None, where: str) -> list[str]:
    if kind not in (*CATEGORY_TYPES, None):
        raise InvalidInput(
            f'{where}: "categories" applies to string, boolean and integer columns, not {kind}'
        )
    if not isinstance(values, list) or not values:
        raise InvalidInput(
            f'{where}: "categories" must be a non-empty list of values; remove it to allow any'
        )
    out = []
    for value in values:
        if isinstance(value, bool):
            out.append("true" if value else "false")  # as profiles write booleans
        elif isinstance(value, int | str):
            out.append(str(value))
        else:
            raise InvalidInput(
                f'{where}: "categories" holds {value!r}; write strings, whole numbers or booleans'
            )
    return out


def _no_unknown_keys(obj: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(key) for key in obj if key not in known)
    if unknown:
        raise InvalidInput(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"the keys are {', '.join(known)} (a typo?)"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a schema; write a finite number or null")
