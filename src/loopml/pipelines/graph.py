"""`@pipeline`: calling steps inside it builds a graph from the outputs they pass each other."""

from __future__ import annotations

import inspect
import traceback
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, LoopMLError
from loopml.pipelines.params import bind_params
from loopml.pipelines.step import Step

if TYPE_CHECKING:
    from loopml.data.entities import DatasetVersion
    from loopml.pipelines.results import PipelineResult


@dataclass(frozen=True)
class StepOutput:
    """A lazy output of a step in a graph being built: pass it to other steps."""

    node: str
    name: str
    index: int
    _count: int = field(repr=False, compare=False, default=1)

    def __iter__(self) -> Iterator[Any]:
        raise InvalidInput(
            f"step {self.node!r} has one output, so it cannot be unpacked; to return several, "
            "annotate the step -> tuple[A, B] or give @step(outputs=2)"
        )

    def __bool__(self) -> bool:
        raise InvalidInput(
            f"the output of step {self.node!r} is not known while the pipeline is built, so "
            "it cannot decide an `if`; branch inside a step instead"
        )

    def __format__(self, spec: str) -> str:
        # Without this an f-string would quietly pass the repr on as the value.
        raise InvalidInput(
            f"the output of step {self.node!r} is not known while the pipeline is built, so "
            "it cannot be formatted into text; pass it to a step and format it there"
        )


@dataclass
class Node:
    """One call of a step in a pipeline: its name, step, upstream outputs and plain params."""

    name: str
    step: Step[Any, Any]
    inputs: dict[str, StepOutput]  # parameter -> upstream output
    params: dict[str, Any]  # parameter -> plain value (datasets resolved to versions)
    datasets: dict[str, DatasetVersion] = field(default_factory=dict)

    @property
    def upstream(self) -> set[str]:
        """Return the names of the nodes this one reads from."""
        return {output.node for output in self.inputs.values()}


@dataclass
class Graph:
    """The steps of one pipeline run, in the order they were called (a topological order)."""

    nodes: dict[str, Node] = field(default_factory=dict)

    def downstream_of(self, names: set[str]) -> set[str]:
        """Return `names` and every node that reads from them, directly or not."""
        found = set(names)
        for node in self.nodes.values():  # insertion order is topological
            if node.upstream & found:
                found.add(node.name)
        return found


_builder: ContextVar[GraphBuilder | None] = ContextVar("loopml_graph_builder", default=None)


def current_builder() -> GraphBuilder | None:
    """Return the graph being built in this context, if a pipeline is being called."""
    return _builder.get()


