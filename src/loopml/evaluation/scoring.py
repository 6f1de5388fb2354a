"""`loopml.evaluate`: score a stored model on a table and record what it scored.

The rows come from a dataset version (`churn@v2`), a CSV/Parquet file or a DataFrame; the
model from a `models:/` or `runs:/` URI. The record links the model version and the dataset
version, so a gate finds the champion's score on the same rows instead of computing it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import numpy as np
import pandas as pd

from loopml.core.blobs.digest import digest_bytes
from loopml.core.store import now_ms
from loopml.core.workspace import Workspace, workspace
from loopml.data.entities import DatasetVersion
from loopml.errors import InvalidInput, LoopMLError
from loopml.evaluation import metrics
from loopml.evaluation.fairness import fairness
from loopml.evaluation.importance import permutation_importance, shap_importance
from loopml.evaluation.records import Evaluation, add, find, finite, new_id
from loopml.registry import models
from loopml.registry.package import LoadedModel, load
from loopml.registry.signature import enforce
from loopml.registry.uris import parse
from loopml.tracking.current import current_user

_T = TypeVar("_T")
DataLike: TypeAlias = str | Path | DatasetVersion | pd.DataFrame


@dataclass(frozen=True)
class Table:
    """The rows an evaluation scores and where they came from."""

    frame: pd.DataFrame
    label: str  # churn@v2, a file path, or "DataFrame"
    version: DatasetVersion | None
    digest: str  # of the rows' values, columns and dtypes


@dataclass(frozen=True)
class Model:
    """A loaded model and what names it."""

    uri: str
    loaded: LoadedModel
    name: str | None
    version: int | None


def evaluate(
    model: str,
    data: DataLike,
    target: str,
    *,
    sensitive_features: Sequence[str] = (),
    slices: Sequence[str] = (),
    task: str | None = None,
    importance: bool = True,
    file: str | None = None,
) -> Evaluation:
    """Score model `model` (a URI) on `data`'s rows against column `target`; store and return
    the evaluation.

    Classification reports accuracy, precision, recall, F1, ROC AUC and log loss (with
    probabilities), a confusion matrix and a calibration curve; regression reports RMSE, MAE,
    R2 and a residual sample. `slices` adds the scores per value of each column;
    `sensitive_features` adds fairness metrics per feature (binary classifiers);
    `importance` adds permutation importance.
    """
    ws = workspace()
    chosen = load_model(ws, model)
    table = read_table(ws, data, file=file)
    return score(
        ws,
        chosen,
        table,
        target,
        sensitive_features=sensitive_features,
        slices=slices,
        task=task,
        importance=importance,
    )


def load_model(ws: Workspace, uri: str) -> Model:
    """Return the model `uri` names, loaded and verified."""
    from loopml.registry.api import package_of

    ref = parse(uri)
    package = package_of(ws, ref)
    if ref.run_id is not None:
        return Model(str(ref), load(ws, package), None, None)
    record = models.resolve(ws, ref)
    return Model(record.uri, load(ws, package), record.name, record.version)


def read_table(
    ws: Workspace, data: DataLike, *, file: str | None = None, allow_empty: bool = False
) -> Table:
    """Return the rows `data` names: a dataset version, a CSV/Parquet file or a DataFrame
    (with at least one row unless `allow_empty`)."""
    from loopml.data import versions
    from loopml.data.tables import read_table as read_file

    version: DatasetVersion | None = None
    if isinstance(data, pd.DataFrame):
        frame, label = data, f"DataFrame ({len(data)} rows)"
    elif isinstance(data, DatasetVersion):
        version = data
    elif isinstance(data, Path) or (isinstance(data, str) and Path(data).is_file()):
        frame, label = read_file(Path(data)), str(data)
    elif isinstance(data, str):
        version = versions.get(ws, data)
    else:
        raise InvalidInput(
            f"data must be a dataset reference ('churn@v2'), a CSV/Parquet path or a pandas "
            f"DataFrame, not {type(data).__name__}"
        )
    if version is not None:
        frame, label = version.to_pandas(file), version.ref
    if frame.empty and not allow_empty:
        raise InvalidInput(f"{label} has no rows to evaluate on")
    return Table(frame, label, version, frame_digest(frame))


def frame_digest(frame: pd.DataFrame) -> str:
    """Return a digest of a frame's values, column names and dtypes (not its index)."""
    values = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    header = repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode()
    return digest_bytes(header + values)


