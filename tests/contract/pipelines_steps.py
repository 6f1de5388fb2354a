"""Steps and pipelines the pipeline contract tests run; workers import this module by file.

Kept free of heavy imports (pandas, scikit-learn): every worker a run starts imports it.
Steps note what they do in files under the test's tmp_path, passed in as params.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from loopml import pipeline, step
from loopml.errors import StepTimeout

# Long enough for a fresh worker process to start and return on a loaded machine.
TIMEOUT_S = 3.0


def note(log: str, line: str) -> None:
    """Append `line` to the file `log`."""
    with Path(log).open("a", encoding="utf-8") as file:
        file.write(line + "\n")


def bump(counter: str) -> int:
    """Count one more call in the file `counter`; return the count."""
    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    return calls


# ---- a diamond: source -> left, source -> right, left + right -> join ---------------------
@step
def source(n: int, log: str) -> int:
    note(log, "source")
    print(f"source made {n}")
    print("source warns", file=sys.stderr)
    return n


@step(outputs=("doubled", "label"))
def left(x: int, log: str):
    note(log, "left")
    return x * 2, f"n={x}"


@step
def right(x: int, log: str) -> tuple[int, str | None]:
    note(log, "right")
    return x + 100, None


@step
def join(doubled: int, label: str, plus: int, missing: str | None, log: str) -> dict[str, float]:
    note(log, f"join {doubled} {label} {plus} {missing!r}")
    return {"total": float(doubled + plus), "missing_was_none": float(missing is None)}


@pipeline
def diamond(n: int = 3, log: str = "") -> None:
    x = source(n, log)
    doubled, label = left(x, log)
    plus, missing = right(x, log)
    join(doubled, label, plus, missing, log)


# ---- dict outputs: scores become metrics, other dicts are data -------------------------------
@step
def counts() -> dict[str, int]:
    return {"<=50K": 100, ">50K": 20}


@step
def evaluate(by_label: dict[str, int]) -> dict[str, float]:
    return {"share_high": by_label[">50K"] / 120, "auc": float("nan")}


@pipeline
def scored() -> None:
    evaluate(counts())


# ---- failures and resume ------------------------------------------------------------------
@step
def prepare(n: int) -> int:
    return n


@step
def fragile(x: int, flag: Path) -> int:
    if flag.exists():
        raise ValueError(f"bad row {x}")
    return x + 1


@step
def after(y: int, label: str | None, shape: tuple[int, int]) -> str:
    return f"{y * 10} {label!r} {shape!r}"


@pipeline
def breaks(
    n: int = 7,
    flag: Path = Path("flag"),
    label: str | None = None,
    shape: tuple[int, int] = (1, 1),
) -> None:
    after(fragile(prepare(n), flag), label, shape)


# ---- retries and timeouts -----------------------------------------------------------------
@step(retries=3, retry_on=ConnectionError, backoff=0)
def flaky(counter: str, fail_times: int, error: str) -> int:
    calls = bump(counter)
    if calls <= fail_times:
        raise ConnectionError(f"try {calls}") if error == "connection" else KeyError(error)
    return calls


@pipeline
def retrying(counter: str = "", fail_times: int = 2, error: str = "connection") -> None:
    flaky(counter, fail_times, error)


@step(timeout=TIMEOUT_S, retries=1, retry_on=StepTimeout, backoff=0)
def sleepy(counter: str) -> int:
    calls = bump(counter)
    Path(f"{counter}.pid{calls}").write_text(str(os.getpid()))
    if calls == 1:
        time.sleep(120)
    return os.getpid()


@step
def after_sleep(pid: int) -> str:
    return f"after {pid}"


@pipeline
def slow_once(counter: str = "") -> None:
    after_sleep(sleepy(counter))


@step(timeout=1)
def stuck() -> int:
    time.sleep(120)
    return 1


@pipeline
def hangs() -> None:
    after_sleep(stuck())


@step
def waits(started: str, release: str) -> int:
    Path(started).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid()


@pipeline
def interruptible(started: str = "", release: str = "") -> None:
    after_sleep(waits(started, release))


@step
def dies() -> int:
    os._exit(3)


@pipeline
def crashes() -> None:
    after_sleep(dies())


# ---- bad input ----------------------------------------------------------------------------
@step
def unstorable(kind: str) -> Any:
    if kind == "lambda":
        return lambda x: x
    return (i for i in range(3))


@step(outputs=("a", "b"))
def pair():
    return 1, 2, 3


@step(resources={"gpu": 1})
def on_gpu(n: int) -> int:
    return n


@pipeline
def misbehaves(kind: str = "lambda", n: int = 1) -> None:
    if kind == "count":
        pair()
    elif kind == "gpu":
        on_gpu(n)
    else:
        unstorable(kind)


# ---- a sweep: one shared step, then a trial step per combination -------------------------
@step
def shared(log: str) -> int:
    note(log, "shared")
    return 5


@step
def trial(base: int, a: int, b: int) -> dict[str, float]:
    return {"score": float(base + a * b)}


@pipeline
def search(a: int = 1, b: int = 10, log: str = "") -> None:
    trial(shared(log), a, b)


# ---- a step that logs through the fluent API while it runs -----------------------------
@step
def fit_epochs(epochs: int) -> dict[str, float]:
    import loopml

    for epoch in range(epochs):
        loopml.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
    loopml.log_param("optimizer", "sgd")
    loopml.set_tag("stage", "fit")
    loopml.log_text("converged", "notes.txt")
    loopml.log_dict({"epochs": epochs}, "config.json")
    return {"final_loss": 1.0 / epochs}


@pipeline
def training(epochs: int = 3):
    fit_epochs(epochs)


@step
def saves_a_file(path: str) -> None:
    import loopml

    Path(path).write_text("weights")
    loopml.log_artifact(path)


@pipeline
def saving(path: str):
    saves_a_file(path)


# ---- two steps that log the same metric; the later one in the graph finishes first -------
@step
def scored_slowly(n: int) -> dict[str, float]:
    time.sleep(1.0)
    return {"loss": 1.0}


@step
def scored_quickly(n: int) -> dict[str, float]:
    return {"loss": 2.0}


@pipeline
def two_scores(n: int = 1):
    scored_slowly(n)
    scored_quickly(n)


# ---- a metric that can be NaN, for ranking ----------------------------------------------
@step
def lossy(loss: float) -> dict[str, float]:
    return {"loss": loss}


@pipeline
def losses(loss: float = 0.5):
    lossy(loss)


# ---- each step reads both outputs of the one before: lineage shares them ----------------
@step(outputs=("a", "b"))
def fork(x: int) -> tuple[int, int]:
    return x + 1, x + 2


@step(outputs=("a", "b"))
def fold(a: int, b: int) -> tuple[int, int]:
    return a + b, a * b % 1000


@pipeline
def braid(depth: int = 12):
    a, b = fork(0)
    for _ in range(depth):
        a, b = fold(a, b)


# ---- GPU steps on the local executor: which devices each one is given -------------------
def meet(folder: str, me: str, other: str) -> None:
    """Wait (up to 30 s) until the step `other` is running too."""
    Path(folder, me).touch()
    deadline = time.monotonic() + 30
    while not Path(folder, other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never ran alongside {me}")
        time.sleep(0.02)


@step(resources={"cpu": 1, "gpu": 1})
def gpu_left(barrier: str) -> str:
    meet(barrier, "left", "right")
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


@step(resources={"cpu": 1, "gpu": 1})
def gpu_right(barrier: str) -> str:
    meet(barrier, "right", "left")
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


@step(resources={"cpu": 1, "gpu": 2})
def gpu_both(barrier: str) -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


@step(resources={"cpu": 1, "gpu": 0.5})
def gpu_half(barrier: str) -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


@step
def cpu_only(barrier: str) -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


@pipeline
def gpu_pair(barrier: str):
    gpu_left(barrier)
    gpu_right(barrier)


@pipeline
def gpu_kinds(barrier: str):
    gpu_both(barrier)
    gpu_half(barrier)
    cpu_only(barrier)
