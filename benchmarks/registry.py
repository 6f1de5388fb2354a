"""Round-trip a 100-tree random forest through LoopML's registry and MLflow's; time predict.

Usage: `.venv/bin/python benchmarks/registry.py [--repeat 5] [--calls 500] [--skip-mlflow]`.
The forest is fitted on scikit-learn's bundled breast-cancer data (nothing is downloaded) and
logged with five input rows, registered under one name, on each side's defaults. MLflow stays
out of LoopML's virtualenv: it lives in `.venv-mlflow` (created on first use, as tracking.py
does), and every phase runs in its own process (`--peer NAME --phase PHASE --workdir DIR
--json`): logging on a fresh folder; a cold load (imports of the registry code, the store
opened, no model cache) in a fresh process, `--repeat` times with the sides taking turns; then
warm loads and single-row predicts, timed through the loaded model and on the raw estimator
inside it (the floor), alternating call by call. Targets are marked met or missed, never
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracking import median_time, mlflow_python

TREES = 100
NAME = "forest"
URI = f"models:/{NAME}/1"
EXAMPLE_ROWS = 5
REPEAT = 5  # log_model calls, cold loads (each in a fresh process) and warm loads (medians)
CALLS = 500  # single-row predicts per side, each one raw and one through the loaded model
LOAD_TARGET = 3.0  # LoopML's load_model at least this many times faster than MLflow's pyfunc
OVERHEAD_TARGET_US = 50.0  # LoopML's predict over the raw estimator's, median of CALLS
TREE_TYPE = "sklearn.tree._tree.Tree"
LOADERS = {"loopml": ("loopml",), "mlflow": ("pyfunc", "sklearn")}

Predict = Callable[[Any], Any]


def training_data() -> tuple[Any, Any]:
    """Return the bundled breast-cancer data as a DataFrame (30 float columns) and labels."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


class LoopMLSide:
    """LoopML's fluent API on the workspace in `workdir` (made there when `create`)."""

    def __init__(self, workdir: Path, *, create: bool) -> None:
        os.environ["LOOPML_HOME"] = str(workdir)
        import loopml
        from loopml.core.workspace import Workspace

        if create:
            Workspace.init(workdir)
        loopml.set_workspace(workdir)
        self.loopml = loopml
        self.version = loopml.__version__
        self.cache = workdir / ".loopml" / "models"

    def log(self, model: Any, example: Any) -> float:
        """Log and register `model` in a run of its own; return the seconds of `log_model`."""
        with self.loopml.start_run():
            began = time.perf_counter()
            self.loopml.log_model(model, name=NAME, input_example=example)
            return time.perf_counter() - began

    def load(self, loader: str) -> tuple[Any, Predict, Predict]:
        """Return the loaded model, its predict, and the predict of the estimator inside."""
        model = self.loopml.load_model(URI)
        return model, model.predict, model.native.predict

    def own_cost_us(self, model: Any, row: Any, calls: int) -> float:
        """Return the median microseconds of `predict` around an estimator that does nothing.

        The difference from the raw estimator is tens of microseconds under milliseconds of
        forest; with the forest taken out, what is left is LoopML's own work alone.
        """
        from loopml.registry import flavors
        from loopml.registry.package import LoadedModel

        hollow = LoadedModel(model.package, _Constant(), flavors.by_name(model.package.flavor))
        clock = time.perf_counter_ns
        took = []
        for _ in range(calls):
            began = clock()
            hollow.predict(row)
            took.append(clock() - began)
        return statistics.median(took) / 1000


class _Constant:
    """An estimator that predicts 0 for every row at no cost."""

    def predict(self, data: Any) -> Any:
        import numpy as np

        return np.zeros(len(data))


