"""Where a workspace lives and what it is configured to use.

A workspace is a folder holding `.loopml/`, found like git finds a repository: from
`LOOPML_HOME` if set, else by walking up from the current folder. `.loopml/config.toml` may
name another store or blob location; `LOOPML_STORE_URI` and `LOOPML_BLOB_URI` override both.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loopml.errors import InvalidInput, WorkspaceNotFound

DIRNAME = ".loopml"
CONFIG_FILE = "config.toml"
DB_FILE = "loopml.db"
HOME_ENV = "LOOPML_HOME"
STORE_ENV = "LOOPML_STORE_URI"
BLOB_ENV = "LOOPML_BLOB_URI"


@dataclass(frozen=True)
class Settings:
    """The resolved locations of one workspace."""

    root: Path
    store_uri: str
    blob_uri: str

    @property
    def dir(self) -> Path:
        """Return the `.loopml` folder."""
        return self.root / DIRNAME

    @property
    def journal_dir(self) -> Path:
        """Return the folder of per-run metric journals."""
        return self.dir / "journal"


def find_root(start: Path | None = None) -> Path | None:
    """Return the workspace folder at or above `start` (default: LOOPML_HOME, else the cwd)."""
    home = os.environ.get(HOME_ENV) if start is None else None
    if home:
        path = Path(home).expanduser().resolve()
        return path.parent if path.name == DIRNAME else path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DIRNAME).is_dir():
            return folder
    return None


def require_root(start: Path | None = None) -> Path:
    """Return the workspace folder, or raise WorkspaceNotFound saying how to make one."""
    root = find_root(start)
    if root is not None and not (root / DIRNAME).is_dir():
        raise WorkspaceNotFound(
            f"{HOME_ENV} points at {root}, which holds no {DIRNAME}/; "
            f"run `loopml init {root}` or fix {HOME_ENV}"
        )
    if root is None:
        where = (start or Path.cwd()).resolve()
        raise WorkspaceNotFound(
            f"no LoopML workspace in {where} or any folder above it; "
            f"run `loopml init` there, or set {HOME_ENV} to a workspace folder"
        )
    return root


def load_settings(root: Path) -> Settings:
    """Read `.loopml/config.toml` under `root`, with environment overrides applied."""
    path = root / DIRNAME / CONFIG_FILE
    config = _read_config(path)
    store = _uri(config, "store", path) or f"sqlite:///{root / DIRNAME / DB_FILE}"
    blobs = _uri(config, "blobs", path) or str(root / DIRNAME / "blobs")
    return Settings(
        root=root,
        store_uri=os.environ.get(STORE_ENV) or store,
        blob_uri=os.environ.get(BLOB_ENV) or blobs,
    )


def write_config(root: Path, *, store_uri: str | None, blob_uri: str | None) -> Path:
    """Write `.loopml/config.toml`, recording only locations that differ from the defaults."""
    lines = ["# LoopML workspace settings; LOOPML_STORE_URI and LOOPML_BLOB_URI override them."]
    if store_uri:
        lines += ["[store]", f"uri = {_toml_string(store_uri)}"]
    if blob_uri:
        lines += ["[blobs]", f"uri = {_toml_string(blob_uri)}"]
    path = root / DIRNAME / CONFIG_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)  # a store URI may carry a password
    return path


def section(root: Path, name: str) -> dict[str, object]:
    """Return the `[name]` table of the workspace's config.toml (empty when absent)."""
    return _read_config(root / DIRNAME / CONFIG_FILE).get(name, {})


def set_table(root: Path, name: str, values: dict[str, object] | None) -> None:
    """Replace the table `[name]` (and its sub-tables) in config.toml, or remove it (None).

    Every other line of the file stays as the user wrote it, comments included.
    """
    path = root / DIRNAME / CONFIG_FILE
    with _locked(path):
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        kept: list[str] = []
        inside = False
        for line in lines:
            header = _HEADER.match(line)
            if header:
                table = header.group(1).strip()
                inside = table == name or table.startswith(name + ".")
            if not inside:
                kept.append(line)
        while kept and not kept[-1].strip():
            kept.pop()
        if values is not None:
            kept += ["", *_toml_table(name.split("."), values)]
        text = "\n".join(kept) + "\n"
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(
                f"{path} could not be updated: the result would not be valid TOML ({exc}); "
                f"edit [{name}] by hand"
            ) from exc
        tmp = path.with_name(f"{CONFIG_FILE}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)


# A table header line, `[name]` (not an array of tables, `[[name]]`).
_HEADER = re.compile(r"^\s*\[(?!\[)([^\]]+)\]\s*(?:#.*)?$")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock while config.toml is read and rewritten."""
    fd = os.open(path.with_name(f"{CONFIG_FILE}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _toml_table(names: list[str], table: dict[str, object]) -> list[str]:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    lines = [f"[{'.'.join(_toml_key(n) for n in names)}]"]
    for key, value in scalars.items():
        lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            lines += _toml_table([*names, key], value)
    return lines


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else _toml_string(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise InvalidInput(f"cannot write {value!r} to config.toml: not a string, number or list")


def _read_config(path: Path) -> dict[str, dict[str, object]]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path} is not valid TOML ({exc}); fix or delete it") from exc
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _uri(config: dict[str, dict[str, object]], section: str, path: Path) -> str | None:
    value = config.get(section, {}).get("uri")
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{path}: [{section}] uri must be a quoted string, not {value!r}")
    return value or None


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
