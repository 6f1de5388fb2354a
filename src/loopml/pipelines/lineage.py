"""Lineage: from a step output back through the steps and code that made it to the data."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, NotFound
from loopml.pipelines import records
from loopml.pipelines.records import StepRecord

MAX_DEPTH = 200


@dataclass
class Origin:
    """How a value was made: the step run that output it and, recursively, its inputs."""

    digest: str
    step: StepRecord | None  # None for a dataset version
    dataset: str | None = None  # "churn@v2" for a dataset input
    inputs: dict[str, Origin] = field(default_factory=dict)

    def to_dict(self, seen: set[str] | None = None) -> dict[str, Any]:
        """Return the lineage tree as JSON-able data; a value met again is not expanded again
        (`"repeated": true`), so a graph that reuses outputs stays as small as the graph."""
        seen = set() if seen is None else seen
        if self.step is None:
            return {"digest": self.digest, "dataset": self.dataset}
        head = {
            "digest": self.digest,
            "step": self.step.node,
            "run_id": self.step.run_id,
            "pipeline_run_id": self.step.pipeline_run_id,
            "function": self.step.function,
            "code_digest": self.step.code_digest,
        }
        if self.digest in seen:
            return head | {"repeated": True}
        seen.add(self.digest)
        return head | {
            "inputs": {name: origin.to_dict(seen) for name, origin in self.inputs.items()}
        }

    def datasets(self) -> set[str]:
        """Return every dataset version this value was made from."""
        found: set[str] = set()
        stack, seen = [self], set()
        while stack:
            origin = stack.pop()
            if origin.step is None:
                found.add(origin.dataset or origin.digest)
            elif origin.digest not in seen:
                seen.add(origin.digest)
                stack.extend(origin.inputs.values())
        return found


def trace(ws: Workspace, digest: str) -> Origin:
    """Return the origin of a stored step output, walked back to dataset versions.

    Each value is looked up once: an output several steps read is one shared Origin.
    """
    return _trace(ws, digest, 0, {})


def _trace(ws: Workspace, digest: str, depth: int, memo: dict[str, Origin]) -> Origin:
    if digest in memo:
        return memo[digest]
    if depth > MAX_DEPTH:
        raise InvalidInput(f"lineage of {digest} is deeper than {MAX_DEPTH} steps")
    producers = [p for p in records.producers_of(ws, digest) if p.status == "COMPLETED"]
    if not producers:
        raise NotFound(f"no pipeline step output {digest}; `loopml pipelines show RUN` lists them")
    step = producers[0]
    origin = memo[digest] = Origin(digest, step)
    for value in step.inputs:
        if value.stored.materializer == "dataset":
            origin.inputs[value.name] = Origin(
                value.stored.digest or "", None, dataset=value.stored.type_name
            )
        elif value.stored.digest is not None:
            origin.inputs[value.name] = _trace(ws, value.stored.digest, depth + 1, memo)
    return origin


def resolve_output(ws: Workspace, ref: str) -> str:
    """Return the digest `ref` names: a digest itself, or `STEP_RUN[:OUTPUT]`."""
    from loopml.tracking import runs

    if ref.startswith("blake3:"):
        return ref
    run_ref, _, name = ref.partition(":")
    run_id = runs.resolve_id(ws, run_ref)
    record = runs.get(ws, run_id)
    if record.tags.get("loopml.run_type") == "pipeline":
        steps = ", ".join(f"{s.node} {s.run_id[:8]}" for s in records.steps_of(ws, run_id))
        raise InvalidInput(f"run {run_id} is a pipeline run; give one of its step runs ({steps})")
    step = records.get_step(ws, run_id)
    outputs = {v.name: v.stored.digest for v in step.outputs}
    if not name:
        if len(outputs) != 1:
            raise InvalidInput(
                f"step {step.node!r} ({run_id[:8]}) has outputs {', '.join(outputs) or 'none'}; "
                f"name one: {run_id[:8]}:OUTPUT"
            )
        name = next(iter(outputs))
    if name not in outputs:
        raise InvalidInput(
            f"step {step.node!r} has no output {name!r}; its outputs are "
            f"{', '.join(outputs) or 'none'}"
        )
    digest = outputs[name]
    if digest is None:
        raise InvalidInput(f"output {name!r} of step {step.node!r} was None; it has no lineage")
    return digest


def code_of(ws: Workspace, step: StepRecord) -> dict[str, str]:
    """Return the source texts a step run was made from, by `module:qualname`."""
    if step.code_digest is None:
        if step.cached_from:
            return code_of(ws, records.get_step(ws, step.cached_from))
        return {}
    data: dict[str, str] = json.loads(ws.blobs.read_bytes(step.code_digest))
    return data
