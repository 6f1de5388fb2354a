"""`@step`: a function that becomes one node of a pipeline graph when a pipeline calls it."""

from __future__ import annotations

import inspect
import math
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

from loopml.errors import InvalidInput
from loopml.pipelines.materializers import Materializer

P = ParamSpec("P")
R = TypeVar("R")

RESOURCE_NAMES = ("cpu", "gpu", "memory")


@dataclass(frozen=True)
class Output:
    """One declared output of a step: its name and whether it may be None."""

    name: str
    optional: bool = True


@dataclass(frozen=True)
class StepOptions:
    """How a step runs: resources, retries, timeout, caching and extra materializers."""

    resources: Mapping[str, float] = field(default_factory=lambda: {"cpu": 1.0})
    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float = 1.0
    timeout: float | None = None
    cache: bool = True
    materializers: tuple[Materializer, ...] = ()

    @property
    def cpus(self) -> float:
        """Return the CPUs the step asks for."""
        return float(self.resources.get("cpu", 1.0))

    @property
    def gpus(self) -> float:
        """Return the GPUs the step asks for."""
        return float(self.resources.get("gpu", 0.0))


class Step(Generic[P, R]):
    """A function decorated with `@step`.

    Called inside a `@pipeline` it adds a node to the graph and returns lazy outputs; called
    anywhere else it simply runs the function.
    """

    def __init__(self, fn: Callable[P, R], options: StepOptions, outputs: tuple[Output, ...]):
        self.fn = fn
        self.options = options
        self.outputs = outputs
        self.name: str = fn.__name__
        self.signature = _signature(fn)
        self.hints = _type_hints(fn)
        self.reference = f"{fn.__module__}:{fn.__qualname__}"
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        from loopml.pipelines.graph import current_builder

        builder = current_builder()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add(self, args, kwargs)  # type: ignore[no-any-return]

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Return every argument of a call by name, defaults filled in; raise on a bad call."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(
                f"step {self.name!r}: {exc}; its signature is {self.signature}"
            ) from None
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        for name, param in self.signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD and name in arguments:
                arguments.update(arguments.pop(name))
            elif param.kind is inspect.Parameter.VAR_POSITIONAL:
                raise InvalidInput(
                    f"step {self.name!r} takes *{name}; a step's inputs need names, so list "
                    "them as parameters"
                )
        return arguments

    def annotation(self, parameter: str) -> Any:
        """Return the type hint of one parameter (None when it has none)."""
        return self.hints.get(parameter)

    def __repr__(self) -> str:
        return f"<step {self.reference}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # A step its module names is sent by reference (the worker imports the module);
        # one made elsewhere (inside a function, in __main__) travels with its code.
        module, qualname = self.fn.__module__, self.fn.__qualname__
        if module != "__main__" and module in sys.modules and _lookup(module, qualname) is self:
            return (_lookup, (self.fn.__module__, self.fn.__qualname__))
        return (Step, (self.fn, self.options, self.outputs))


