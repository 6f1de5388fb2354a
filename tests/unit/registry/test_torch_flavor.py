"""The torch flavors: a module round trips as state dict and class, or as TorchScript."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import loopml
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput
from loopml.registry import flavors

X = np.random.default_rng(0).random((6, 3))


class Scorer(nn.Module):
    """A small net with dropout (so eval mode shows), a tied layer and a non-persistent buffer."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.encode = nn.Linear(3, width)
        self.drop = nn.Dropout(0.5)
        self.again = self.encode  # the same layer twice: its weights must stay one tensor
        self.head = nn.Linear(width, 1)
        self.register_buffer("scale", torch.tensor(2.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.relu(self.encode(x)))) * self.scale


class ScriptedScorer(nn.Module):
    """Compiled with torch.jit.script; a class of its own so no other test loads it first."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(x), dim=1)


class Variadic(nn.Module):
    """TorchScript cannot compile a forward that takes *args."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.linear(xs[0])


def expected(model: nn.Module, x: Any) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        out: np.ndarray = model(torch.as_tensor(x, dtype=torch.float32)).numpy()
    return out


def without_this_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make importing this test module fail, as it would where the model's code is absent."""
    monkeypatch.setitem(sys.modules, __name__, None)


def saved(flavor_name: str, model: nn.Module, folder: Path) -> dict[str, Any]:
    folder.mkdir()
    meta = flavors.by_name(flavor_name).save(model, folder)
    return dict(json.loads(json.dumps(meta)))  # as the manifest stores it


def test_a_module_is_detected_as_torch_before_pyfunc() -> None:
    assert flavors.detect(Scorer()).name == "torch"
    assert flavors.names()[:3] == ["torch", "torchscript", "onnx"]


def test_a_module_round_trips_as_state_dict_and_loads_without_its_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Scorer()
    meta = saved("torch", model, tmp_path / "saved")
    assert meta["format"] == "state_dict"
    assert meta["class"] == f"{__name__}.Scorer"
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [
        "module.pkl",
        "state_dict.pt",
    ]
    # The weights are plain tensors, readable without unpickling any code.
    weights = torch.load(tmp_path / "saved" / "state_dict.pt", weights_only=True)
    assert torch.equal(weights["encode.weight"], model.encode.weight)

    without_this_module(monkeypatch)
    flavor = flavors.by_name("torch")
    loaded = flavor.load(tmp_path / "saved", meta)

    assert not loaded.training
    assert loaded.again is loaded.encode
    assert isinstance(loaded.encode.weight, nn.Parameter)
    assert float(loaded.scale) == 2.0
    prediction = flavor.predict(loaded, X)
    assert isinstance(prediction, np.ndarray)
    np.testing.assert_allclose(prediction, expected(model, X), rtol=1e-6)


def test_a_state_dict_model_loads_in_a_process_that_cannot_import_its_class(
    tmp_path: Path,
) -> None:
    model = Scorer()
    meta = saved("torch", model, tmp_path / "saved")
    load = f"""
import json, sys
from pathlib import Path
import numpy as np
from loopml.registry import flavors
flavor = flavors.by_name("torch")
model = flavor.load(Path({str(tmp_path / "saved")!r}), json.loads({json.dumps(meta)!r}))
assert "tests" not in sys.modules, "the class was imported, not carried by value"
print(json.dumps(flavor.predict(model, np.array({X.tolist()!r})).tolist()))
"""
    done = subprocess.run(
        [sys.executable, "-c", load], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    np.testing.assert_allclose(json.loads(done.stdout), expected(model, X), rtol=1e-6)


def test_a_module_round_trips_as_torchscript_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = ScriptedScorer()
    meta = saved("torchscript", model, tmp_path / "saved")
    assert meta["format"] == "torchscript"
    assert meta["class"] == f"{__name__}.ScriptedScorer"
    assert [p.name for p in (tmp_path / "saved").iterdir()] == ["model.pt"]

    without_this_module(monkeypatch)
    loaded = flavors.by_name("torchscript").load(tmp_path / "saved", meta)

    assert isinstance(loaded, torch.jit.ScriptModule)
    prediction = flavors.by_name("torchscript").predict(loaded, X)
    np.testing.assert_allclose(prediction, expected(model, X), rtol=1e-6)


def test_a_script_module_is_saved_as_torchscript(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning):  # torch's own, on the user's call to script
        script = torch.jit.script(ScriptedScorer())
    flavor = flavors.detect(script)
    assert flavor.name == "torch"
    meta = saved("torch", script, tmp_path / "saved")
    assert meta["format"] == "torchscript"
    loaded = flavor.load(tmp_path / "saved", meta)
    np.testing.assert_allclose(flavor.predict(loaded, X), flavor.predict(script, X), rtol=1e-6)


def test_a_module_torchscript_cannot_compile_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"Variadic cannot be compiled to TorchScript.*'torch'"):
        saved("torchscript", Variadic(), tmp_path / "saved")


def test_predict_uses_eval_mode_and_leaves_a_training_module_training() -> None:
    model = Scorer()
    model.train()
    flavor = flavors.by_name("torch")
    first, second = flavor.predict(model, X), flavor.predict(model, X)
    np.testing.assert_array_equal(first, second)  # dropout is off
    assert model.training
    assert model.encode.weight.grad is None


def test_predict_takes_a_frame_of_ints_as_the_modules_float_dtype() -> None:
    model = Scorer().double()
    frame = pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    prediction = flavors.by_name("torch").predict(model, frame)
    assert prediction.dtype == np.float64
    assert prediction.shape == (2, 1)


def test_predict_refuses_text_naming_the_fix() -> None:
    frame = pd.DataFrame({"a": ["x", "y"], "b": [3, 4], "c": [5, 6]})
    with pytest.raises(InvalidInput, match="a torch model takes numbers"):
        flavors.by_name("torch").predict(Scorer(), frame)


def test_an_unknown_saved_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"format 'onnx' is unknown .* upgrade LoopML"):
        flavors.by_name("torch").load(tmp_path, {"format": "onnx"})


def test_requirements_pin_torch() -> None:
    assert f"torch=={metadata.version('torch')}" in flavors.by_name("torch").requirements()


def test_log_model_and_load_model_round_trip_with_the_signature(sqlite_ws: Workspace) -> None:
    model = Scorer()
    logged = loopml.log_model(model, name="scorer", input_example=X[:3])
    assert logged.package.flavor == "torch"
    assert logged.package.signature is not None
    assert logged.package.signature.inputs[0].shape == (None, 3)

    loaded = loopml.load_model("models:/scorer/1")

    np.testing.assert_allclose(loaded.predict(X), expected(model, X), rtol=1e-6)
    with pytest.raises(InvalidInput):
        loaded.predict(np.ones((2, 5)))  # five columns where the model takes three
