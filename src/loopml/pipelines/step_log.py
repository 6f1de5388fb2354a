"""What a step logs while it runs: `loopml.log_metric(...)` inside a step.

In a worker, the current run is a `StepLog`: it keeps what the step logs (metrics with their
steps and times, params, tags, text and dict artifacts, dataset inputs) and the driver writes it
to the step's run when the attempt ends. Workers never open the metadata store, so this works
the same on a Ray cluster whose machines cannot reach it.
"""

from __future__ import annotations

import json
import math
import operator
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import InvalidInput, InvalidState
from loopml.tracking.current import check_key

MAX_POINTS = 1_000_000  # metric points kept per attempt; a step logging more keeps the last


@dataclass
class Logged:
    """Everything a step attempt logged, to be written to its run."""

    points: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, step, ms
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # artifact path -> text
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (dataset ref, context)

    def latest(self) -> dict[str, float]:
        """Return the last value logged for each metric."""
        return {key: value for key, value, _, _ in self.points}


class StepLog:
    """The current run inside a step: fluent calls (`loopml.log_metric`) land here."""

    def __init__(self, node: str, run_id: str | None) -> None:
        self.name = node
        self.id = run_id or ""
        self.logged = Logged()
        self.ended = False

    def log_metric(
        self, key: str, value: float, step: int = 0, timestamp: int | None = None
    ) -> None:
        """Record one metric value for the step's run."""
        check_key(key, "metric")
        if isinstance(value, str | bytes | bool) or value is None:
            raise InvalidInput(f"metric {key!r} must be a number, not {value!r}")
        try:
            number = float(value)
            step = operator.index(step)
            ms = time.time_ns() // 1_000_000 if timestamp is None else operator.index(timestamp)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"metric {key!r}: {exc}") from exc
        self.logged.points.append((key, number, step, ms))
        if len(self.logged.points) > MAX_POINTS:
            del self.logged.points[: len(self.logged.points) - MAX_POINTS]

    def log_metrics(
        self, metrics: Mapping[str, float], step: int = 0, timestamp: int | None = None
    ) -> None:
        """Record several metric values at one step."""
        for key, value in metrics.items():
            self.log_metric(key, value, step, timestamp)

    def log_param(self, key: str, value: Any) -> None:
        """Record a param of the step's run."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record params of the step's run."""
        for key in params:
            check_key(key, "param")
        self.logged.params.update(params)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag of the step's run."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags of the step's run."""
        for key in tags:
            check_key(key, "tag")
        self.logged.tags.update(tags)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store text as an artifact of the step's run."""
        if not isinstance(text, str):
            raise InvalidInput(f"log_text takes a str, not {type(text).__name__}")
        self.logged.texts[artifact_file] = text

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Store a dict as a JSON artifact of the step's run."""
        try:
            text = json.dumps(obj, indent=2, default=_jsonable)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"log_dict: {exc}") from exc
        self.logged.texts[artifact_file] = text

    def log_input(self, dataset: Any, context: str = "") -> Any:
        """Record that the step read a dataset version (a ref like 'churn@v2' or a version)."""
        ref = dataset if isinstance(dataset, str) else getattr(dataset, "ref", None)
        if not isinstance(ref, str):
            raise InvalidInput(f"log_input takes a ref like 'churn@v2', not {dataset!r}")
        self.logged.inputs.append((ref, context))
        return dataset

    def log_artifact(self, *args: Any, **kwargs: Any) -> Any:
        """Refuse: files a step makes are its outputs."""
        raise InvalidState(
            f"inside step {self.name!r}, return what you made as an output (it is stored and "
            "versioned), or log its text with loopml.log_text / loopml.log_dict"
        )

    def end(self, *args: Any, **kwargs: Any) -> None:
        """Refuse: the driver ends the step's run."""
        raise InvalidState(f"step {self.name!r}'s run ends when the step returns")

    def metric_history(self, key: str) -> list[Any]:
        """Return nothing: the history is written when the step ends."""
        return []


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        item = value.item()
        return None if isinstance(item, float) and not math.isfinite(item) else item
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")