def score(
    ws: Workspace,
    model: Model,
    table: Table,
    target: str,
    *,
    sensitive_features: Sequence[str] = (),
    slices: Sequence[str] = (),
    task: str | None = None,
    importance: bool = True,
) -> Evaluation:
    """Score a loaded model on a table's rows; store and return the evaluation."""
    frame = table.frame
    sensitive_features, slices = _names(sensitive_features), _names(slices)
    _check_columns(frame, table.label, [target], "target")
    _check_columns(frame, table.label, sensitive_features, "sensitive feature")
    _check_columns(frame, table.label, slices, "slice")
    y_true = frame[target].to_numpy()
    if (missing := int(frame[target].isna().sum())) > 0:
        raise InvalidInput(
            f"target column {target!r} of {table.label} has {missing} missing value(s); drop "
            "those rows before evaluating"
        )
    loaded = model.loaded
    inputs = features(loaded, frame, target)
    y_pred = _column(_predict(model, inputs, table.label), "predictions")
    kind = metrics.task_of(loaded.native, frame[target], task)
    details: dict[str, Any] = {}
    if kind == "classification":
        classes = _classes(loaded.native, y_true, y_pred)
        _check_labels(model, table.label, frame[target], classes)
        proba = _probabilities(loaded, inputs, len(classes))
        scores, details["plots"] = _scored(
            model, table.label, lambda: metrics.classification(y_true, y_pred, proba, classes)
        )

        def score_rows(mask: np.ndarray[Any, Any]) -> dict[str, float]:
            part = proba[mask] if proba is not None else None
            return metrics.classification(y_true[mask], y_pred[mask], part, classes)[0]
    else:
        y_true = _numeric_target(frame[target], table.label)
        scores, details["plots"] = _scored(
            model, table.label, lambda: metrics.regression(y_true, y_pred)
        )

        def score_rows(mask: np.ndarray[Any, Any]) -> dict[str, float]:
            return metrics.regression(y_true[mask], y_pred[mask])[0]

    if slices:
        details["slices"] = {col: metrics.slices(frame[col], score_rows) for col in slices}
    if sensitive_features:
        if kind != "classification" or len(classes) != 2:
            raise InvalidInput(
                "fairness metrics compare positive predictions across groups, so they need a "
                f"binary classifier; this model is a {kind} model"
                + (f" with {len(classes)} classes" if kind == "classification" else "")
            )
        details["fairness"] = {
            col: fairness(y_true, y_pred, frame[col], classes[-1]) for col in sensitive_features
        }
    if importance:
        details["importance"] = {
            "metric": metrics.headline(kind),
            "features": permutation_importance(
                lambda rows: _column(loaded.predict(rows), "predictions"),
                inputs,
                y_true,
                lambda truth, pred: metrics.headline_score(kind, truth, pred),
            ),
        }
        explained = shap_importance(loaded.native, _checked(loaded, inputs))
        if explained is not None:
            details["shap"] = explained
    evaluation = Evaluation(
        id=new_id(),
        model=model.uri,
        package_digest=loaded.package.digest,
        dataset=table.label,
        data_digest=table.digest,
        target=target,
        task=kind,
        rows=len(frame),
        metrics=finite(dict(scores)),  # NaN (ROC AUC of one class) is stored as None
        details=finite(details),
        model_name=model.name,
        model_version=model.version,
        dataset_version_id=table.version.id if table.version is not None else None,
        user=current_user(),
        created_at=now_ms(),
    )
    add(ws, evaluation)
    return evaluation


def stored_or_new(
    ws: Workspace,
    model: Model,
    table: Table,
    target: str,
    *,
    sensitive_features: Sequence[str] = (),
) -> Evaluation:
    """Return the latest stored evaluation of this package on these rows and target that has
    the fairness metrics asked for, or score it now."""
    found = stored(ws, model.loaded.package.digest, table, target, sensitive_features)
    if found is not None:
        return found
    return score(ws, model, table, target, sensitive_features=sensitive_features, importance=False)


def stored(
    ws: Workspace,
    package_digest: str,
    table: Table,
    target: str,
    sensitive_features: Sequence[str] = (),
) -> Evaluation | None:
    """Return the latest stored evaluation of a package on these rows and target that has the
    fairness metrics asked for, or None."""
    for found in find(ws, package_digest, table.digest, target):
        if set(sensitive_features) <= set(found.details.get("fairness", {})):
            return found
    return None


def compare(
    uris: Sequence[str], data: DataLike, *, target: str | None = None, file: str | None = None
) -> list[Evaluation]:
    """Return an evaluation of each model on the same rows, reusing stored ones; the target is
    `target`, else the one stored evaluations of these models on these rows agree on."""
    if len(uris) < 2:
        raise InvalidInput("compare needs two or more models")
    ws = workspace()
    chosen = [load_model(ws, uri) for uri in uris]
    table = read_table(ws, data, file=file)
    target = target or stored_target(ws, chosen, table)
    return [stored_or_new(ws, m, table, target) for m in chosen]


