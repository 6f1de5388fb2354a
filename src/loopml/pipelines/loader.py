"""Find a pipeline from the command line: `pipelines/churn.py:churn` or `package.module:churn`."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import traceback
from pathlib import Path
from typing import Any

from blake3 import blake3

from loopml.errors import InvalidInput, NotFound
from loopml.pipelines.graph import Pipeline
from loopml.pipelines.task import exec_file


def load_pipeline(target: str, *, root: Path | None = None) -> Pipeline:
    """Return the pipeline `target` names; a relative file is looked up from `root` too."""
    if not isinstance(target, str) or ":" not in target:
        raise InvalidInput(
            f"{target!r} does not name a pipeline; use FILE.py:FUNCTION or MODULE:FUNCTION"
        )
    where, _, name = target.rpartition(":")
    if not where:
        raise InvalidInput(
            f"{target!r} names no file or module; use FILE.py:FUNCTION or MODULE:FUNCTION"
        )
    if not name.isidentifier():
        raise InvalidInput(f"{name!r} in {target!r} is not a function name")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = _find_file(where, root)
        module = _import_file(path)
        source = _display_path(path, root)
    else:
        module = _import_module(where)
        source = where
    obj: Any = getattr(module, name, None)
    if obj is None:
        found = sorted(k for k, v in vars(module).items() if isinstance(v, Pipeline))
        hint = f"; it defines {', '.join(found)}" if found else "; it defines no @pipeline"
        raise NotFound(f"{where} has no {name!r}{hint}")
    if not isinstance(obj, Pipeline):
        raise InvalidInput(f"{target} is a {type(obj).__name__}, not a function with @pipeline")
    obj.source = f"{source}:{name}"
    return obj


def _find_file(where: str, root: Path | None) -> Path:
    path = Path(where).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path]
    if root is not None and not path.is_absolute():
        candidates.append(root / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise NotFound(f"pipeline file {where} does not exist; check the path")


def _display_path(path: Path, root: Path | None) -> str:
    if root is not None and path.is_relative_to(root.resolve()):
        return str(path.relative_to(root.resolve()))
    return str(path)


def _module_name(path: Path) -> str:
    # The file's stem, as `python -m` would name it, so step names in cache keys do not
    # depend on where the project lives; another file of that name gets a suffix.
    stem = re.sub(r"\W", "_", path.stem)
    taken = sys.modules.get(stem)
    if taken is None or getattr(taken, "__file__", None) == str(path):
        return stem
    return f"{stem}_{blake3(str(path).encode()).hexdigest()[:8]}"


def _import_file(path: Path) -> Any:
    name = _module_name(path)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # sibling modules import as they do when run as a script
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        exec_file(module, path)
    except Exception as exc:
        del sys.modules[name]
        raise InvalidInput(f"importing {path} failed: {_where(exc, path)}") from exc
    return module


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name or name.startswith(f"{exc.name}."):
            raise NotFound(
                f"no module {name!r}; give FILE.py:FUNCTION or an importable module"
            ) from None
        raise InvalidInput(f"importing {name} failed: {exc}") from exc
    except Exception as exc:
        raise InvalidInput(f"importing {name} failed: {_where(exc, None)}") from exc


def _where(exc: BaseException, path: Path | None) -> str:
    line = "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1]
    if isinstance(exc, SyntaxError) and exc.lineno:
        # The bad line may be in a module the file imports: name that module's file then.
        if exc.filename and (path is None or Path(exc.filename) != path):
            return f"{line} ({exc.filename}, line {exc.lineno})"
        return f"{line} (line {exc.lineno})"
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if path is None or Path(f.filename) == path
    ]
    if not frames:
        return line
    if path is None:
        return f"{line} ({frames[-1].filename}, line {frames[-1].lineno})"
    return f"{line} (line {frames[-1].lineno})"
