"""Steps over tables and models (pandas, numpy, scikit-learn, a dataset, a custom type)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from loopml import Dataset, pipeline, step


# ---- a dataset read by a step -------------------------------------------------------------
@step
def load_rows(data: Dataset) -> pd.DataFrame:
    return data.to_pandas()


@step
def summarise(rows: pd.DataFrame, scale: float) -> dict[str, float]:
    print(f"summarising {len(rows)} rows")
    return {"rows": float(len(rows)), "mean_y": float(rows["y"].mean()) * scale}


@pipeline
def table(data: Dataset = "sales", scale: float = 1.0) -> None:
    summarise(load_rows(data), scale)


# ---- one value of each kind the built-in materializers store, and a custom one -------------
class Celsius:
    """A type no built-in materializer stores as text."""

    def __init__(self, degrees: float) -> None:
        self.degrees = degrees


class CelsiusMaterializer:
    """Stores a Celsius as text like `21.5C`."""

    name = "celsius"

    def handles(self, value: object) -> bool:
        return isinstance(value, Celsius)

    def dump(self, value: Any) -> bytes:
        return f"{value.degrees}C".encode()

    def load(self, data: bytes) -> Any:
        return Celsius(float(data.decode().removesuffix("C")))


@step
def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})


@step
def doubled(rows: pd.DataFrame) -> np.ndarray:
    return rows["x"].to_numpy() * 2


@step
def settings() -> dict[str, Any]:
    return {"C": 10.0, "features": ["x"]}


@step
def fit(rows: pd.DataFrame, config: dict[str, Any]) -> LogisticRegression:
    return LogisticRegression(C=config["C"]).fit(rows[config["features"]], rows["y"])


@step(materializers=[CelsiusMaterializer()])
def temperature() -> Celsius:
    return Celsius(21.5)


@step
def inspect_all(
    rows: pd.DataFrame,
    twice: np.ndarray,
    config: dict[str, Any],
    model: LogisticRegression,
    temp: Celsius,
) -> dict[str, Any]:
    return {
        "types": [type(v).__name__ for v in (rows, twice, config, model, temp)],
        "twice": twice.tolist(),
        "predicted": model.predict(rows[["x"]]).tolist(),
        "degrees": temp.degrees,
    }


@pipeline
def kinds() -> None:
    rows = frame()
    config = settings()
    inspect_all(rows, doubled(rows), config, fit(rows, config), temperature())
