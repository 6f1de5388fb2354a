"""Code fingerprints: a step's digest follows its own code and the local code it reaches.

Each test writes a small project into a fresh folder and imports it as a new process would,
then writes the edited project into another folder under the same module names and imports
that: the two fingerprints are those of the code before and after the edit.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from loopml.pipelines.fingerprint import CodeFingerprint, fingerprint

FLOW = "fp_flow"
FEATURES = "fp_features"

FILES = {
    FLOW: f"""
        import json
        import os

        import numpy as np
        from sklearn.linear_model import LogisticRegression

        import {FEATURES}
        from loopml import step

        SEED = 42
        CONFIG = {{"lr": 0.1, "layers": [64, 32]}}


        def scale(x):
            return x * 2


        def prepare(x):
            return scale(x) + SEED


        class Model:
            def fit(self, x):
                return x + CONFIG["lr"]


        @step
        def train(x: int) -> float:
            return Model().fit(prepare(x))


        @step
        def featurize(x: int) -> int:
            return {FEATURES}.clean(x)


        @step
        def fit_model(x: int) -> object:
            return LogisticRegression()


        @step
        def summarize(x: int) -> str:
            import pandas

            return json.dumps(float(np.mean([x]))) + os.sep + pandas.__name__


        def unrelated():
            return "not called by any step"
        """,
    FEATURES: """
        def clean(x):
            return x - 1
        """,
}


class Project:
    """Writes versions of a project into fresh folders and imports them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._numbers = itertools.count(1)

    def load(self, edits: dict[str, tuple[str, str]] | None = None) -> ModuleType:
        """Import a version of FILES with `edits` (module -> (old text, new text)) made."""
        folder = self.root / f"v{next(self._numbers)}"
        folder.mkdir()
        for module, template in FILES.items():
            text = textwrap.dedent(template)
            if edits and module in edits:
                old, new = edits[module]
                assert old in text, old
                text = text.replace(old, new)
            (folder / f"{module}.py").write_text(text)
        for module in FILES:
            sys.modules.pop(module, None)
        sys.path.insert(0, str(folder))
        try:
            return importlib.import_module(FLOW)
        finally:
            sys.path.remove(str(folder))

    def fingerprints(self, step: str, edits: dict[str, tuple[str, str]]) -> tuple[Any, Any]:
        """Return the fingerprint of `step` before and after the edits."""
        before = fingerprint(getattr(self.load(), step))
        after = fingerprint(getattr(self.load(edits), step))
        return before, after


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    yield Project(tmp_path)
    for module in FILES:
        sys.modules.pop(module, None)


def test_the_same_code_has_the_same_fingerprint(project: Project):
    before, after = project.fingerprints("train", {})
    assert before.digest == after.digest
    assert before.digest.startswith("blake3:")
    assert set(before.sources) == {
        f"{FLOW}:train",
        f"{FLOW}:prepare",
        f"{FLOW}:scale",
        f"{FLOW}:Model",
        f"{FLOW}:Model.fit",
    }


@pytest.mark.parametrize(
    ("step", "module", "old", "new"),
    [
        ("train", FLOW, "return Model().fit(prepare(x))", "return Model().fit(prepare(x)) + 1"),
        ("train", FLOW, "return x * 2", "return x * 3"),  # a helper of a helper
        ("train", FLOW, "SEED = 42", "SEED = 7"),
        ("train", FLOW, '"lr": 0.1', '"lr": 0.2'),  # a constant dict
        ("train", FLOW, "[64, 32]", "[64, 16]"),  # a list inside it
        ("train", FLOW, 'x + CONFIG["lr"]', 'x - CONFIG["lr"]'),  # a method of a local class
        ("featurize", FEATURES, "return x - 1", "return x - 2"),  # a local module
    ],
    ids=["step", "helper-of-helper", "constant", "dict-constant", "nested", "class", "module"],
)
def test_the_fingerprint_changes_with_the_code_the_step_reaches(
    project: Project, step: str, module: str, old: str, new: str
):
    before, after = project.fingerprints(step, {module: (old, new)})
    assert before.digest != after.digest


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        (FLOW, 'return "not called by any step"', 'return "edited"'),
        (FLOW, "return LogisticRegression()", "return LogisticRegression(C=2.0)"),
        (FLOW, "def scale(x):", "# lines above move down\n\n\ndef scale(x):"),
        (FEATURES, "return x - 1", "return x - 2"),  # train does not use the module
    ],
    ids=["function", "other-step", "comment", "other-module"],
)
def test_the_fingerprint_ignores_code_the_step_does_not_reach(
    project: Project, module: str, old: str, new: str
):
    before, after = project.fingerprints("train", {module: (old, new)})
    assert before.digest == after.digest


