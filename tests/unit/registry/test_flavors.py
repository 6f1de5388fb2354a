"""Flavors: which one a model gets, and each one's save and load round trip."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml.errors import InvalidInput, NotFound
from loopml.registry import flavors

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
Y = np.array([0, 1, 0, 1])


class MeanEstimator:
    """A custom estimator written to scikit-learn's API, without scikit-learn."""

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"shift": self.shift}

    def fit(self, x: Any, y: Any) -> MeanEstimator:
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, x: Any) -> Any:
        return np.full(len(x), self.mean_ + self.shift)


class Doubler:
    """A pyfunc model: anything with predict."""

    def predict(self, data: Any) -> Any:
        return [2 * v for v in data]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (LogisticRegression().fit(X, Y), "sklearn"),
        (make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y), "sklearn"),
        (MeanEstimator().fit(X, Y), "sklearn"),
        (Doubler(), "pyfunc"),
    ],
)
def test_detect_picks_the_flavor_by_what_the_model_can_do(model: object, expected: str) -> None:
    assert flavors.detect(model).name == expected


@pytest.mark.parametrize("model", [42, len, lambda x: x])
def test_an_unsupported_object_is_refused_with_the_fix(model: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        flavors.detect(model)
    message = str(caught.value)
    assert type(model).__qualname__ in message
    assert "predict(data)" in message
    assert "flavor=" in message


def test_a_class_instead_of_a_fitted_model_is_refused() -> None:
    with pytest.raises(InvalidInput, match="LogisticRegression is a class, not a model"):
        flavors.detect(LogisticRegression)


def test_an_unknown_flavor_name_lists_the_flavors() -> None:
    with pytest.raises(NotFound, match=r"'tensorflow'; flavors are .*sklearn.*pyfunc"):
        flavors.by_name("tensorflow")


def _boosted_models(library: str) -> list[Any]:
    """Return a fitted scikit-learn-API model and a bare Booster of `library`."""
    x = np.random.default_rng(0).random((60, 3))
    y = (x[:, 0] > 0.5).astype(int)
    if library == "xgboost":
        import xgboost

        return [
            xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y),
            xgboost.train({"max_depth": 2}, xgboost.DMatrix(x, label=y), num_boost_round=5),
        ]
    import lightgbm

    wrapper = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
    return [wrapper, wrapper.booster_]


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosted_models_round_trip_or_say_how_to_install_the_library(
    library: str, tmp_path: Path
) -> None:
    if find_spec(library) is None:
        with pytest.raises(InvalidInput, match=rf"pip install 'loopml\[{library}\]'"):
            flavors.by_name(library)
        return
    x = np.random.default_rng(1).random((8, 3))
    for i, model in enumerate(_boosted_models(library)):
        flavor = flavors.detect(model)
        assert flavor.name == library  # before sklearn, whose shape the wrappers also have
        folder = tmp_path / str(i)
        folder.mkdir()
        meta = json.loads(json.dumps(flavor.save(model, folder)))
        loaded = flavors.by_name(library).load(folder, meta)
        np.testing.assert_allclose(flavor.predict(loaded, x), flavor.predict(model, x))
        assert flavor.requirements()[0].split("==")[0] in (library, f"{library}-cpu")


def test_sklearn_round_trip_keeps_predictions_and_records_the_estimator(tmp_path: Path) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    flavor = flavors.by_name("sklearn")
    meta = flavor.save(model, tmp_path)
    loaded = flavor.load(tmp_path, meta)
    np.testing.assert_array_equal(flavor.predict(loaded, X), model.predict(X))
    assert meta == {
        "class": "sklearn.pipeline.Pipeline",
        "sklearn_version": metadata.version("scikit-learn"),
    }
    assert json.loads(json.dumps(meta)) == meta
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in flavor.requirements()


def test_pyfunc_loads_without_the_users_module(tmp_path: Path) -> None:
    """A class from the user's own source file loads where that file cannot be imported."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "usermodels.py").write_text(
        textwrap.dedent(
            """
            OFFSET = 10

            def shift(v):
                return v + OFFSET

            class Shifter:
                def predict(self, data):
                    return [shift(v) for v in data]
            """
        )
    )
    saved = tmp_path / "saved"
    saved.mkdir()
    save = f"""
import json, sys
sys.path.insert(0, {str(code)!r})
from pathlib import Path
from usermodels import Shifter
from loopml.registry import flavors
flavor = flavors.detect(Shifter())
meta = flavor.save(Shifter(), Path({str(saved)!r}))
print(json.dumps([flavor.name, meta]))
"""
    done = subprocess.run(
        [sys.executable, "-c", save], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    name, meta = json.loads(done.stdout)
    assert name == "pyfunc"
    assert meta == {"class": "usermodels.Shifter"}
    load = f"""
import sys
from pathlib import Path
from loopml.registry import flavors
flavor = flavors.by_name("pyfunc")
model = flavor.load(Path({str(saved)!r}), {{}})
assert "usermodels" not in sys.modules
print(flavor.predict(model, [1, 2]))
"""
    done = subprocess.run(
        [sys.executable, "-c", load], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.strip() == "[11, 12]"


def test_pyfunc_requirements_pin_cloudpickle() -> None:
    assert flavors.by_name("pyfunc").requirements() == [
        f"cloudpickle=={metadata.version('cloudpickle')}"
    ]
