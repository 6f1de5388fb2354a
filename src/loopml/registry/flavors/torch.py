"""PyTorch modules: as TorchScript, or as a state dict with the module's class pickled.

The `torch` flavor saves a ScriptModule as TorchScript and any other `nn.Module` as its
tensors (`state_dict.pt`, read back with `weights_only=True`) plus the module without its
tensors (`module.pkl`, cloudpickle: a class from the user's own code travels by value, so it
loads where that code is not importable). The `torchscript` flavor compiles a module with
`torch.jit.script` and saves that. torch is imported only when a model is saved, loaded or
predicts: `pip install 'loopml[torch]'`.
"""

from __future__ import annotations

import pickle
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

from loopml.errors import InvalidInput
from loopml.registry.flavors.base import class_path, first_line, pinned, user_code_by_value

SCRIPT_FILE = "model.pt"
MODULE_FILE = "module.pkl"
STATE_FILE = "state_dict.pt"
FORMATS = ("torchscript", "state_dict")
_T = TypeVar("_T")


class TorchFlavor:
    """`torch.nn.Module`: a ScriptModule as TorchScript, any other as state dict and class."""

    name = "torch"

    def handles(self, model: object) -> bool:
        torch = sys.modules.get("torch")  # no module exists before torch is imported
        return torch is not None and isinstance(model, torch.nn.Module)

    def save(self, model: Any, path: Path) -> dict[str, Any]:
        import torch

        if isinstance(model, torch.jit.ScriptModule):
            return _save_script(model, path)
        return _save_state(model, path)

    def load(self, path: Path, meta: Mapping[str, Any]) -> Any:
        import torch

        fmt = meta.get("format")
        if fmt == "torchscript":
            model = _quiet(torch.jit.load, str(path / SCRIPT_FILE), map_location="cpu")
        elif fmt == "state_dict":
            model = _load_state(path)
        else:
            raise InvalidInput(
                f"torch model format {fmt!r} is unknown to this LoopML, which reads "
                f"{', '.join(FORMATS)}; upgrade LoopML"
            )
        return model.eval()

    def predict(self, model: Any, data: Any) -> Any:
        import torch

        tensor = _input(model, data)
        training = model.training
        if training:  # a module logged mid-training: predict in eval mode, then restore it
            model.eval()
        try:
            with torch.no_grad():
                output = model(tensor)
        finally:
            if training:
                model.train()
        return _numpy(output)

    def requirements(self) -> list[str]:
        return pinned("torch", "cloudpickle")


class TorchScriptFlavor(TorchFlavor):
    """`torch.nn.Module` compiled with `torch.jit.script` (unless it is compiled already)."""

    name = "torchscript"

    def save(self, model: Any, path: Path) -> dict[str, Any]:
        import torch

        if isinstance(model, torch.jit.ScriptModule):
            return _save_script(model, path)
        try:
            script: Any = _quiet(torch.jit.script, model)
        except Exception as exc:  # TorchScript's compiler raises many kinds of errors
            raise InvalidInput(
                f"{class_path(model)} cannot be compiled to TorchScript "
                f"({first_line(exc)}); save it with flavor='torch' (state dict and class), "
                "or pass a traced module: torch.jit.trace(model, example)"
            ) from exc
        return {**_save_script(script, path), "class": class_path(model)}

    def requirements(self) -> list[str]:
        return pinned("torch")


def _save_script(model: Any, path: Path) -> dict[str, Any]:
    import torch

    _quiet(torch.jit.save, model, str(path / SCRIPT_FILE))
    return {"format": "torchscript", "class": class_path(model), "torch_version": torch.__version__}


def _save_state(model: Any, path: Path) -> dict[str, Any]:
    import torch

    tensors = _tensors(model)
    with user_code_by_value(), (path / MODULE_FILE).open("wb") as f:
        _module_pickler(f, tensors).dump(model)
    torch.save({key: tensor.detach() for key, tensor in tensors.values()}, path / STATE_FILE)
    return {"format": "state_dict", "class": class_path(model), "torch_version": torch.__version__}


def _load_state(path: Path) -> Any:
    import torch

    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    # Unpickled only after the caller verified the file against the package's digest.
    with (path / MODULE_FILE).open("rb") as f:
        return _ModuleUnpickler(f, state).load()


def _tensors(model: Any) -> dict[int, tuple[str, Any]]:
    """Return id -> (name, tensor) of every parameter and buffer of `model`; a tensor that is
    shared (tied weights) keeps its first name, so it is stored once and stays shared."""
    found: dict[int, tuple[str, Any]] = {}
    named = [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]
    for name, tensor in named:
        found.setdefault(id(tensor), (name, tensor))
    return found


def _module_pickler(file: IO[bytes], tensors: Mapping[int, tuple[str, Any]]) -> Any:
    """Return a cloudpickle pickler that writes the module's tensors as references to
    `state_dict.pt` instead of their bytes."""
    import cloudpickle
    import torch

    class ModulePickler(cloudpickle.CloudPickler):  # type: ignore[misc]
        def persistent_id(self, obj: Any) -> Any:
            if not isinstance(obj, torch.Tensor) or id(obj) not in tensors:
                return None
            name = tensors[id(obj)][0]
            if isinstance(obj, torch.nn.Parameter):
                return ("parameter", name, bool(obj.requires_grad))
            return ("buffer", name)

    return ModulePickler(file, protocol=5)


class _ModuleUnpickler(pickle.Unpickler):
    """Reads `module.pkl`, putting the tensors of `state_dict.pt` where they were."""

    def __init__(self, file: IO[bytes], state: Mapping[str, Any]) -> None:
        super().__init__(file)
        self._state = state
        self._made: dict[str, Any] = {}  # one object per name: tied weights stay tied

    def persistent_load(self, pid: Any) -> Any:
        import torch

        kind, name = pid[0], pid[1]
        if name not in self._made:
            tensor = self._state[name]
            if kind == "parameter":
                tensor = torch.nn.Parameter(tensor, requires_grad=pid[2])
            self._made[name] = tensor
        return self._made[name]


def _input(model: Any, data: Any) -> Any:
    """Return `data` as a tensor of the dtype and on the device of the module's first
    floating parameter (float32 on the CPU if it has none)."""
    import numpy as np
    import pandas as pd
    import torch

    if isinstance(data, torch.Tensor):
        return data
    array = data.to_numpy() if isinstance(data, pd.DataFrame | pd.Series) else np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise InvalidInput(
            f"a torch model takes numbers; the input holds {array.dtype} values: convert text "
            "and categories to numbers before predict, or wrap the model in a class with a "
            "predict(data) method that does (saved as pyfunc)"
        )
    first = next((p for p in model.parameters() if p.dtype.is_floating_point), None)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if first is None:
        return tensor.to(torch.float32)
    return tensor.to(device=first.device, dtype=first.dtype)


def _numpy(output: Any) -> Any:
    """Return the module's output as a NumPy array: a tensor, or a tuple's first tensor."""
    import torch

    if isinstance(output, tuple | list) and output:
        return _numpy(output[0])
    if not isinstance(output, torch.Tensor):
        raise InvalidInput(
            f"the torch model returned a {type(output).__name__}; LoopML predicts with modules "
            "whose forward returns a tensor (or a tuple whose first item is one)"
        )
    if output.dtype == torch.bfloat16:  # NumPy has no bfloat16
        output = output.float()
    return output.detach().cpu().numpy()


def _quiet(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Return `call(*args, **kwargs)` without torch.jit's deprecation warnings: the user chose
    TorchScript, which this torch still reads and writes."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
        )
        return call(*args, **kwargs)
