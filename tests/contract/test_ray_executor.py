"""Pipelines on a real local Ray cluster (2 CPUs, no GPU), started once for the session."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from loopml import pipeline, step
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, StepFailed
from loopml.pipelines.loader import load_pipeline
from loopml.pipelines.results import PipelineResult
from loopml.pipelines.runner import run_pipeline
from loopml.pipelines.sweep import run_sweep
from loopml.tracking import runs

pytestmark = pytest.mark.usefixtures("ray_cluster")

BARRIER_SECONDS = 30.0  # how long a step waits for its partner before giving up


def note(log: str, line: str) -> None:
    """Append a line to the file `log` (several steps may write at once)."""
    with open(log, "a") as file:
        file.write(line + "\n")


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def meet(folder: str, me: str, partner: str) -> bool:
    """Say `me` arrived, then return whether `partner` arrives while `me` is still running."""
    Path(folder, me).touch()
    deadline = time.monotonic() + BARRIER_SECONDS
    while time.monotonic() < deadline:
        if Path(folder, partner).exists():
            return True
        time.sleep(0.02)
    return False


# ---- a chain and a diamond ---------------------------------------------------------------


@step
def numbers(n: int, log: str) -> np.ndarray:
    note(log, "numbers")
    return np.arange(n, dtype=np.int64)


@step
def square(xs: np.ndarray, log: str) -> np.ndarray:
    note(log, "square")
    return xs * xs


@step
def cube(xs: np.ndarray, log: str) -> list[int]:
    note(log, "cube")
    return [int(x) ** 3 for x in xs]


@step
def total(xs: np.ndarray, log: str) -> dict[str, float]:
    note(log, "total")
    return {"total": float(xs.sum())}


@step
def combine(squares: np.ndarray, cubes: list[int], log: str) -> dict[str, float]:
    note(log, "combine")
    return {"squares": float(squares.sum()), "cubes": float(sum(cubes))}


@pipeline
def chain(n: int, log: str) -> None:
    total(square(numbers(n, log), log), log)


@pipeline
def diamond(n: int, log: str) -> None:
    xs = numbers(n, log)
    combine(square(xs, log), cube(xs, log), log)


def stored(result: PipelineResult) -> dict[str, object]:
    return {node: (s.status, s.outputs) for node, s in result.steps.items()}


@pytest.mark.parametrize(
    ("flow", "metrics"),
    [(chain, {"total": 30.0}), (diamond, {"squares": 30.0, "cubes": 100.0})],
    ids=["chain", "diamond"],
)
def test_a_pipeline_gives_the_same_outputs_on_ray_as_on_the_local_executor(
    sqlite_ws: Workspace, tmp_path: Path, flow: object, metrics: dict[str, float]
):
    params = {"n": 5, "log": str(tmp_path / "ran.log")}

    on_ray = run_pipeline(flow, params, executor="ray", progress=False)  # type: ignore[arg-type]
    local = run_pipeline(flow, params, executor="local", cache=False, progress=False)  # type: ignore[arg-type]

    assert on_ray.metrics == local.metrics == metrics
    assert stored(on_ray) == stored(local)  # the same bytes stored for every output
    assert {s.status for s in on_ray.steps.values()} == {"COMPLETED"}
    assert on_ray.output("square").tolist() == [0, 1, 4, 9, 16]


def test_a_rerun_on_ray_reuses_every_output_and_runs_nothing(sqlite_ws: Workspace, tmp_path: Path):
    log = tmp_path / "ran.log"
    first = run_pipeline(diamond, {"n": 4, "log": str(log)}, executor="ray", progress=False)
    ran_first = sorted(lines(log))

    again = run_pipeline(diamond, {"n": 4, "log": str(log)}, executor="ray", progress=False)

    assert ran_first == ["combine", "cube", "numbers", "square"]
    assert sorted(lines(log)) == ran_first  # no step ran a second time
    assert {s.status for s in again.steps.values()} == {"CACHED"}
    assert again.metrics == first.metrics == {"squares": 14.0, "cubes": 36.0}


# ---- values travel between tasks as object refs ----------------------------------------


@dataclass
class Parcel:
    via: str


class PostOffice:
    """Stores a Parcel; one loaded back from the blob store says it came that way."""

    name = "post-office"

    def handles(self, value: object) -> bool:
        return isinstance(value, Parcel)

    def dump(self, value: Parcel) -> bytes:
        return b"parcel"

    def load(self, data: bytes) -> Parcel:
        return Parcel(via="blob store")


@step(materializers=[PostOffice()])
def send() -> Parcel:
    return Parcel(via="object ref")


@step(materializers=[PostOffice()], cache=False)
def receive(parcel: Parcel) -> str:
    return parcel.via


@pipeline
def post() -> None:
    receive(send())


def test_a_downstream_step_gets_the_upstream_value_by_ref_not_from_the_blob_store(
    sqlite_ws: Workspace,
):
    fresh = run_pipeline(post, {}, executor="ray", progress=False)
    # `send` is cached now, so its output exists only in the blob store.
    cached = run_pipeline(post, {}, executor="ray", progress=False)

    assert fresh.output("receive") == "object ref"
    assert cached.steps["send"].status == "CACHED"
    assert cached.output("receive") == "blob store"


def test_a_value_of_a_class_from_a_pipeline_file_reaches_steps_on_other_workers(
    sqlite_ws: Workspace, tmp_path: Path
):
    # The file's folder is not on the Ray workers' path, and the two readers run at once, so
    # at least one of them is on a worker that never imported the file before.
    flow_file = tmp_path / "pipes" / "shipping_flow.py"
    flow_file.parent.mkdir()
    flow_file.write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass
            from pathlib import Path
            import time

            from loopml import pipeline, step

            @dataclass
            class Crate:
                weight: int

            @step
            def pack(weight: int) -> Crate:
                return Crate(weight)

            @step
            def weigh(crate: Crate, folder: str, me: str, partner: str) -> int:
                Path(folder, me).touch()
                deadline = time.monotonic() + 30
                while not Path(folder, partner).exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert isinstance(crate, Crate)
                return crate.weight

            @pipeline
            def shipping(weight: int, folder: str):
                crate = pack(weight)
                weigh(crate, folder, "a", "b")
                weigh(crate, folder, "b", "a")
            """
        )
    )
    flow = load_pipeline(f"{flow_file}:shipping")

    result = run_pipeline(
        flow, {"weight": 7, "folder": str(tmp_path)}, executor="ray", progress=False
    )

    assert (result.output("weigh"), result.output("weigh_2")) == (7, 7)