class MLflowSide:
    """MLflow's fluent API on a fresh SQLite file in `workdir`, its artifacts beside it."""

    def __init__(self, workdir: Path, *, create: bool, serializer: str) -> None:
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
        if create:
            location = (workdir / "artifacts").as_uri()
            experiment = mlflow.create_experiment("registry", artifact_location=location)
            mlflow.set_experiment(experiment_id=experiment)
        self.mlflow = mlflow
        self.version = mlflow.__version__
        self.cache = None
        # skops (MLflow's default) refuses a forest's tree type unless it is named as trusted.
        trusted = {"skops_trusted_types": [TREE_TYPE]} if serializer == "skops" else {}
        self.format = {"serialization_format": serializer, **trusted}

    def log(self, model: Any, example: Any) -> float:
        """Log and register `model` in a run of its own; return the seconds of `log_model`."""
        with self.mlflow.start_run():
            began = time.perf_counter()
            self.mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=NAME,
                input_example=example,
                **self.format,
            )
            return time.perf_counter() - began

    def load(self, loader: str) -> tuple[Any, Predict, Predict]:
        """Return the model `mlflow.<loader>.load_model` gives, its predict, and the raw one."""
        if loader == "sklearn":
            model = self.mlflow.sklearn.load_model(URI)
            return model, model.predict, model.predict
        model = self.mlflow.pyfunc.load_model(URI)
        return model, model.predict, model.get_raw_model().predict


def open_side(args: argparse.Namespace, *, create: bool) -> LoopMLSide | MLflowSide:
    """Return the side `--peer` names, on `--workdir`."""
    workdir = args.workdir
    if args.peer == "loopml":
        return LoopMLSide(workdir, create=create)
    return MLflowSide(workdir, create=create, serializer=args.mlflow_format)


def log_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Fit the forest, then log and register it `--repeat` times; return the timings."""
    from sklearn.ensemble import RandomForestClassifier

    features, labels = training_data()
    model = RandomForestClassifier(n_estimators=TREES, random_state=0).fit(features, labels)
    args.workdir.mkdir(parents=True)
    side = open_side(args, create=True)
    seconds = [side.log(model, features.iloc[:EXAMPLE_ROWS]) for _ in range(args.repeat)]
    return {
        "version": side.version,
        "first_log_ms": seconds[0] * 1000,
        "log_ms": statistics.median(seconds[1:]) * 1000,
        "pickle_bytes": len(pickle.dumps(model, protocol=5)),
        "sklearn": _sklearn_version(),
    }


def cold_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Open the side, then load the model once with nothing cached; return both timings."""
    # Unpickling imports scikit-learn's forest modules; import them first on both sides, so
    # the cold load times the registry, not scikit-learn.
    import sklearn.ensemble  # noqa: F401

    began = time.perf_counter()
    side = open_side(args, create=False)
    figures = {"import_ms": (time.perf_counter() - began) * 1000}
    if side.cache is not None and side.cache.exists():  # made by the previous cold process
        shutil.rmtree(side.cache)
    began = time.perf_counter()
    side.load(args.loader)
    figures["cold_ms"] = (time.perf_counter() - began) * 1000
    return figures


