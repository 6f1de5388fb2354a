"""What a step's cache key is made of: its code, the local code it calls, and its libraries.

A step's code fingerprint covers, exactly:

- the source of the step function (or its bytecode, when the source cannot be read), and of
  every decorator wrapper around it;
- the source of every function and class it refers to by a global name or a closure variable
  that is defined in the user's own code (not in the standard library, an installed package or
  LoopML), followed transitively through what those refer to, their default argument values,
  the wrappers of decorated helpers, and a class's methods, properties and attribute values;
- the whole source file of a user module it refers to by name (`import features`), and what
  the code looks up on it (`features.clean`, `pkg.sub.f`), followed like a global;
- the value of constants it reads (numbers, strings, bytes, booleans, None, and lists,
  tuples, sets and dicts of them, nested), so `SEED = 42` changing to 7, or
  `CONFIG = {"lr": 0.1}` to 0.2, changes the key;
- which library function or class a name stands for (`from statistics import mean as agg`
  becoming `median as agg`, `MODEL = RandomForestClassifier`);
- any other object it reads (`SCALE = Scale(2)`, or an object a closure holds): its class,
  and the digest of its pickle (only its class when it cannot be pickled).

Its library list names every installed distribution it reaches this way, through a module, a
function or a class, or an `import` inside a function body, with its version.
"""

from __future__ import annotations

import builtins
import dis
import functools
import importlib.metadata
import inspect
import marshal
import pickle
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blake3 import blake3

_CONSTANT_TYPES = (int, float, complex, str, bytes, bool, type(None))
_MAX_DEPTH = 16


@dataclass
class CodeFingerprint:
    """The digest of a step's code and of the user code it reaches, and its libraries."""

    digest: str
    sources: dict[str, str] = field(default_factory=dict)  # qualified name -> source text
    libraries: dict[str, str] = field(default_factory=dict)  # distribution -> version


def fingerprint(fn: Callable[..., Any]) -> CodeFingerprint:
    """Return the fingerprint of `fn` and everything local it reaches."""
    walker = _Walker()
    walker.visit_function(fn)
    hasher = blake3()
    for name in sorted(walker.sources):
        hasher.update(f"{name}\0{walker.sources[name]}\0".encode())
    for name in sorted(walker.constants):
        hasher.update(f"{name}={walker.constants[name]}\0".encode())
    libraries = {}
    for package in sorted(walker.packages):
        for distribution in _distributions().get(package, ()):
            libraries[distribution] = _version(distribution)
    return CodeFingerprint(f"blake3:{hasher.hexdigest()}", dict(walker.sources), libraries)


