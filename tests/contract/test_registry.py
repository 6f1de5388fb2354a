"""The model registry on every store: versions, URIs, aliases and their history, GC."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.core.gc import collect
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, NotFound
from loopml.registry import models
from loopml.registry.package import save_package


@pytest.fixture
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    return frame, (frame["a"] + frame["b"] > 0).astype(int).to_numpy()


def fitted(data: tuple[pd.DataFrame, np.ndarray], c: float = 1.0) -> LogisticRegression:
    frame, target = data
    return LogisticRegression(C=c).fit(frame, target)


def test_logging_a_model_under_a_name_makes_numbered_versions_that_load_and_predict(
    ws: Workspace, data: tuple[pd.DataFrame, np.ndarray]
):
    frame, _ = data
    first, second = fitted(data, 1.0), fitted(data, 0.01)
    with loopml.start_run(experiment="churn") as run:
        v1 = loopml.log_model(first, name="churn", input_example=frame.head(5))
        v2 = loopml.log_model(second, name="churn", artifact_path="small", input_example=frame)

    assert (v1.uri, v2.uri) == ("models:/churn/1", "models:/churn/2")
    assert v1.version is not None and v1.version.run_id == run.id
    assert v1.version.source == f"runs:/{run.id}/model"
    loaded = loopml.load_model("models:/churn/1")
    np.testing.assert_array_equal(loaded.predict(frame), first.predict(frame))
    by_run = loopml.load_model(f"runs:/{run.id}/small")
    np.testing.assert_array_equal(by_run.predict(frame), second.predict(frame))
    assert models.get_version(ws, "churn").version == 2  # latest
    assert loopml.load_model("models:/churn/latest").package.digest == v2.package.digest
    listed = models.list_models(ws)
    assert [(m.name, m.versions, m.latest_version) for m in listed] == [("churn", 2, 2)]


def test_a_run_s_model_can_be_registered_later(
    ws: Workspace, data: tuple[pd.DataFrame, np.ndarray]
):
    with loopml.start_run() as run:
        logged = loopml.log_model(fitted(data), input_example=data[0].head(3))
    assert logged.version is None and logged.uri == f"runs:/{run.id}/model"

    version = loopml.register_model(logged.uri, "later")

    assert (version.name, version.version, version.run_id) == ("later", 1, run.id)
    assert version.package_digest == logged.package.digest


def test_aliases_move_and_every_move_is_kept(ws: Workspace, data: tuple[pd.DataFrame, np.ndarray]):
    for c in (1.0, 0.1):
        loopml.log_model(fitted(data, c), name="churn", input_example=data[0].head(3))

    models.set_alias(ws, "churn", "champion", 1, reason="first model")
    models.set_alias(ws, "churn", "champion", 2, reason="beat v1", gate_result={"passed": True})

    assert models.resolve(ws, "models:/churn@champion").version == 2
    assert models.get_version(ws, "churn", 2).aliases == ("champion",)
    assert models.get_model(ws, "churn").aliases == {"champion": 2}
    models.delete_alias(ws, "churn", "champion", reason="rolled back by hand")
    history = models.alias_history(ws, "churn", "champion")
    assert [(e.from_version, e.to_version, e.reason) for e in history] == [
        (None, 1, "first model"),
        (1, 2, "beat v1"),
        (2, None, "rolled back by hand"),
    ]
    assert history[1].gate_result == {"passed": True}
    with pytest.raises(NotFound, match="has no alias 'champion'; it has no aliases yet"):
        models.resolve(ws, "models:/churn@champion")


def test_unknown_models_versions_aliases_and_bad_uris_say_what_exists(
    ws: Workspace, data: tuple[pd.DataFrame, np.ndarray]
):
    loopml.log_model(fitted(data), name="churn", input_example=data[0].head(3))
    models.set_alias(ws, "churn", "prod", 1)

    with pytest.raises(NotFound, match="no registered model 'nope'; models are churn"):
        loopml.load_model("models:/nope/1")
    with pytest.raises(NotFound, match=r"model .churn. has no version 9; versions are 1\.\.1"):
        loopml.load_model("models:/churn/9")
    with pytest.raises(NotFound, match=r"no alias 'champion'; aliases are prod \(v1\)"):
        loopml.load_model("models:/churn@champion")
    for bad in ("churn", "models:/", "models:/churn/v1", "runs:/abcd/../x", 3):
        with pytest.raises(InvalidInput):
            loopml.load_model(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="'latest' always means the newest version"):
        models.set_alias(ws, "churn", "latest", 1)
    with pytest.raises(NotFound, match="has no version 5"):
        models.set_alias(ws, "churn", "prod", 5)
    assert models.resolve(ws, "models:/churn@prod").version == 1  # the failed move changed nothing


def test_log_model_needs_a_run_or_a_name(ws: Workspace, data: tuple[pd.DataFrame, np.ndarray]):
    with pytest.raises(InvalidInput, match="needs a run to log into or a name"):
        loopml.log_model(fitted(data))
    with pytest.raises(InvalidInput, match="artifact_path"):
        loopml.log_model(fitted(data), name="m", artifact_path="../outside")


def test_concurrent_registrations_number_versions_without_gaps(
    ws: Workspace, data: tuple[pd.DataFrame, np.ndarray]
):
    package = save_package(ws, fitted(data), input_example=data[0].head(3))
    errors: list[BaseException] = []

    def register() -> None:
        try:
            models.register_version(ws, "busy", package.digest, package.flavor)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert [v.version for v in models.versions(ws, "busy")] == [6, 5, 4, 3, 2, 1]


def test_gc_keeps_every_blob_of_a_registered_or_logged_model(
    ws: Workspace, data: tuple[pd.DataFrame, np.ndarray]
):
    with loopml.start_run():
        logged = loopml.log_model(fitted(data), input_example=data[0].head(3))
    registered = loopml.log_model(fitted(data, 0.5), name="kept", input_example=data[0])
    needed = set()
    for package in (logged.package, registered.package):
        needed |= {package.digest, *(d for d, _ in package.files.values())}
        needed.add(package.input_example or package.digest)

    garbage = collect(ws)  # a dry run: what would go

    assert needed.isdisjoint(digest for digest, _ in garbage.unreferenced)


def test_a_pipeline_with_a_transformer_from_a_local_module_loads_where_it_is_not_importable(
    ws: Workspace, data: tuple[pd.DataFrame, np.ndarray], tmp_path, monkeypatch
):
    import importlib
    import sys
    import textwrap

    from sklearn.pipeline import make_pipeline

    from tests.e2e.cli import python

    lib = tmp_path / "lib"
    lib.mkdir()
    name = f"mylib_{tmp_path.name.replace('-', '_')}"
    (lib / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from sklearn.base import BaseEstimator, TransformerMixin


            class Doubler(BaseEstimator, TransformerMixin):
                def fit(self, x, y=None):
                    return self

                def transform(self, x):
                    return x * 2
            """
        )
    )
    monkeypatch.syspath_prepend(str(lib))
    doubler = importlib.import_module(name).Doubler
    frame, target = data
    model = make_pipeline(doubler(), LogisticRegression()).fit(frame, target)
    loopml.log_model(model, name="piped", input_example=frame.head(3))
    sys.modules.pop(name, None)

    # Another process, whose path does not hold the module: the class came with the model.
    done = python(
        """
        import numpy as np, pandas as pd, loopml
        m = loopml.load_model("models:/piped/1")
        print(m.predict(pd.DataFrame({"a": [1.0, -3.0], "b": [2.0, -1.0]})).tolist())
        """,
        cwd=ws.root,
    )

    expected = model.predict(pd.DataFrame({"a": [1.0, -3.0], "b": [2.0, -1.0]})).tolist()
    assert done.stdout.strip() == str(expected)


def test_a_version_must_name_a_stored_package_of_its_flavor(
    ws: Workspace, data: tuple[pd.DataFrame, np.ndarray]
):
    package = save_package(ws, fitted(data), input_example=data[0].head(3))

    with pytest.raises(InvalidInput):
        models.register_version(ws, "ghost", "not-a-digest", "sklearn")
    with pytest.raises(InvalidInput, match="is a 'sklearn' model, not 'pyfunc'"):
        models.register_version(ws, "ghost", package.digest, "pyfunc")
    with pytest.raises(NotFound, match="no registered model 'ghost'"):
        models.get_model(ws, "ghost")


def test_a_numpy_integer_names_a_version(ws: Workspace, data: tuple[pd.DataFrame, np.ndarray]):
    loopml.log_model(fitted(data), name="np", input_example=data[0].head(3))

    models.set_alias(ws, "np", "prod", np.int64(1))  # type: ignore[arg-type]

    assert models.get_version(ws, "np", np.int64(1)).aliases == ("prod",)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="a model version is a whole number"):
        models.set_alias(ws, "np", "prod", 1.5)  # type: ignore[arg-type]
