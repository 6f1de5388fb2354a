"""One attempt of one step, as an executor runs it: load inputs, call, store outputs.

This is the only code that runs in executor workers (a local worker process or a Ray task).
It never touches the metadata store: it reads and writes blobs, and the driver records rows.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blake3 import blake3

from loopml.core.blobs import ContentStore, storage_from_uri
from loopml.errors import InvalidInput
from loopml.pipelines import materializers
from loopml.pipelines.step_log import Logged, StepLog
from loopml.tracking.current import current_run

if TYPE_CHECKING:
    from loopml.pipelines.step import Step

MAX_LOG = 1_000_000  # characters of stdout/stderr kept per attempt (the tail)


@dataclass(frozen=True)
class Stored:
    """An input or output value as the blob store holds it."""

    digest: str | None  # None for an output that was None
    materializer: str
    type_name: str
    size: int


@dataclass
class StepTask:
    """Everything a worker needs to run one attempt of a step."""

    node: str
    step: Step[Any, Any]
    params: dict[str, Any]
    stored_inputs: dict[str, Stored]  # parameter -> blob to load
    passed_inputs: dict[str, int]  # parameter -> index of a value passed alongside the task
    blob_uri: str
    run_id: str | None = None  # the step's run, which fluent calls inside it log to
    # parameter -> the materializers of the step that stored it (its own custom ones)
    input_materializers: dict[str, tuple[materializers.Materializer, ...]] = field(
        default_factory=dict
    )


@dataclass
class Outcome:
    """What one attempt produced: stored outputs, or the error; and what it printed."""

    node: str
    outputs: list[Stored] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # the traceback
    error_line: str = ""  # "ValueError: bad row"
    retryable: bool = False
    seconds: float = 0.0
    logged: Logged = field(default_factory=Logged)  # what the step logged while it ran

    @property
    def ok(self) -> bool:
        """Return True if the step returned and every output was stored."""
        return self.error is None


def run_task(task: StepTask, values: tuple[Any, ...] = ()) -> tuple[Outcome, list[Any]]:
    """Run one attempt; return its outcome and the output values (empty on failure)."""
    started = time.perf_counter()
    outcome = Outcome(task.node)
    out, err = io.StringIO(), io.StringIO()
    result_values: list[Any] = []
    try:
        blobs = ContentStore(storage_from_uri(task.blob_uri))
        step = task.step
        kwargs = dict(task.params)
        for parameter, stored in task.stored_inputs.items():
            custom = task.input_materializers.get(parameter, ())
            kwargs[parameter] = load(blobs, stored, (*custom, *step.options.materializers))
        for parameter, index in task.passed_inputs.items():
            kwargs[parameter] = values[index]
        log = StepLog(task.node, task.run_id)
        outcome.logged = log.logged
        token = current_run.set(log)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                returned = step.fn(**kwargs)
        finally:
            current_run.reset(token)
        result_values = split_outputs(task.node, step, returned)
        outcome.outputs = [
            store(blobs, task.node, o.name, v, step.options.materializers)
            for o, v in zip(step.outputs, result_values, strict=True)
        ]
        outcome.metrics = metrics_of(result_values)
    # Every failure is the step's outcome, a KeyboardInterrupt the step raised itself too (the
    # worker ignores Ctrl-C; the driver stops runs).
    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001
        outcome.error = "".join(traceback.format_exception(exc))
        outcome.error_line = "".join(traceback.format_exception_only(exc)).strip()
        outcome.retryable = isinstance(exc, task.step.options.retry_on) and not isinstance(
            exc, InvalidInput
        )
        result_values = []
    outcome.stdout = out.getvalue()[-MAX_LOG:]
    outcome.stderr = err.getvalue()[-MAX_LOG:]
    outcome.seconds = time.perf_counter() - started
    return outcome, result_values


def split_outputs(node: str, step: Step[Any, Any], returned: Any) -> list[Any]:
    """Return the step's return value as one value per declared output."""
    outputs = step.outputs
    if not outputs:
        if returned is not None:
            raise InvalidInput(
                f"step {node!r} returned a {type(returned).__name__} but declares no outputs "
                "(its return annotation is None); annotate what it returns"
            )
        return []
    if len(outputs) == 1:
        values = [returned]
    elif not isinstance(returned, tuple | list) or len(returned) != len(outputs):
        got = (
            f"{len(returned)} values"
            if isinstance(returned, tuple | list)
            else f"one {type(returned).__name__}"
        )
        raise InvalidInput(
            f"step {node!r} declares {len(outputs)} outputs "
            f"({', '.join(o.name for o in outputs)}) but returned {got}"
        )
    else:
        values = list(returned)
    for output, value in zip(outputs, values, strict=True):
        if value is None and not output.optional:
            raise InvalidInput(
                f"step {node!r} returned None for output {output.name!r}, which its annotation "
                "says is never None; annotate it `X | None` to make it optional"
            )
    return values


