"""The local executor gives each GPU step its own devices through CUDA_VISIBLE_DEVICES.

No GPU is needed: the executor takes the machine's GPUs from CUDA_VISIBLE_DEVICES, and the
steps report what their worker was given.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.core.workspace import Workspace
from loopml.pipelines.executors.local import LocalExecutor
from loopml.pipelines.runner import run_pipeline
from tests.contract import pipelines_steps as flows


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")


def test_two_gpu_steps_running_together_get_different_devices(
    sqlite_ws: Workspace, tmp_path: Path, two_gpus: None
):
    result = run_pipeline(
        flows.gpu_pair, {"barrier": str(tmp_path)}, executor=LocalExecutor(cpus=2), cache=False
    )

    given = {result.output("gpu_left"), result.output("gpu_right")}
    assert given == {"3", "5"}


def test_whole_fractional_and_cpu_steps_see_what_they_asked_for(
    sqlite_ws: Workspace, tmp_path: Path, two_gpus: None
):
    result = run_pipeline(
        flows.gpu_kinds, {"barrier": str(tmp_path)}, executor=LocalExecutor(cpus=2), cache=False
    )

    assert result.output("gpu_both") == "3,5"
    assert result.output("gpu_half") in ("3", "5")
    assert result.output("cpu_only") == "3,5"  # a step asking for no GPU is left as it was


def test_hidden_devices_count_as_none(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert LocalExecutor(cpus=1).start().gpu == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,-1,2")
    assert LocalExecutor(cpus=1).devices == ["0", "1"]