class GraphBuilder:
    """Collects the steps a pipeline function calls."""

    def __init__(self, resolve_dataset: Callable[[str], DatasetVersion]) -> None:
        self.graph = Graph()
        self._resolve_dataset = resolve_dataset
        self._datasets: dict[str, DatasetVersion] = {}

    def add(self, step: Step[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Add a call of `step`; return its lazy output(s)."""
        name, count = step.name, 1
        while name in self.graph.nodes:  # the second call of `train` is `train_2`
            count += 1
            name = f"{step.name}_{count}"
        arguments = step.bind(args, kwargs)
        inputs: dict[str, StepOutput] = {}
        params: dict[str, Any] = {}
        datasets: dict[str, DatasetVersion] = {}
        for parameter, value in arguments.items():
            if isinstance(value, StepOutput):
                inputs[parameter] = value
            elif (
                isinstance(value, tuple) and value and all(isinstance(v, StepOutput) for v in value)
            ):
                raise InvalidInput(
                    f"step {name!r}: parameter {parameter!r} was given all the outputs of step "
                    f"{value[0].node!r} at once; unpack them first: a, b = {value[0].node}(...)"
                )
            elif _is_dataset(value) or _wants_dataset(step.annotation(parameter), value):
                datasets[parameter] = self._dataset(name, parameter, value)
            else:
                _check_plain(name, parameter, value)
                params[parameter] = value
        self.graph.nodes[name] = Node(name, step, inputs, params, datasets)
        outputs = step.outputs
        if not outputs:
            return None
        if len(outputs) == 1:
            return StepOutput(name, outputs[0].name, 0)
        return tuple(StepOutput(name, o.name, i, len(outputs)) for i, o in enumerate(outputs))

    def _dataset(self, node: str, parameter: str, value: Any) -> DatasetVersion:
        if _is_dataset(value):
            return value  # type: ignore[no-any-return]
        if not isinstance(value, str):
            raise InvalidInput(
                f"step {node!r}: parameter {parameter!r} is a Dataset; pass a ref like "
                f"'churn@v2' or a dataset version, not {type(value).__name__}"
            )
        if value not in self._datasets:  # one pipeline run reads one version of each ref
            self._datasets[value] = self._resolve_dataset(value)
        return self._datasets[value]


def _wants_dataset(hint: Any, value: Any) -> bool:
    from loopml.data.entities import DatasetVersion

    if hint is DatasetVersion:
        return True
    members = typing.get_args(hint)
    # `data: Dataset | None = None` left at None is a plain None, not a ref to resolve
    return DatasetVersion in members and not (value is None and type(None) in members)


def _is_dataset(value: Any) -> bool:
    return type(value).__name__ == "DatasetVersion" and hasattr(value, "manifest_digest")


def _check_plain(node: str, parameter: str, value: Any) -> None:
    if callable(value) and isinstance(value, Step):
        raise InvalidInput(
            f"step {node!r}: parameter {parameter!r} was given the step {value.name!r} itself; "
            f"call it and pass its output: {value.name}(...)"
        )
    inner = _nested_output(value, 0)
    if inner is not None:
        # The worker would receive the placeholder, not the value: only a parameter given
        # an output directly is wired to the upstream step.
        raise InvalidInput(
            f"step {node!r}: parameter {parameter!r} holds the output of step {inner.node!r} "
            f"inside a {type(value).__name__}; pass each output to a parameter of its own"
        )


def _nested_output(value: Any, depth: int) -> StepOutput | None:
    if isinstance(value, StepOutput):
        return value
    if depth > 8 or not isinstance(value, list | tuple | set | frozenset | dict):
        return None
    members = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    for member in members:
        found = _nested_output(member, depth + 1)
        if found is not None:
            return found
    return None


class Pipeline:
    """A function decorated with `@pipeline`: its parameters are the pipeline's params."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.signature = inspect.signature(fn)
        try:
            self.hints = typing.get_type_hints(fn)
        except Exception:  # noqa: BLE001 - an unresolvable hint is treated as absent
            self.hints = {}
        self.reference = f"{fn.__module__}:{fn.__qualname__}"
        self.source: str | None = None  # "path/to/file.py:name" when loaded from a file
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def defaults(self) -> dict[str, Any]:
        """Return the params with their default values (None where there is none)."""
        return {
            name: None if p.default is inspect.Parameter.empty else p.default
            for name, p in self.signature.parameters.items()
        }

    def bind(self, params: Mapping[str, Any], *, from_text: bool = False) -> dict[str, Any]:
        """Return every param by name: given values checked (or parsed) against the hints."""
        return bind_params(self, params, from_text=from_text)

    def build(
        self, params: Mapping[str, Any], resolve_dataset: Callable[[str], DatasetVersion]
    ) -> Graph:
        """Call the pipeline function with `params` and return the graph of its steps."""
        if _builder.get() is not None:
            raise InvalidInput(
                f"pipeline {self.name!r} was called inside another pipeline; call its steps "
                "instead, or run it on its own"
            )
        builder = GraphBuilder(resolve_dataset)
        token = _builder.set(builder)
        try:
            self.fn(**params)
        except LoopMLError:
            raise
        except Exception as exc:
            raise InvalidInput(f"pipeline {self.name!r}: {_building_error(exc)}") from exc
        finally:
            _builder.reset(token)
        if not builder.graph.nodes:
            raise InvalidInput(
                f"pipeline {self.name!r} called no steps; call functions decorated with @step"
            )
        return builder.graph

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        executor: str = "local",
        cache: bool = True,
        experiment: str | None = None,
    ) -> PipelineResult:
        """Run the pipeline and return its result; raise StepFailed if a step fails."""
        from loopml.pipelines.runner import run_pipeline

        if _builder.get() is not None:  # refuse before a workspace or workers are touched
            raise InvalidInput(
                f"pipeline {self.name!r} was called inside another pipeline; call its steps "
                "instead, or run it on its own"
            )

        return run_pipeline(
            self, params or {}, executor=executor, cache=cache, experiment=experiment
        )

    def __call__(self, **params: Any) -> PipelineResult:
        return self.run(params)

    def __repr__(self) -> str:
        return f"<pipeline {self.reference}>"


def _building_error(exc: Exception) -> str:
    """Return one line for an error the pipeline function raised: what, and where."""
    line = "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1]
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    hint = (
        "; a step's output has no value while the graph is built: pass it to another step "
        "and compute there"
        if "StepOutput" in line
        else ""
    )
    return f"building its graph failed: {line}{where}{hint}"


def pipeline(fn: Callable[..., Any]) -> Pipeline:
    """Make a function a pipeline: it calls steps, passing outputs from one to the next."""
    if isinstance(fn, Pipeline | Step) or not inspect.isfunction(fn):
        raise InvalidInput(f"@pipeline decorates a plain function, not {fn!r}")
    return Pipeline(fn)