class Locker:
    """A value Ray cannot pickle (it holds a lock); its materializer stores it anyway."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


class LockerStore:
    name = "locker"

    def handles(self, value: object) -> bool:
        return isinstance(value, Locker)

    def dump(self, value: Locker) -> bytes:
        return b"locker"

    def load(self, data: bytes) -> Locker:
        return Locker()


@step(materializers=[LockerStore()])
def lock_up() -> Locker:
    return Locker()


@step(materializers=[LockerStore()])
def unlock(locker: Locker) -> bool:
    return isinstance(locker, Locker)


@pipeline
def lockers() -> None:
    unlock(lock_up())


def test_a_value_ray_cannot_pickle_reaches_the_next_step_through_the_blob_store(
    sqlite_ws: Workspace,
):
    result = run_pipeline(lockers, {}, executor="ray", progress=False)

    assert result.output("unlock") is True


# ---- resources ---------------------------------------------------------------------------


@step(resources={"cpu": 2}, cache=False)
def heavy(name: str, log: str) -> None:
    note(log, f"{name} start {time.time()!r}")
    time.sleep(0.3)
    note(log, f"{name} end {time.time()!r}")


@pipeline
def two_heavy(log: str) -> None:
    heavy("first", log)
    heavy("second", log)


def test_steps_that_each_need_every_cpu_of_the_cluster_never_overlap(
    sqlite_ws: Workspace, tmp_path: Path
):
    log = tmp_path / "times.log"

    run_pipeline(two_heavy, {"log": str(log)}, executor="ray", progress=False)

    times: dict[tuple[str, str], float] = {}
    for line in lines(log):
        name, event, stamp = line.split()
        times[name, event] = float(stamp)
    first = (times["first", "start"], times["first", "end"])
    second = (times["second", "start"], times["second", "end"])
    assert first[1] <= second[0] or second[1] <= first[0]


@step(resources={"cpu": 1}, cache=False)
def light(folder: str, me: str, partner: str) -> bool:
    return meet(folder, me, partner)


@pipeline
def two_light(folder: str) -> None:
    light(folder, "a", "b")
    light(folder, "b", "a")


def test_steps_that_need_one_cpu_each_run_at_the_same_time(sqlite_ws: Workspace, tmp_path: Path):
    result = run_pipeline(two_light, {"folder": str(tmp_path)}, executor="ray", progress=False)

    # Each step waits for the other to start: both see it only if they ran side by side.
    assert (result.output("light"), result.output("light_2")) == (True, True)


@step(resources={"gpu": 1})
def on_gpu(log: str) -> None:
    note(log, "on_gpu")


@pipeline
def gpu_flow(log: str) -> None:
    on_gpu(log)


def test_a_step_asking_for_a_gpu_the_cluster_lacks_is_refused_before_anything_runs(
    sqlite_ws: Workspace, tmp_path: Path
):
    log = tmp_path / "ran.log"

    with pytest.raises(
        InvalidInput,
        match=r"'on_gpu' asks for 1 GPU\(s\) but the largest machine of the Ray cluster has 0",
    ):
        run_pipeline(gpu_flow, {"log": str(log)}, executor="ray", progress=False)

    assert not log.exists()
    assert runs.list_runs(sqlite_ws) == []


# ---- failures, retries, timeouts ---------------------------------------------------------


@step
def explode(row: int) -> int:
    raise ValueError(f"bad row {row}")


@pipeline
def exploding() -> None:
    explode(7)


def test_a_failing_step_raises_step_failed_with_its_traceback(sqlite_ws: Workspace):
    with pytest.raises(StepFailed, match=r"step 'explode' .* failed: ValueError: bad row 7") as e:
        run_pipeline(exploding, {}, executor="ray", progress=False)

    failed = e.value.result.steps["explode"]
    assert failed.status == "FAILED"
    assert failed.attempts == 1  # Ray did not retry it on its own
    assert 'raise ValueError(f"bad row {row}")' in failed.error
    assert failed.error.startswith("Traceback")


@step(retries=2, backoff=0)
def flaky(log: str) -> int:
    note(log, "try")
    tries = len(lines(Path(log)))
    if tries < 3:
        raise ConnectionError(f"try {tries} lost the connection")
    return tries


@pipeline
def flaky_flow(log: str) -> None:
    flaky(log)


def test_a_step_that_fails_twice_succeeds_on_its_third_attempt(
    sqlite_ws: Workspace, tmp_path: Path
):
    log = tmp_path / "tries.log"

    result = run_pipeline(flaky_flow, {"log": str(log)}, executor="ray", progress=False)

    assert result.output("flaky") == 3
    assert result.steps["flaky"].attempts == 3


@step(retries=1, backoff=0)
def fragile(log: str) -> int:
    note(log, "try")
    if len(lines(Path(log))) == 1:
        os._exit(3)  # the worker process dies under the step
    return 2


@pipeline
def fragile_flow(log: str) -> None:
    fragile(log)


def test_a_step_whose_worker_dies_is_retried_on_another(sqlite_ws: Workspace, tmp_path: Path):
    result = run_pipeline(
        fragile_flow, {"log": str(tmp_path / "tries.log")}, executor="ray", progress=False
    )

    assert result.output("fragile") == 2
    assert result.steps["fragile"].attempts == 2


@step(timeout=5, cache=False)  # room for Ray to start a worker first
def stuck(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(120)


@pipeline
def stuck_flow(pid_file: str) -> None:
    stuck(pid_file)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_step_past_its_timeout_is_stopped(sqlite_ws: Workspace, tmp_path: Path):
    pid_file = tmp_path / "pid"

    with pytest.raises(StepFailed, match=r"StepTimeout: step 'stuck' ran past its timeout of 5 s"):
        run_pipeline(stuck_flow, {"pid_file": str(pid_file)}, executor="ray", progress=False)

    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 30  # Ray kills the worker process soon after the cancel
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


# ---- sweeps and addresses ----------------------------------------------------------------


@step
def score(n: int) -> dict[str, float]:
    return {"score": float(n * n)}


@pipeline
def scoring(n: int) -> None:
    score(n)


def test_a_sweep_runs_its_trials_on_ray(sqlite_ws: Workspace):
    sweep = run_sweep(scoring, {"n": [2, 3]}, metric="score", executor="ray", progress=False)

    assert [(t.params, t.status, t.value) for t in sweep.trials] == [
        ({"n": 3}, "FINISHED", 9.0),
        ({"n": 2}, "FINISHED", 4.0),
    ]
    assert sweep.best is sweep.trials[0]


def test_an_unreachable_ray_address_is_a_clear_error_at_once():
    # In a fresh interpreter: this session's process is connected to the test cluster.
    code = (
        "from loopml.pipelines.executors.ray import RayExecutor\n"
        "RayExecutor('ray://127.0.0.1:1').start()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "loopml.errors.InvalidInput: cannot reach the Ray cluster at 'ray://127.0.0.1:1' "
            "(Connection refused); start it (`ray start --head`)"
        )
    )