def warm_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Load `--repeat` times after a first load; time single-row predict where it serves."""
    import sklearn.ensemble  # noqa: F401

    loader = args.loader
    side = open_side(args, create=False)
    side.load(loader)  # the cold load, timed by cold_phase
    figures = {"warm_ms": median_time(lambda: side.load(loader), args.repeat)[0] * 1000}
    if side.cache is not None:
        # LoopML keeps verified files under .loopml/models; this is a load that rebuilds them.
        cache = side.cache

        def uncached() -> None:
            shutil.rmtree(cache)
            side.load(loader)

        figures["uncached_ms"] = median_time(uncached, args.repeat)[0] * 1000
    if loader in ("loopml", "pyfunc"):
        model, served, raw = side.load(loader)
        row = training_data()[0].iloc[[0]]
        figures.update(predict_latency(served, raw, row, args.calls))
        if isinstance(side, LoopMLSide):
            figures["own_us"] = side.own_cost_us(model, row, args.calls * 10)
    return figures


def predict_latency(served: Predict, raw: Predict, row: Any, calls: int) -> dict[str, Any]:
    """Time `calls` single-row predicts each way, alternating which goes first; microseconds."""
    import numpy as np

    same = bool(np.array_equal(np.asarray(served(row)), np.asarray(raw(row))))
    for _ in range(20):  # first calls fill caches on both paths
        served(row)
        raw(row)
    clock = time.perf_counter_ns
    took: dict[str, list[int]] = {"served": [], "raw": []}
    for call in range(calls):
        order = (
            (("raw", raw), ("served", served)) if call % 2 else (("served", served), ("raw", raw))
        )
        for label, predict in order:
            began = clock()
            predict(row)
            took[label].append(clock() - began)
    # The median of paired differences: machine load drifts slowly, call pairs see the same.
    gaps = [s - r for s, r in zip(took["served"], took["raw"], strict=True)]
    return {
        "same_predictions": same,
        "floor_us": statistics.median(took["raw"]) / 1000,
        "predict_us": statistics.median(took["served"]) / 1000,
        "predict_p99_us": float(np.percentile(took["served"], 99)) / 1000,
        "overhead_us": statistics.median(gaps) / 1000,
    }


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


PHASES = {"log": log_phase, "cold": cold_phase, "warm": warm_phase}


def compile_loopml() -> None:
    """Byte-compile LoopML (untimed), as pip did for MLflow: an editable install has none."""
    import loopml

    package = str(Path(loopml.__file__).parent)
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)


def spawn(python: Path, peer: str, phase: str, args: argparse.Namespace, loader: str) -> Any:
    """Run one phase of one side in a fresh process with `python`; return its figures."""
    # Neither side may find a store, workspace or setting of the caller's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "MLFLOW_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # no network calls from a benchmark
    # MLflow 3.17 loads no model, in any format, without this; LoopML verifies digests instead.
    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    command = [str(python), __file__, "--peer", peer, "--phase", phase, "--loader", loader]
    command += ["--workdir", str(args.workdir / peer), "--repeat", str(args.repeat)]
    command += ["--calls", str(args.calls), "--mlflow-format", args.mlflow_format, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"{peer} {phase} {loader}: exit {done.returncode}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace, mlflow: Path | None, say: Callable[[str], None]) -> Any:
    """Log on each side, load cold with the sides taking turns, then warm; return the figures."""
    sides = [("loopml", Path(sys.executable))] + ([("mlflow", mlflow)] if mlflow else [])
    loads = [(peer, python, loader) for peer, python in sides for loader in LOADERS[peer]]
    figures: dict[str, dict[str, Any]] = {}
    for peer, python in sides:
        say(f"{peer}: log_model x {args.repeat}")
        figures[peer] = {"log": spawn(python, peer, "log", args, "")}
    colds: dict[str, list[dict[str, float]]] = {loader: [] for _, _, loader in loads}
    for turn in range(args.repeat):
        # Turn by turn, so that the machine's load drifts over every side alike.
        say(f"cold loads, turn {turn + 1} of {args.repeat}")
        for peer, python, loader in loads:
            colds[loader].append(spawn(python, peer, "cold", args, loader))
    for peer, python, loader in loads:
        say(f"{peer} {loader}: warm loads and predict")
        figures[peer][loader] = spawn(python, peer, "warm", args, loader)
        for key in ("import_ms", "cold_ms"):
            figures[peer][loader][key] = statistics.median(cold[key] for cold in colds[loader])
    return figures


def render(ours: dict[str, Any], theirs: dict[str, Any] | None, args: argparse.Namespace) -> None:
    """Print the comparison table."""
    from rich.console import Console
    from rich.table import Table

    empty: dict[str, Any] = {}
    log, loaded = ours["log"], ours["loopml"]
    their_log, pyfunc, sklearn = (
        (theirs["log"], theirs["pyfunc"], theirs["sklearn"]) if theirs else (empty, empty, empty)
    )
    peer = f"MLflow {their_log['version']} (SQLite)" if theirs else "MLflow (skipped)"
    versions = f"scikit-learn {log['sklearn']}"
    if theirs and their_log["sklearn"] != log["sklearn"]:
        versions += f" (MLflow's side: {their_log['sklearn']})"
    table = Table(
        title=f"Registry: LoopML {log['version']} vs {peer}",
        caption=(
            f"{TREES}-tree random forest on breast cancer, pickle "
            f"{log['pickle_bytes'] / 1e6:.1f} MB, {versions}\n"
            f"MLflow stores it as {args.mlflow_format}; its predict rows are pyfunc's\n"
            "Cold: first load in a fresh process (imports, store, empty cache)\n"
            f"Medians of {args.repeat} (log, loads), {args.calls} (predict) · "
            "Ratio: MLflow ÷ LoopML\n"
            f"Python {sys.version.split()[0]} · {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.1f}"
        ),
    )
    for column in ("Measure", "LoopML", "MLflow", "Ratio", "Target", ""):
        table.add_column(column, justify="left" if column == "Measure" else "right", no_wrap=True)

    def row(
        label: str,
        key: str,
        mine: dict[str, Any],
        other: dict[str, Any],
        *,
        ratio: bool = True,
        target: str = "",
        met: bool | None = None,
    ) -> None:
        value, their_value = mine[key], other.get(key)
        times = f"{their_value / value:,.1f}x" if ratio and their_value is not None else "—"
        mark = "" if met is None else _mark(met)
        table.add_row(label, _shown(value), _shown(their_value), times, target, mark)

    row("log_model, 1st in process, ms", "first_log_ms", log, their_log)
    row("log_model, ms", "log_ms", log, their_log)
    row("import loopml / mlflow, ms", "import_ms", loaded, pyfunc)
    for kind in ("cold", "warm"):
        key = f"{kind}_ms"
        met = pyfunc[key] / loaded[key] >= LOAD_TARGET if pyfunc else None
        row(f"load_model {kind}, ms", key, loaded, pyfunc, target=f"≥ {LOAD_TARGET:g}x", met=met)
        row("  vs mlflow.sklearn", key, loaded, sklearn)
    row("load_model, cache emptied, ms", "uncached_ms", loaded, empty)
    row("predict 1 row, raw model, µs", "floor_us", loaded, pyfunc, ratio=False)
    row("predict 1 row, loaded, µs", "predict_us", loaded, pyfunc, ratio=False)
    overhead = loaded["overhead_us"]
    row(
        "  overhead, paired, µs",
        "overhead_us",
        loaded,
        pyfunc,
        target=f"< {OVERHEAD_TARGET_US:g}",
        met=overhead < OVERHEAD_TARGET_US,
    )
    row("  LoopML's checks alone, µs", "own_us", loaded, empty)

    console = Console()
    console.print(table)
    for name, side in (("LoopML", loaded), ("MLflow pyfunc", pyfunc)):
        if side and not side["same_predictions"]:
            console.print(f"[red]{name}'s loaded model predicts differently from its estimator.[/]")


def _shown(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _mark(met: bool) -> str:
    return "[green]met[/]" if met else "[red]missed[/]"


def main() -> None:
    """Parse the flags, measure, and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=REPEAT, help="log_model calls, loads")
    parser.add_argument("--calls", type=int, default=CALLS, help="single-row predicts per side")
    parser.add_argument("--peer", choices=tuple(LOADERS), help="run one phase of one side here")
    parser.add_argument("--phase", choices=tuple(PHASES), default="log", help="with --peer")
    parser.add_argument("--loader", default="loopml", help="with --peer mlflow: pyfunc, sklearn")
    parser.add_argument("--workdir", type=Path, help="with --peer: the folder to use")
    parser.add_argument(
        "--mlflow-format",
        choices=("cloudpickle", "skops"),
        default="cloudpickle",
        help="how MLflow stores the forest (cloudpickle: as LoopML does; skops: its default)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--skip-mlflow", action="store_true", help="measure LoopML only")
    args = parser.parse_args()
    if args.repeat < 2 or args.calls < 1:
        parser.error("--repeat must be 2 or more and --calls 1 or more")
    if args.peer:
        if args.workdir is None:
            parser.error("--peer needs --workdir")
        args.workdir = args.workdir.resolve()
        print(json.dumps(PHASES[args.phase](args)))
        return

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    compile_loopml()
    mlflow = None if args.skip_mlflow else mlflow_python(say)
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        args.workdir = Path(tmp).resolve()
        figures = measure(args, mlflow, say)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        render(figures["loopml"], figures.get("mlflow"), args)


if __name__ == "__main__":
    main()
