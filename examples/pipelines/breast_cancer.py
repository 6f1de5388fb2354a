"""A training pipeline over the versioned breast-cancer data: split, train, evaluate.

Run it with `loopml run examples/pipelines/breast_cancer.py:breast_cancer -p alpha=0.001`,
or sweep it: `loopml sweep ... -p alpha=0.0001,0.001,0.01 -p penalty=l2,l1 --metric f1`.
"""

from __future__ import annotations

import pandas as pd
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml import Dataset, pipeline, step

TARGET = "target"


@step(outputs=("train", "test"))
def split(data: Dataset, test_size: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split one dataset version into stratified train and test frames."""
    frame = data.to_pandas()
    train, test = train_test_split(
        frame, test_size=test_size, random_state=0, stratify=frame[TARGET]
    )
    print(f"{data.ref}: {len(train)} training rows, {len(test)} test rows")
    return train, test


@step(resources={"cpu": 1}, retries=1)
def train(train: pd.DataFrame, alpha: float, penalty: str) -> Pipeline:
    """Fit a scaled SGD logistic regression."""
    model = make_pipeline(
        StandardScaler(),
        SGDClassifier(loss="log_loss", alpha=alpha, penalty=penalty, random_state=0),
    )
    return model.fit(train.drop(columns=TARGET), train[TARGET])


@step
def evaluate(model: Pipeline, test: pd.DataFrame) -> dict[str, float]:
    """Score the model on the held-out rows (logged as metrics of the run)."""
    predictions = model.predict(test.drop(columns=TARGET))
    return {
        "accuracy": float(accuracy_score(test[TARGET], predictions)),
        "f1": float(f1_score(test[TARGET], predictions)),
    }


@pipeline
def breast_cancer(data: str = "breast-cancer@v1", alpha: float = 1e-3, penalty: str = "l2"):
    """Split the data, train one model, evaluate it."""
    train_df, test_df = split(data)
    model = train(train_df, alpha=alpha, penalty=penalty)
    evaluate(model, test_df)