def _lookup(module: str, qualname: str) -> Any:
    """Return the object `module.qualname` names, importing the module if needed."""
    import importlib

    target: Any = sys.modules.get(module)
    if target is None:
        target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(
    *,
    resources: Mapping[str, float] | None = None,
    retries: int = 0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    outputs: int | Sequence[str] | None = None,
    materializers: Sequence[Materializer] = (),
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(
    fn: Callable[P, R] | None = None,
    /,
    *,
    resources: Mapping[str, float] | None = None,
    retries: int = 0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    outputs: int | Sequence[str] | None = None,
    materializers: Sequence[Materializer] = (),
) -> Step[P, R] | Callable[[Callable[P, R]], Step[P, R]]:
    """Make a function a pipeline step.

    `resources` ({"cpu": 2, "gpu": 1}) is what the executor reserves for it; `retries` reruns it
    after an exception listed in `retry_on`, waiting `backoff` seconds, doubled each time;
    `timeout` (seconds) stops an attempt; `cache=False` always runs it; `outputs` names its
    outputs (else they come from the return annotation: `tuple[A, B]` is two outputs).
    """

    def decorate(function: Callable[P, R]) -> Step[P, R]:
        if isinstance(function, Step):
            raise InvalidInput(f"{function.name!r} is already a step; decorate it once")
        if not callable(function) or not hasattr(function, "__code__"):
            raise InvalidInput(f"@step decorates a function, not {type(function).__name__}")
        if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
            raise InvalidInput(
                f"step {function.__name__!r} is async; a step is a plain function (call "
                "asyncio.run inside it)"
            )
        if inspect.isgeneratorfunction(function):
            raise InvalidInput(
                f"step {function.__name__!r} is a generator; a step returns its outputs "
                "(return a list of what it yields)"
            )
        name = function.__name__
        options = StepOptions(
            resources=_resources(name, resources),
            retries=_count(name, "retries", retries),
            retry_on=_exception_types(name, retry_on),
            backoff=_seconds(name, "backoff", backoff, allow_zero=True),
            timeout=None if timeout is None else _seconds(name, "timeout", timeout),
            cache=bool(cache),
            materializers=_materializers(name, materializers),
        )
        return Step(function, options, _outputs(function, outputs))

    return decorate(fn) if fn is not None else decorate


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:  # `(n: int)` in messages, not `(n: 'int')`, under `from __future__ import annotations`
        return inspect.signature(fn, eval_str=True)
    except Exception:  # noqa: BLE001 - a hint naming an undefined type: show it as written
        return inspect.signature(fn)


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - a hint naming an undefined type: treat it as absent
        return {}


def _outputs(fn: Callable[..., Any], outputs: int | Sequence[str] | None) -> tuple[Output, ...]:
    name = fn.__name__
    returns = _type_hints(fn).get("return", inspect.Signature.empty)
    members: tuple[Any, ...] | None = None
    if typing.get_origin(returns) is tuple:
        members = typing.get_args(returns)
        if (len(members) == 2 and members[1] is Ellipsis) or members == ((),):
            members = None  # tuple[X, ...] is one output that happens to be a tuple
    if outputs is None:
        if returns is None or returns is type(None):
            return ()
        if members is not None:
            return tuple(Output(f"output_{i}", _optional(t)) for i, t in enumerate(members))
        return (Output("output", returns is inspect.Signature.empty or _optional(returns)),)
    if (
        isinstance(outputs, bool)
        or not isinstance(outputs, int | Sequence)
        or (isinstance(outputs, str))
    ):
        raise InvalidInput(
            f"step {name!r}: outputs= takes a count or a list of names, not {outputs!r}"
        )
    names = [f"output_{i}" for i in range(outputs)] if isinstance(outputs, int) else list(outputs)
    if isinstance(outputs, int) and outputs < 0:
        raise InvalidInput(f"step {name!r}: outputs= must be 0 or more, not {outputs}")
    for output in names:
        if not isinstance(output, str) or not output.isidentifier():
            raise InvalidInput(f"step {name!r}: output name {output!r} is not an identifier")
    if len(set(names)) != len(names):
        raise InvalidInput(f"step {name!r}: output names {names} repeat")
    if members is not None and len(members) != len(names):
        raise InvalidInput(
            f"step {name!r} names {len(names)} outputs but its return annotation has "
            f"{len(members)}; make them agree"
        )
    kinds = members if members is not None else (returns,) * len(names)
    return tuple(
        Output(n, t is inspect.Signature.empty or _optional(t))
        for n, t in zip(names, kinds, strict=True)
    )


def _optional(hint: Any) -> bool:
    if hint is Any or hint is None or hint is type(None):
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(hint)
    return False


def _resources(name: str, resources: Mapping[str, float] | None) -> dict[str, float]:
    if resources is None:
        return {"cpu": 1.0}
    if not isinstance(resources, Mapping):
        raise InvalidInput(f"step {name!r}: resources must be a mapping like {{'cpu': 2}}")
    result = {"cpu": 1.0}
    for key, value in resources.items():
        if key not in RESOURCE_NAMES:
            raise InvalidInput(
                f"step {name!r}: unknown resource {key!r}; use {', '.join(RESOURCE_NAMES)}"
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value >= 0)
        ):
            raise InvalidInput(f"step {name!r}: resource {key} must be a number >= 0")
        result[key] = float(value)
    return result


def _count(name: str, what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"step {name!r}: {what} must be a whole number >= 0, not {value!r}")
    return value


def _seconds(name: str, what: str, value: object, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        raise InvalidInput(f"step {name!r}: {what} must be a positive number of seconds")
    return float(value)  # type: ignore[arg-type]


def _exception_types(
    name: str, retry_on: type[BaseException] | tuple[type[BaseException], ...]
) -> tuple[type[BaseException], ...]:
    types_ = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    for kind in types_:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise InvalidInput(f"step {name!r}: retry_on takes exception classes, not {kind!r}")
    return types_


def _materializers(name: str, materializers: Sequence[Materializer]) -> tuple[Materializer, ...]:
    result = tuple(materializers)
    for m in result:
        if not all(hasattr(m, attr) for attr in ("name", "handles", "dump", "load")):
            raise InvalidInput(
                f"step {name!r}: {m!r} is not a materializer (it needs name, handles, dump, load)"
            )
    return result