class _Walker:
    def __init__(self) -> None:
        self.sources: dict[str, str] = {}
        self.constants: dict[str, str] = {}
        self.packages: set[str] = set()
        self._seen: set[int] = set()

    def visit_function(self, fn: Callable[..., Any]) -> None:
        fn = getattr(fn, "fn", fn)  # a step: its function (decorators on it stay in the chain)
        if id(fn) in self._seen or not isinstance(fn, types.FunctionType):
            return
        self._seen.add(id(fn))
        prefix = f"{fn.__module__}.{fn.__qualname__}"
        # The code's own name and text: functools.wraps gives a wrapper its function's name,
        # and inspect.getsource(wrapper) would show the wrapped function's text instead.
        self.sources[f"{fn.__module__}:{fn.__code__.co_qualname}"] = _source(fn)
        scope: dict[str, Any] = dict(vars(builtins))
        scope.update(fn.__globals__)
        if fn.__closure__:
            for name, cell in zip(fn.__code__.co_freevars, fn.__closure__, strict=True):
                try:
                    scope[name] = cell.cell_contents
                except ValueError:  # an empty cell: a name assigned later
                    continue
        # Default values are part of what the function computes: `def f(x, k=K)`.
        for i, default in enumerate(fn.__defaults__ or ()):
            self.visit_value(f"{prefix}.<default {i}>", default)
        for key, default in (fn.__kwdefaults__ or {}).items():
            self.visit_value(f"{prefix}.<default {key}>", default)
        wrapped = getattr(fn, "__wrapped__", None)  # functools.wraps: both levels run
        if wrapped is not None:
            self.visit_value(f"{prefix}.__wrapped__", wrapped)
        for code in _code_objects(fn.__code__):
            for package in _imports(code):
                self._library(package)
            attributes = set(code.co_names)
            for name in (*code.co_names, *code.co_freevars):
                if name in scope:
                    self.visit_value(f"{fn.__module__}.{name}", scope[name], attributes)

    def visit_value(self, name: str, value: Any, attributes: set[str] | None = None) -> None:
        """Cover `value`, reached as `name`; `attributes` are the names the code looks up on
        it (`features.clean` from `features`)."""
        constant = _constant_text(value, 0)
        if constant is not None:
            self.constants[name] = constant
        elif isinstance(value, types.ModuleType):
            self.visit_module(value, attributes or set())
        elif hasattr(value, "fn") and hasattr(value, "options") and callable(value):
            self.visit_function(value.fn)  # another step, called as a plain function
        elif isinstance(value, types.FunctionType) and is_local(value.__module__):
            self.visit_function(value)
        elif isinstance(value, type) and is_local(value.__module__):
            self.visit_class(value)
        elif isinstance(value, property):
            for accessor in (value.fget, value.fset, value.fdel):
                if accessor is not None:
                    self.visit_value(name, accessor)
        elif callable(value) and hasattr(value, "__qualname__"):
            # A library's function or class (`mean`, `np.median`, `RandomForestClassifier`):
            # which one it is counts, as `from statistics import mean as agg` shows.
            module = getattr(value, "__module__", None) or type(value).__module__
            self.constants[name] = f"{module}.{value.__qualname__}"
            self._library(module)
        else:
            self.visit_object(name, value)

    def visit_object(self, name: str, value: Any) -> None:
        """Cover an instance (`make(Scale(2))`): its class, and its state by pickle digest."""
        kind = type(value)
        if is_local(kind.__module__):
            self.visit_class(kind)
        else:
            self._library(kind.__module__)
        try:
            data = pickle.dumps(value, protocol=5)
        except Exception:  # noqa: BLE001 - state that cannot pickle is covered by its class only
            self.constants[name] = f"<{kind.__module__}.{kind.__qualname__}>"
            return
        self.constants[name] = f"<{kind.__qualname__} {blake3(data).hexdigest()}>"

    def visit_class(self, cls: type) -> None:
        if id(cls) in self._seen:
            return
        self._seen.add(id(cls))
        try:
            self.sources[f"{cls.__module__}:{cls.__qualname__}"] = textwrap.dedent(
                inspect.getsource(cls)
            )
        except (OSError, TypeError):
            self.sources[f"{cls.__module__}:{cls.__qualname__}"] = repr(sorted(vars(cls)))
        prefix = f"{cls.__module__}.{cls.__qualname__}"
        for attribute, member in vars(cls).items():
            if attribute.startswith("__") and attribute.endswith("__"):
                if isinstance(member, types.FunctionType):  # __init__, __call__, ...
                    self.visit_function(member)
                continue
            target = member.__func__ if isinstance(member, classmethod | staticmethod) else member
            self.visit_value(f"{prefix}.{attribute}", target)  # methods, properties, `k = K`
        for base in cls.__mro__[1:]:
            if base is not object:
                self.visit_value(f"{cls.__module__}.{base.__name__}", base)

    def visit_module(self, module: types.ModuleType, attributes: set[str]) -> None:
        if not is_local(module.__name__):
            self._library(module.__name__)
            return
        # What the code looks up on it (`pkg.sub.f()`: sub, then f), followed like a global.
        for attribute in sorted(attributes):
            if attribute in vars(module):
                member = vars(module)[attribute]
                self.visit_value(f"{module.__name__}.{attribute}", member, attributes)
        if id(module) in self._seen:
            return
        self._seen.add(id(module))
        path = getattr(module, "__file__", None)
        try:
            text = Path(path).read_text(encoding="utf-8") if path else repr(sorted(vars(module)))
        except OSError:
            text = repr(sorted(vars(module)))
        self.sources[f"{module.__name__}:<module>"] = text

    def _library(self, module: str) -> None:
        top = module.partition(".")[0]
        if top and top not in sys.stdlib_module_names and top != "builtins":
            self.packages.add(top)


def _constant_text(value: Any, depth: int) -> str | None:
    """Return a text that changes exactly when a plain-data value does; None for other values."""
    if isinstance(value, _CONSTANT_TYPES):
        return repr(value)
    if depth > _MAX_DEPTH or not isinstance(value, list | tuple | set | frozenset | dict):
        return None
    if isinstance(value, dict):
        items = [
            (_constant_text(k, depth + 1), _constant_text(v, depth + 1)) for k, v in value.items()
        ]
        if any(k is None or v is None for k, v in items):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    members = [_constant_text(v, depth + 1) for v in value]
    if any(m is None for m in members):
        return None
    if isinstance(value, set | frozenset):  # iteration order varies between processes
        members.sort()
    return f"{type(value).__name__}[{', '.join(members)}]"  # type: ignore[arg-type]


def _source(fn: types.FunctionType) -> str:
    try:
        return textwrap.dedent(inspect.getsource(fn.__code__))
    except (OSError, TypeError):
        # Defined where no source file is kept (exec, a notebook cell that is gone): the
        # bytecode and constants change whenever the code does, on this Python version.
        return marshal.dumps(fn.__code__).hex()


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _imports(code: types.CodeType) -> Iterator[str]:
    for instruction in dis.get_instructions(code):
        if instruction.opname == "IMPORT_NAME":
            yield str(instruction.argval)


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(str(Path(root).resolve()) for root in roots)


@functools.cache
def _is_local_file(path: str) -> bool:
    resolved = str(Path(path).resolve())
    return not resolved.startswith(_library_roots())


def is_local(module_name: str) -> bool:
    """Return True for the user's own modules: not stdlib, not installed, not LoopML."""
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top in ("loopml", "builtins"):
        return False
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    return path is None or _is_local_file(path)


@functools.cache
def _distributions() -> dict[str, tuple[str, ...]]:
    return {k: tuple(v) for k, v in importlib.metadata.packages_distributions().items()}


@functools.cache
def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