def stored_target(ws: Workspace, chosen: Sequence[Model], table: Table) -> str:
    """Return the one target the stored evaluations of these models on these rows used."""
    targets = {e.target for m in chosen for e in find(ws, m.loaded.package.digest, table.digest)}
    if len(targets) == 1:
        return targets.pop()
    found = "no stored evaluation" if not targets else "evaluations of several targets"
    raise InvalidInput(
        f"which column of {table.label} is the target? pass target= (or set it in the gate); "
        f"the stored evaluations there are {found}"
    )


def features(loaded: LoadedModel, frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """Return the columns of `frame` the model reads: its signature's inputs when it has named
    ones (a missing one is refused by name), else every column but the target."""
    signature = loaded.package.signature
    if signature is None or not signature.names:
        fitted_on = getattr(loaded.native, "feature_names_in_", None)  # scikit-learn's record
        if fitted_on is not None and all(n in frame.columns for n in fitted_on):
            return frame[list(fitted_on)]
        return frame.drop(columns=[target])
    present = [n for n in signature.names if n in frame.columns]
    enforce(signature, frame[present])  # refuses a missing column by name
    return frame[present]


def _predict(model: Model, inputs: pd.DataFrame, label: str) -> Any:
    try:
        return model.loaded.predict(inputs)
    except LoopMLError:
        raise
    except Exception as exc:
        raise InvalidInput(
            f"{model.uri} could not predict on {label} ({type(exc).__name__}: {exc}); evaluate "
            "it on a table with the columns it was trained on"
        ) from exc


def _names(columns: str | Sequence[str]) -> list[str]:
    """Return column names given as one name or a list of them."""
    return [columns] if isinstance(columns, str) else list(columns)


def _check_columns(frame: pd.DataFrame, label: str, names: list[str], what: str) -> None:
    for name in names:
        if not isinstance(name, str):
            raise InvalidInput(f"a {what} column is named by a string, not {name!r}")
        if name not in frame.columns:
            columns = ", ".join(map(str, frame.columns[:30]))
            raise InvalidInput(f"{label} has no {what} column {name!r}; its columns: {columns}")


def _check_labels(model: Model, label: str, target: pd.Series[Any], classes: list[Any]) -> None:
    """Refuse a target holding labels a classifier never predicts ("yes" against 0/1)."""
    if not hasattr(model.loaded.native, "classes_"):
        return
    unknown = set(target.unique().tolist()) - {metrics.plain(c) for c in classes}
    if unknown:
        shown = ", ".join(map(repr, sorted(unknown, key=str)[:5]))
        raise InvalidInput(
            f"target {target.name!r} of {label} holds {shown}, which {model.uri} never "
            f"predicts (its classes: {', '.join(map(repr, classes[:10]))}); evaluate it on "
            "the column it was trained to predict"
        )


def _scored(model: Model, label: str, compute: Callable[[], _T]) -> _T:
    """Return `compute()`; a target the metrics cannot read is an error naming the fix."""
    try:
        return compute()
    except ValueError as exc:
        raise InvalidInput(
            f"cannot score {model.uri} on {label}: {exc}. Check that the target column holds "
            "what the model predicts, and pass task='classification' or 'regression'"
        ) from exc


def _column(values: Any, what: str) -> np.ndarray[Any, Any]:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInput(
            f"the model's {what} have shape {array.shape}; evaluation needs one value per row"
        )
    return array


def _classes(native: Any, y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any]) -> list[Any]:
    known = getattr(native, "classes_", None)
    if known is not None:
        return list(np.asarray(known))
    return sorted(set(np.unique(y_true)) | set(np.unique(y_pred)), key=str)


def _checked(loaded: LoadedModel, inputs: pd.DataFrame) -> Any:
    """Return `inputs` cast to the signature, as the native model receives them."""
    signature = loaded.package.signature
    return enforce(signature, inputs) if signature is not None else inputs


def _probabilities(loaded: LoadedModel, inputs: pd.DataFrame, classes: int) -> Any:
    predict_proba = getattr(loaded.native, "predict_proba", None)
    if not callable(predict_proba):
        return None
    proba = np.asarray(predict_proba(_checked(loaded, inputs)))
    return proba if proba.ndim == 2 and proba.shape[1] == classes else None


def _numeric_target(column: pd.Series[Any], label: str) -> np.ndarray[Any, Any]:
    try:
        values: np.ndarray[Any, Any] = column.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"target {column.name!r} of {label} is not numeric ({column.dtype}), so it cannot "
            "score a regression model; pass task='classification' if the model predicts labels"
        ) from None
    if not np.isfinite(values).all():
        raise InvalidInput(
            f"target {column.name!r} of {label} holds infinite values; drop those rows"
        )
    return values
