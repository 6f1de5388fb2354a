"""Pipelines: steps, graphs, caching, lineage, retries, sweeps, and local and Ray executors.

from loopml import step, pipeline, Dataset

@step
def double(x: int) -> int: ...

@pipeline
def p(x: int = 1):
    double(x)

p.run({"x": 3})
"""

from __future__ import annotations

from loopml.pipelines.graph import Pipeline, StepOutput, pipeline
from loopml.pipelines.materializers import Materializer
from loopml.pipelines.step import Step, step

__all__ = ["Materializer", "Pipeline", "Step", "StepOutput", "pipeline", "step"]
