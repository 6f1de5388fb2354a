"""A small world for loop tests: versioned data, a training pipeline, a gate and a champion.

`world(ws)` writes into a workspace the breast-cancer data as dataset `bc` (training rows) and
`bc-test` (held-out rows), a pipeline file whose `quality` param can spoil the model, a gate
file (f1 >= 0.8 and at least the champion's f1) and registers version 1 of model `bc` as its
champion. `policy(ws, ...)` writes a policy file and applies it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import loopml
from loopml.automation import loops
from loopml.automation import policy as policies
from loopml.core.workspace import Workspace

TARGET = "target"
PIPELINE = '''
"""Training pipeline of the loop tests: split off nothing, fit, report f1."""

from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml import Dataset, pipeline, step


@step
def prepare(data: Dataset, marker: str = "") -> pd.DataFrame:
    """Read the rows (and note each real execution in `marker`, when given)."""
    if marker:
        with open(marker, "a", encoding="utf-8") as out:
            out.write("prepare\\n")
    return data.to_pandas()


@step
def train(
    rows: pd.DataFrame, quality: str = "good", pause: float = 0.0, marker: str = "", run: int = 0
):
    """Fit a scaled logistic regression; quality=bad fits it on shuffled labels (`run` only
    changes the step's cache key, so a test can make it train again)."""
    import time

    if marker:
        with open(marker, "a", encoding="utf-8") as out:
            out.write("train\\n")
    time.sleep(pause)
    x, y = rows.drop(columns="target"), rows["target"]
    if quality == "bad":
        y = y.sample(frac=1.0, random_state=0).to_numpy()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


@pipeline
def bc(
    data: str = "bc@latest",
    quality: str = "good",
    pause: float = 0.0,
    marker: str = "",
    run: int = 0,
):
    """Prepare the rows and train one model."""
    rows = prepare(data, marker=marker)
    train(rows, quality=quality, pause=pause, marker=marker, run=run)
'''
GATE = {
    "target": TARGET,
    "checks": [
        {"threshold": {"metric": "f1", "min": 0.8}},
        {"beats_champion": {"metric": "f1", "min_delta": -0.02}},
    ],
}


@dataclass(frozen=True)
class World:
    """What `world` made: the workspace and the frames behind its datasets."""

    ws: Workspace
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def features(self) -> pd.DataFrame:
        """Return the held-out rows without their label."""
        return self.test.drop(columns=TARGET)


def files(ws: Workspace) -> World:
    """Write what a policy names into `ws`: datasets bc (training rows) and bc-test (held-out
    rows), pipeline.py and gate.yaml; no model yet."""
    frame = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame[TARGET])
    add_version(ws, "bc", train)
    add_version(ws, "bc-test", test)
    (ws.root / "pipeline.py").write_text(PIPELINE, encoding="utf-8")
    (ws.root / "gate.yaml").write_text(yaml.safe_dump(GATE), encoding="utf-8")
    return World(ws, train, test)


def world(ws: Workspace) -> World:
    """Write `files` into `ws`, and make version 1 of `bc` its champion: the model the
    pipeline's `train` step fits, fitted here (no pipeline run, so a loop's first run finds
    nothing in the cache)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    made = files(ws)
    features = made.train.drop(columns=TARGET)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    loopml.log_model(
        model.fit(features, made.train[TARGET]), name="bc", input_example=features.head(5)
    )
    loopml.promote("bc", 1, gate=ws.root / "gate.yaml", data="bc-test@v1")
    return made


def add_version(ws: Workspace, name: str, frame: pd.DataFrame) -> str:
    """Add `frame` as the next version of dataset `name`; return its reference."""
    folder = ws.root / "data"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return loopml.data.add(path, name).ref


def shifted(frame: pd.DataFrame, factor: float = 1.3) -> pd.DataFrame:
    """Return `frame` with every feature scaled by `factor` (a recalibrated instrument)."""
    out = frame.copy()
    columns = [c for c in out.columns if c != TARGET]
    out[columns] = out[columns] * factor
    return out


def apply_policy(
    ws: Workspace, name: str = "bc-retrain", **changes: Any
) -> tuple[policies.Policy, str]:
    """Write policy `name` (the defaults below, updated by `changes`; None removes a key)
    to NAME.yaml in the workspace and apply it; return it and what applying did."""
    spec: dict[str, Any] = {
        "name": name,
        "pipeline": "pipeline.py:bc",
        "params": {"data": "bc@latest"},
        "triggers": ["manual"],
        "register_as": "bc",
        "evaluation": {"data": "bc-test@latest", "target": TARGET},
        "gate": "gate.yaml",
        "cooldown": "1h",
    }
    spec.update(changes)
    spec = {k: v for k, v in spec.items() if v is not None}
    path = Path(ws.root) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return policies.apply(ws, policies.load(path))


def policy(ws: Workspace, name: str = "bc-retrain", **changes: Any) -> policies.Policy:
    """Apply policy `name` as `apply_policy` does; return it."""
    return apply_policy(ws, name, **changes)[0]


class Killed(BaseException):
    """Stands for the controller's process dying at that moment: nothing catches it."""


def kill_at(monkeypatch: pytest.MonkeyPatch, step: str) -> Callable[[], None]:
    """Make a loop's next move to `step` die like a killed process (after that step's work,
    before it is recorded); return what undoes it, for the next controller."""
    real = loops.move

    def move(*args: Any, step: str, **kwargs: Any) -> Any:
        if step == target:
            raise Killed
        return real(*args, step=step, **kwargs)

    target = step
    monkeypatch.setattr(loops, "move", move)
    return lambda: monkeypatch.setattr(loops, "move", real)
