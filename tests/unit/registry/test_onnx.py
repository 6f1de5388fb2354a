"""ONNX: the onnx flavor, scikit-learn models exported with onnx=True, and runtime="onnx"."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import loopml
from loopml.core.workspace import Workspace
from loopml.errors import IntegrityError, InvalidInput
from loopml.registry import flavors

RNG = np.random.default_rng(0)
FRAME = pd.DataFrame({"age": RNG.random(60) * 50, "visits": RNG.integers(0, 10, 60)})
LABELS = ((FRAME["age"] > 25) ^ (FRAME["visits"] > 6)).astype(int)
WEIGHTS = np.array([[1.5], [-2.0]], dtype=np.float32)


def affine() -> onnx.ModelProto:
    """Return an ONNX model computing x @ WEIGHTS + 0.5 for x of shape [rows, 2]."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, [2, 1], WEIGHTS.ravel().tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, [1], [0.5]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def corrupt(ws: Workspace, digest: str) -> None:
    """Flip the first byte of the stored blob `digest`, keeping its size."""
    path = ws.blobs.storage.path_of(digest)  # type: ignore[attr-defined]
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


class MeanEstimator:
    """A model with scikit-learn's API that skl2onnx has no converter for."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def fit(self, x: Any, y: Any) -> MeanEstimator:
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, x: Any) -> Any:
        return np.full(len(x), self.mean_)


class Doubler:
    def predict(self, data: Any) -> Any:
        return np.asarray(data).sum(axis=1) * 2


# The onnx flavor


@pytest.mark.parametrize("as_bytes", [False, True])
def test_an_onnx_model_round_trips_and_predicts_with_onnxruntime(
    tmp_path: Path, as_bytes: bool
) -> None:
    model: Any = affine().SerializeToString() if as_bytes else affine()
    flavor = flavors.detect(model)
    assert flavor.name == "onnx"
    meta = json.loads(json.dumps(flavor.save(model, tmp_path)))
    assert meta["file"] == "model.onnx"
    assert meta["opset"] == 17
    loaded = flavor.load(tmp_path, meta)

    x = np.array([[1.0, 2.0], [0.0, -1.0]])
    for data in (x, pd.DataFrame(x, columns=["a", "b"]), x.tolist()):
        prediction = flavor.predict(loaded, data)
        assert isinstance(prediction, np.ndarray)
        np.testing.assert_allclose(prediction, x @ WEIGHTS + 0.5, rtol=1e-6)


def test_bytes_that_are_not_onnx_are_refused(tmp_path: Path) -> None:
    assert not flavors.by_name("onnx").handles(b"not a model")
    with pytest.raises(InvalidInput, match="are not one"):
        flavors.by_name("onnx").save(b"not a model", tmp_path)


def test_an_onnx_model_needs_onnxruntime_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flavor = flavors.by_name("onnx")
    meta = flavor.save(affine(), tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(InvalidInput, match=r"needs onnxruntime.*pip install 'loopml\[onnx\]'"):
        flavor.load(tmp_path, meta)


def test_a_logged_onnx_model_loads_with_either_runtime(sqlite_ws: Workspace) -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    loopml.log_model(affine(), name="affine", input_example=x)
    for runtime in ("native", "onnx"):
        model = loopml.load_model("models:/affine/1", runtime=runtime)
        np.testing.assert_allclose(model.predict(x), x @ WEIGHTS + 0.5, rtol=1e-6)


# onnx=True


def test_a_classifier_is_stored_with_its_onnx_export_in_one_package(sqlite_ws: Workspace) -> None:
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(FRAME, LABELS)
    logged = loopml.log_model(model, name="forest", input_example=FRAME.head(20), onnx=True)

    package = logged.package
    assert package.flavor == "sklearn"
    assert sorted(package.files) == ["model.onnx", "model.pkl"]
    exported = package.flavor_meta["onnx"]
    assert exported["file"] == "model.onnx"
    assert isinstance(exported["opset"], int)
    assert 0 <= exported["max_abs_diff"] <= 1e-4
    assert any(r.startswith("onnxruntime==") for r in package.environment["requirements"])

    served = loopml.load_model("models:/forest/1", runtime="onnx")
    native = loopml.load_model("models:/forest/1")
    assert served.runtime == "onnx"
    assert type(served.native).__name__ == "InferenceSession"
    np.testing.assert_array_equal(served.predict(FRAME), model.predict(FRAME))
    np.testing.assert_array_equal(native.predict(FRAME), model.predict(FRAME))
    with pytest.raises(InvalidInput, match="visits"):  # the signature holds on either runtime
        served.predict(FRAME[["age"]])
    again = loopml.log_model(model, name="forest", input_example=FRAME.head(20), onnx=True)
    assert again.package.digest == package.digest  # the export is the same bytes each time


@pytest.mark.parametrize(
    "model",
    [RandomForestRegressor(n_estimators=10, random_state=0), LinearRegression()],
    ids=["forest", "linear"],
)
def test_a_regressor_export_predicts_what_the_model_does(sqlite_ws: Workspace, model: Any) -> None:
    model.fit(FRAME, FRAME["age"] * 3.3 + FRAME["visits"])
    logged = loopml.log_model(model, name="price", input_example=FRAME.head(20), onnx=True)
    assert logged.package.flavor_meta["onnx"]["max_abs_diff"] >= 0

    served = loopml.load_model("models:/price/1", runtime="onnx")

    prediction = served.predict(FRAME)
    assert prediction.shape == (len(FRAME),)  # as the model's, not ONNX's [rows, 1]
    np.testing.assert_allclose(prediction, model.predict(FRAME), rtol=1e-4, atol=1e-4)


def test_a_pipeline_with_text_columns_is_exported_one_input_per_column(
    sqlite_ws: Workspace,
) -> None:
    frame = FRAME.assign(city=np.where(FRAME["visits"] > 4, "Oslo", "Lima"))
    columns = ColumnTransformer(
        [("num", StandardScaler(), ["age", "visits"]), ("cat", OneHotEncoder(), ["city"])]
    )
    model = make_pipeline(columns, LogisticRegression()).fit(frame, LABELS)
    loopml.log_model(model, name="piped", input_example=frame.head(20), onnx=True)

    served = loopml.load_model("models:/piped/1", runtime="onnx")

    np.testing.assert_array_equal(served.predict(frame), model.predict(frame))


def test_an_export_that_disagrees_is_refused_and_nothing_is_stored(sqlite_ws: Workspace) -> None:
    model = LinearRegression().fit(FRAME, FRAME["age"] * 3.3 + FRAME["visits"])
    before = set(sqlite_ws.blobs.list())
    # Float32 arithmetic in ONNX is never exactly float64's: no difference at all is allowed.
    with pytest.raises(InvalidInput, match=r"differ from the model's by up to .* onnx_tolerance=0"):
        loopml.log_model(
            model, name="strict", input_example=FRAME.head(20), onnx=True, onnx_tolerance=0.0
        )
    assert set(sqlite_ws.blobs.list()) == before


def test_a_model_skl2onnx_cannot_convert_is_refused_and_nothing_is_stored(
    sqlite_ws: Workspace,
) -> None:
    before = set(sqlite_ws.blobs.list())
    with pytest.raises(InvalidInput, match=r"skl2onnx cannot convert .*MeanEstimator"):
        loopml.log_model(
            MeanEstimator().fit(FRAME, LABELS), name="mean", input_example=FRAME, onnx=True
        )
    assert set(sqlite_ws.blobs.list()) == before


@pytest.mark.parametrize(
    ("model", "example", "message"),
    [
        (Doubler(), FRAME, "converts scikit-learn models with skl2onnx, not pyfunc models"),
        (affine(), np.ones((2, 2)), "not onnx models.*stored as ONNX already"),
        (LogisticRegression().fit(FRAME, LABELS), None, "onnx=True needs an input example"),
    ],
    ids=["pyfunc", "onnx", "no-example"],
)
def test_onnx_true_is_refused_where_there_is_nothing_to_convert(
    sqlite_ws: Workspace, model: Any, example: Any, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        loopml.log_model(model, name="refused", input_example=example, onnx=True)


def test_a_negative_tolerance_is_refused(sqlite_ws: Workspace) -> None:
    model = LogisticRegression().fit(FRAME, LABELS)
    with pytest.raises(InvalidInput, match="onnx_tolerance must be a number >= 0"):
        loopml.log_model(model, name="m", input_example=FRAME, onnx=True, onnx_tolerance=-1.0)


# runtime="onnx"


def test_a_tampered_onnx_file_is_refused(sqlite_ws: Workspace) -> None:
    model = LogisticRegression().fit(FRAME, LABELS)
    logged = loopml.log_model(model, name="m", input_example=FRAME.head(5), onnx=True)
    corrupt(sqlite_ws, logged.package.files["model.onnx"][0])
    with pytest.raises(IntegrityError, match="corrupted"):
        loopml.load_model("models:/m/1", runtime="onnx")


def test_runtime_onnx_on_a_package_without_onnx_is_refused(sqlite_ws: Workspace) -> None:
    loopml.log_model(LogisticRegression().fit(FRAME, LABELS), name="m", input_example=FRAME)
    with pytest.raises(InvalidInput, match=r"holds no ONNX model.*onnx=True"):
        loopml.load_model("models:/m/1", runtime="onnx")
    with pytest.raises(
        InvalidInput, match="runtime 'tensorrt' is unknown; use one of native, onnx"
    ):
        loopml.load_model("models:/m/1", runtime="tensorrt")
