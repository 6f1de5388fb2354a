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

    def to_dict(self) -> dict[str, Any]:
        """Return the lineage tree as JSON-able data."""
        if self.step is None:
            return {"digest": self.digest, "dataset": self.dataset}
        return {
            "digest": self.digest,
            "step": self.step.node,
            "run_id": self.step.run_id,
            "pipeline_run_id": self.step.pipeline_run_id,
            "function": self.step.function,
            "code_digest": self.step.code_digest,
            "inputs": {name: origin.to_dict() for name, origin in self.inputs.items()},
        }

    def datasets(self) -> set[str]:
        """Return every dataset version this value was made from."""
        if self.step is None:
            return {self.dataset or self.digest}
        found: set[str] = set()
        for origin in self.inputs.values():
            found |= origin.datasets()
        return found


def trace(ws: Workspace, digest: str) -> Origin:
    """Return the origin of a stored step output, walked back to dataset versions."""
    return _trace(ws, digest, 0)


def _trace(ws: Workspace, digest: str, depth: int) -> Origin:
    if depth > MAX_DEPTH:
        raise InvalidInput(f"lineage of {digest} is deeper than {MAX_DEPTH} steps")
    producers = [p for p in records.producers_of(ws, digest) if p.status == "COMPLETED"]
    if not producers:
        raise NotFound(f"no pipeline step output {digest}; `loopml pipelines show RUN` lists them")
    step = producers[0]
    origin = Origin(digest, step)
    for value in step.inputs:
        if value.stored.materializer == "dataset":
            origin.inputs[value.name] = Origin(
                value.stored.digest or "", None, dataset=value.stored.type_name
            )
        elif value.stored.digest is not None:
            origin.inputs[value.name] = _trace(ws, value.stored.digest, depth + 1)
    return origin


def code_of(ws: Workspace, step: StepRecord) -> dict[str, str]:
    """Return the source texts a step run was made from, by `module:qualname`."""
    if step.code_digest is None:
        if step.cached_from:
            return code_of(ws, records.get_step(ws, step.cached_from))
        return {}
    data: dict[str, str] = json.loads(ws.blobs.read_bytes(step.code_digest))
    return data