def store(
    blobs: ContentStore,
    node: str,
    name: str,
    value: Any,
    custom: tuple[materializers.Materializer, ...],
) -> Stored:
    """Store one output value; return how it is stored."""
    type_name = f"{type(value).__module__}.{type(value).__qualname__}"
    if value is None:
        return Stored(None, "none", type_name, 0)
    try:
        materializer, data = materializers.dump(value, custom)
    except InvalidInput as exc:
        raise InvalidInput(f"step {node!r}, output {name!r}: {exc}") from exc
    blob = blobs.put_bytes(data)
    return Stored(blob.digest, materializer, type_name, blob.size)


def load(
    blobs: ContentStore, stored: Stored, custom: tuple[materializers.Materializer, ...]
) -> Any:
    """Return the value of a stored output, its bytes verified against the digest first."""
    if stored.digest is None:
        return None
    materializer = materializers.by_name(stored.materializer, custom)
    return materializer.load(blobs.read_bytes(stored.digest))


def metrics_of(values: list[Any]) -> dict[str, float]:
    """Return the numbers of outputs that are dicts of name -> number (an evaluation)."""
    found: dict[str, float] = {}
    for value in values:
        if (
            type(value) is dict
            and value
            and all(
                isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
                for k, v in value.items()
            )
        ):
            found.update({k: float(v) for k, v in value.items()})
    return found


_loaded: dict[str, str] = {}  # module name -> digest of the source this worker imported


def import_modules(modules: Mapping[str, tuple[str, str]]) -> None:
    """Import the user's modules by file, under the names the driver knew them by.

    `modules` maps a name to (file, digest of its source), helpers before the modules that
    import them. A worker outlives one run, so a module whose file changed since this worker
    imported it is imported again, and so is every module after it (they hold what they
    imported from it). A file that no longer has the digest the driver saw was edited while
    the run went on: the attempt fails rather than run code its cache key does not describe.
    """
    again = False
    for name, (file, digest) in modules.items():
        path = Path(file)
        if (_loaded.get(name) == digest and not again) or not path.is_file():
            continue
        if name in sys.modules and name not in _loaded and name != "__main__":
            _loaded[name] = digest  # imported the ordinary way, as the driver did
            continue
        # The folder that holds the top-level package, after the installed libraries: a
        # module `pkg/yaml.py` must not hide the `yaml` library from everything else.
        depth = name.count(".") + (path.name == "__init__.py")
        root = str(path.parents[depth])
        if root not in sys.path:
            sys.path.append(root)
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        previous = sys.modules.get(name)
        sys.modules[name] = module
        try:
            exec_file(module, path, digest)
        except BaseException:
            if previous is None:
                del sys.modules[name]
            else:
                sys.modules[name] = previous
            raise
        _loaded[name] = digest
        again = True


def exec_file(module: Any, path: Path, digest: str | None = None) -> None:
    """Run the source file `path` as `module`, always from its text.

    Not through the bytecode cache: a file rewritten within the same second at the same size
    keeps a stale `.pyc`, and the code that runs must be the code the cache key was made from.
    With `digest`, refuse a file whose bytes no longer have it.
    """
    data = path.read_bytes()
    if digest is not None and blake3(data).hexdigest() != digest:
        raise InvalidInput(
            f"{path} changed while the pipeline ran, so this step would run code its cache key "
            "does not describe; run the pipeline again"
        )
    code = compile(data, str(path), "exec", dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102 - the user's own pipeline module, as `import` would
