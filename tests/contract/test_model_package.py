"""Model packages on every store: round trip, input examples, verification before unpickling."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.core.workspace import Workspace
from loopml.errors import IntegrityError, InvalidInput, NotFound
from loopml.registry import package as packages

FRAME = pd.DataFrame(
    {
        "age": [23.0, 45.0, 31.0, 52.0, 38.0, 27.0],
        "visits": [1, 7, 3, 9, 4, 2],
    }
)
TARGET = [0, 1, 0, 1, 1, 0]


@pytest.fixture
def classifier() -> LogisticRegression:
    return LogisticRegression().fit(FRAME, TARGET)


class Marked:
    """A pyfunc model that leaves a marker file behind whenever it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("unpickled")
        self.__dict__.update(state)

    def predict(self, data: Any) -> Any:
        return np.asarray(data, dtype="float64").sum(axis=1)


def corrupt(ws: Workspace, digest: str) -> None:
    """Flip the first byte of the stored blob `digest`, keeping its size."""
    path = ws.blobs.storage.path_of(digest)  # type: ignore[attr-defined]
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_saved_model_loads_back_and_predicts_the_same(
    ws: Workspace, classifier: LogisticRegression
) -> None:
    saved = packages.save_package(ws, classifier, input_example=FRAME.head(3))
    package = packages.read_package(ws, saved.digest)
    assert package == saved
    assert package.flavor == "sklearn"
    assert package.flavor_meta["class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert list(package.files) == ["model.pkl"]
    assert package.signature is not None
    assert [c.name for c in package.signature.inputs] == ["age", "visits"]
    assert package.signature.outputs  # inferred from the model's predictions on the example
    environment = package.environment
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in environment["requirements"]
    assert environment["packages"]["numpy"] == metadata.version("numpy")
    assert environment["python"].count(".") == 2
    model = packages.load(ws, package)
    np.testing.assert_array_equal(model.predict(FRAME), classifier.predict(FRAME))


def test_saving_the_same_model_twice_gives_one_package(
    ws: Workspace, classifier: LogisticRegression
) -> None:
    first = packages.save_package(ws, classifier, input_example=FRAME.head(2))
    second = packages.save_package(ws, classifier, input_example=FRAME.head(2))
    assert first.digest == second.digest


@pytest.mark.parametrize(
    ("example", "kind"),
    [
        (pd.DataFrame({"city": ["Oslo", "Lima"], "rooms": [2, 3]}), "parquet"),
        (np.arange(6, dtype="float64").reshape(2, 3), "npy"),
        ([[1.0, 2.0], [3.0, 4.0]], "json"),
    ],
)
def test_the_input_example_comes_back_as_it_was_given(
    ws: Workspace, tmp_path: Path, example: Any, kind: str
) -> None:
    class Rows:
        def predict(self, data: Any) -> Any:
            return np.zeros(len(data))

    package = packages.save_package(ws, Rows(), input_example=example)
    assert package.input_example_format == kind
    loaded = packages.load_input_example(ws, package)
    if isinstance(example, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, example)
    elif isinstance(example, np.ndarray):
        np.testing.assert_array_equal(loaded, example)
    else:
        assert loaded == example


def test_a_package_without_an_example_has_no_signature(
    ws: Workspace, classifier: LogisticRegression
) -> None:
    package = packages.save_package(ws, classifier)
    assert package.signature is None
    assert package.input_example is None
    assert packages.load_input_example(ws, package) is None
    model = packages.load(ws, packages.read_package(ws, package.digest))
    np.testing.assert_array_equal(model.predict(FRAME), classifier.predict(FRAME))


def test_a_missing_column_is_refused_naming_it(
    ws: Workspace, classifier: LogisticRegression
) -> None:
    package = packages.save_package(ws, classifier, input_example=FRAME.head(3))
    model = packages.load(ws, package)
    with pytest.raises(InvalidInput, match="visits"):
        model.predict(FRAME[["age"]])


def test_a_corrupted_model_file_is_refused_before_it_is_unpickled(
    ws: Workspace, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled.txt"
    package = packages.save_package(ws, Marked(marker), input_example=[[1.0, 2.0]])
    assert not marker.exists()
    corrupt(ws, package.files["model.pkl"][0])
    with pytest.raises(IntegrityError, match="corrupted"):
        packages.load_native(ws, packages.read_package(ws, package.digest))
    assert not marker.exists()
    assert not (ws.settings.dir / "models").exists() or not any(
        p.is_file() for p in (ws.settings.dir / "models").rglob("*")
    )


def test_an_edited_cached_copy_is_replaced_by_the_stored_model(
    ws: Workspace, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled.txt"
    package = packages.save_package(ws, Marked(marker))
    packages.load_native(ws, package)
    marker.unlink()
    (cached,) = (ws.settings.dir / "models").rglob("model.pkl")
    os.chmod(cached, 0o644)
    cached.write_bytes(b"not a pickle")
    model = packages.load_native(ws, package)
    assert model.predict([[1.0, 2.0]]).tolist() == [3.0]
    assert marker.exists()


def test_a_corrupted_manifest_is_refused(ws: Workspace, classifier: LogisticRegression) -> None:
    package = packages.save_package(ws, classifier)
    corrupt(ws, package.digest)
    with pytest.raises(IntegrityError, match="corrupted"):
        packages.read_package(ws, package.digest)


def test_a_blob_that_is_not_a_manifest_is_refused(ws: Workspace) -> None:
    digest = ws.blobs.put_bytes(b'{"hello": "world"}').digest
    with pytest.raises(InvalidInput, match="not a model package manifest"):
        packages.read_package(ws, digest)


def test_an_unknown_package_is_not_found(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="not in this workspace's blob store"):
        packages.read_package(ws, "blake3:" + "0" * 64)


def test_a_missing_model_file_makes_the_package_incomplete(
    ws: Workspace, classifier: LogisticRegression
) -> None:
    package = packages.save_package(ws, classifier)
    ws.blobs.delete(package.files["model.pkl"][0])
    with pytest.raises(IntegrityError, match=r"incomplete: its file model\.pkl"):
        packages.read_package(ws, package.digest)


def test_an_example_the_model_cannot_predict_on_is_refused(
    ws: Workspace, classifier: LogisticRegression
) -> None:
    with pytest.raises(InvalidInput, match="could not predict on its input example"):
        packages.save_package(ws, classifier, input_example=pd.DataFrame({"other": [1.0]}))


def test_an_example_that_cannot_be_stored_is_refused(ws: Workspace) -> None:
    class Anything:
        def predict(self, data: Any) -> Any:
            return [0]

    with pytest.raises(InvalidInput, match="input example of type set cannot be stored"):
        packages.save_package(ws, Anything(), input_example={1, 2})


def test_an_unsupported_object_is_refused(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"cannot save a builtins\.int as a model"):
        packages.save_package(ws, 42)