def versions(*distributions: str) -> dict[str, str]:
    return {d: importlib.metadata.version(d) for d in distributions}


def test_libraries_name_the_installed_distributions_a_step_reaches(project: Project):
    flow = project.load()
    assert fingerprint(flow.train).libraries == {}
    assert fingerprint(flow.featurize).libraries == {}
    # through a class imported from a package: the distribution's name, not the import's
    assert fingerprint(flow.fit_model).libraries == versions("scikit-learn")
    # through a module (np), and an import inside the function body; never json or os
    assert fingerprint(flow.summarize).libraries == versions("numpy", "pandas")


def test_a_step_and_its_function_have_one_fingerprint(project: Project):
    flow = project.load()
    step_print: CodeFingerprint = fingerprint(flow.train)
    assert fingerprint(flow.train.fn) == step_print


def test_a_closure_variable_is_part_of_the_fingerprint():
    def make(threshold: float) -> Callable[[float], bool]:
        def above(x: float) -> bool:
            return x > threshold

        return above

    assert fingerprint(make(0.5)).digest == fingerprint(make(0.5)).digest
    assert fingerprint(make(0.5)).digest != fingerprint(make(0.7)).digest


# ---- what a step reaches beyond plain globals: each edit must change the key --------------
REACH = """
    import functools
    from statistics import mean as agg

    import {pkg}.sub
    import {features}

    K = 3
    D = 5


    def helper_default(x, k=D):
        return x * k


    def traced(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return func(*args, **kwargs) + 100

        return wrapper


    @traced
    def decorated(x):
        return x


    class Scale:
        factor = K

        def __init__(self, n):
            self.n = n

        @property
        def double(self):
            return self.n * 2

        def apply(self, x):
            return x * self.n


    SCALE = Scale(2)


    def step_function(x):
        parts = [helper_default(x), decorated(x), SCALE.apply(x), Scale.factor, SCALE.double]
        return agg(parts) + {pkg}.sub.f() + {features}.clean(x)
"""


REACH_MODULES = ("reach_flow", "reach_pkg", "reach_pkg.sub", "reach_features", "reach_helpers")


def reach(folder: Path, edit: tuple[str, str, str] | None = None) -> Any:
    """Import a fresh copy of REACH, its package and its modules, with one edit made, under
    the same module names every time (as a new process would)."""
    files = {
        "flow": textwrap.dedent(REACH.format(pkg="reach_pkg", features="reach_features")),
        "sub": "def f():\n    return 1\n",
        "features": "from reach_helpers import g\n\n\ndef clean(x):\n    return g(x)\n",
        "helpers": "def g(x):\n    return x + 1\n",
    }
    if edit is not None:
        file, old, new = edit
        assert old in files[file], old
        files[file] = files[file].replace(old, new)
    (folder / "reach_pkg").mkdir(parents=True)
    (folder / "reach_pkg" / "__init__.py").write_text("")
    (folder / "reach_pkg" / "sub.py").write_text(files["sub"])
    (folder / "reach_features.py").write_text(files["features"])
    (folder / "reach_helpers.py").write_text(files["helpers"])
    (folder / "reach_flow.py").write_text(files["flow"])
    for name in REACH_MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("reach_flow").step_function
    finally:
        sys.path.remove(str(folder))


@pytest.fixture
def reach_modules() -> Iterator[None]:
    yield
    for name in REACH_MODULES:
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "edit",
    [
        ("flow", "from statistics import mean as agg", "from statistics import median as agg"),
        ("flow", "D = 5", "D = 6"),  # a default value of a helper
        ("flow", "kwargs) + 100", "kwargs) + 200"),  # the decorator's wrapper
        ("flow", "SCALE = Scale(2)", "SCALE = Scale(3)"),  # an instance's state
        ("flow", "return self.n * 2", "return self.n * 3"),  # a property's body
        ("flow", "K = 3", "K = 4"),  # a class attribute's value
        ("sub", "return 1", "return 2"),  # `import pkg.sub; pkg.sub.f()`
        ("helpers", "x + 1", "x + 2"),  # what a local module's function calls
    ],
    ids=[
        "aliased-function",
        "default",
        "decorator",
        "instance",
        "property",
        "class-attribute",
        "package-submodule",
        "module-import",
    ],
)
def test_the_fingerprint_follows_what_the_code_reaches(
    tmp_path: Path, reach_modules: None, edit: tuple[str, str, str]
):
    before = fingerprint(reach(tmp_path / "before"))
    after = fingerprint(reach(tmp_path / "after", edit))
    assert before.digest != after.digest


def test_the_same_reach_has_the_same_fingerprint(tmp_path: Path, reach_modules: None):
    one = fingerprint(reach(tmp_path / "one"))
    assert fingerprint(reach(tmp_path / "two")).digest == one.digest
