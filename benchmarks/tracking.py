"""Run one tracking workload on LoopML and on MLflow (SQLite) and print both with their ratio.

Usage: `.venv/bin/python benchmarks/tracking.py [--scale 0.2] [--skip-mlflow]` (or `make bench`).
MLflow stays out of LoopML's virtualenv: it lives in `.venv-mlflow` (created on first use), and
each side runs in its own process (`--peer NAME --workdir DIR --json`) on a fresh folder. Every
timing lasts until the data is in the store. Targets are marked met or missed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MLFLOW_VENV = ROOT / ".venv-mlflow"
MLFLOW_SPEC = "mlflow==3.17.*"

KEYS = 50  # (a) and (b): KEYS metrics x STEPS steps = 5,000 values
STEPS = 100
RUNS = 1000  # (c)
FILTER = "metrics.m0 < 0.5 and params.p1 = 'v3'"  # AND only: MLflow's language has no OR
ORDER_BY = ["metrics.m1 DESC"]
MAX_RESULTS = 100
SEARCHES = 21  # (c) reports the median search (many: single searches are noisy)
HISTORY_READS = 20  # (d) reports the median read
CLI_CALLS = 5

Point = tuple[str, float, int]  # key, value, step


class Workload:
    """The data both sides log: the same values, in the same order, at any scale."""

    def __init__(self, scale: float) -> None:
        self.steps = max(2, round(STEPS * scale))
        self.runs = max(20, round(RUNS * scale))
        rng = random.Random(1)
        self.points: list[Point] = [
            (f"k{k}", rng.random(), step) for step in range(self.steps) for k in range(KEYS)
        ]
        # p1 cycles v0..v3 and m0 is uniform, so about one run in eight matches the filter:
        # more than MAX_RESULTS at full scale, so the order decides which runs come back.
        self.run_data = [
            (
                f"run-{i:05d}",
                {f"p{j}": f"v{(i + j) % 4}" for j in range(10)},
                {"m0": rng.random(), "m1": rng.random(), "m2": rng.random()},
            )
            for i in range(self.runs)
        ]


class LoopMLPeer:
    """LoopML's fluent API on a fresh workspace in `workdir`."""

    name = "loopml"

    def __init__(self, workdir: Path) -> None:
        os.environ["LOOPML_HOME"] = str(workdir)
        import loopml
        from loopml.core.workspace import Workspace

        Workspace.init(workdir)
        loopml.set_workspace(workdir)
        self.loopml = loopml
        self.version = loopml.__version__
        self.log_metric = loopml.log_metric
        self.experiment = "warmup"
        self.run: Any = None

    def use_experiment(self, name: str) -> None:
        """Log the next runs to experiment `name`."""
        self.experiment = name

    def start(self, run_name: str) -> None:
        """Start a run and make it current."""
        self.run = self.loopml.start_run(experiment=self.experiment, run_name=run_name)

    def run_id(self) -> str:
        """Return the current run's id."""
        return str(self.run.id)

    def log_batch(self, points: list[Point]) -> None:
        """Log points through the batch API: one `log_metrics` call per step."""
        by_step: dict[int, dict[str, float]] = {}
        for key, value, step in points:
            by_step.setdefault(step, {})[key] = value
        for step, metrics in by_step.items():
            self.loopml.log_metrics(metrics, step=step)

    def log_params(self, params: dict[str, str]) -> None:
        """Log params in one call."""
        self.loopml.log_params(params)

    def end(self) -> None:
        """End the current run; returns once its metrics are in the store."""
        self.loopml.end_run()

    def search(self, experiment: str = "runs") -> list[str]:
        """Return the names of the runs the benchmark search finds in `experiment`, in order."""
        found = self.loopml.search_runs(
            experiment, filter=FILTER, order_by=ORDER_BY, max_results=MAX_RESULTS
        )
        return [run.name for run in found]

    def history(self, run_id: str, key: str) -> int:
        """Read one metric's history and return its length."""
        return len(self.loopml.get_metric_history(run_id, key))


class MLflowPeer:
    """MLflow's fluent API (and its client where fluent has no peer) on a fresh SQLite file."""

    name = "mlflow"

    def __init__(self, workdir: Path) -> None:
        import mlflow
        from mlflow.entities import Metric

        mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
        self.mlflow = mlflow
        self.metric = Metric
        self.client = mlflow.MlflowClient()
        self.version = mlflow.__version__
        self.log_metric = mlflow.log_metric
        self.artifacts = (workdir / "artifacts").as_uri()
        self.experiment_ids: dict[str, str] = {}
        self.use_experiment("warmup")

    def use_experiment(self, name: str) -> None:
        """Log the next runs to experiment `name`, created with its artifacts in the workdir."""
        if name not in self.experiment_ids:
            self.experiment_ids[name] = self.mlflow.create_experiment(
                name, artifact_location=f"{self.artifacts}/{name}"
            )
        self.mlflow.set_experiment(experiment_id=self.experiment_ids[name])

    def start(self, run_name: str) -> None:
        """Start a run and make it active."""
        self.mlflow.start_run(run_name=run_name)

    def run_id(self) -> str:
        """Return the active run's id."""
        return str(self.mlflow.active_run().info.run_id)

    def log_batch(self, points: list[Point]) -> None:
        """Log points through `log_batch`, in chunks of 1,000 (its limit per call)."""
        now = int(time.time() * 1000)
        metrics = [self.metric(key, value, now, step) for key, value, step in points]
        run_id = self.run_id()
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def log_params(self, params: dict[str, str]) -> None:
        """Log params in one call."""
        self.mlflow.log_params(params)

    def end(self) -> None:
        """End the active run."""
        self.mlflow.end_run()

    def search(self, experiment: str = "runs") -> list[str]:
        """Return the names of the runs the benchmark search finds in `experiment`, in order."""
        found = self.client.search_runs(
            [self.experiment_ids[experiment]],
            filter_string=FILTER,
            order_by=ORDER_BY,
            max_results=MAX_RESULTS,
        )
        return [run.info.run_name for run in found]

    def history(self, run_id: str, key: str) -> int:
        """Read one metric's history and return its length."""
        return len(self.client.get_metric_history(run_id, key))


def measure(peer: LoopMLPeer | MLflowPeer, work: Workload) -> dict[str, Any]:
    """Run the workload on `peer` and return its figures."""
    # Warm up, so that neither side's first-call costs (imports, caches) land in a timing.
    peer.start("warmup")
    warmup_id = peer.run_id()
    peer.log_params({"p": "v"})
    peer.log_metric("k", 1.0, step=0)
    peer.log_batch([("k", 2.0, 1), ("j", 3.0, 1)])
    peer.end()
    peer.history(warmup_id, "k")
    peer.search("warmup")

    peer.use_experiment("logging")
    peer.start("single")
    single_id = peer.run_id()
    log_metric = peer.log_metric
    began = time.perf_counter()
    for key, value, step in work.points:
        log_metric(key, value, step=step)
    peer.end()
    single_s = time.perf_counter() - began

    peer.start("batch")
    began = time.perf_counter()
    peer.log_batch(work.points)
    peer.end()
    batch_s = time.perf_counter() - began

    peer.use_experiment("runs")
    began = time.perf_counter()
    for name, params, metrics in work.run_data:
        peer.start(name)
        peer.log_params(params)
        for key, value in metrics.items():
            log_metric(key, value, step=0)
        peer.end()
    create_s = time.perf_counter() - began

    search_s, names = median_time(peer.search, SEARCHES)
    history_s, length = median_time(lambda: peer.history(single_id, "k0"), HISTORY_READS)
    return {
        "peer": peer.name,
        "version": peer.version,
        "values": len(work.points),
        "runs": work.runs,
        "single_calls_per_s": len(work.points) / single_s,
        "batch_values_per_s": len(work.points) / batch_s,
        "create_runs_s": create_s,
        "search_ms": search_s * 1000,
        "search_names": names,
        "history_ms": history_s * 1000,
        "history_points": length,
    }


def median_time(call: Callable[[], Any], times: int) -> tuple[float, Any]:
    """Return the median seconds of `times` calls, and the last call's result."""
    seconds = []
    result = None
    for _ in range(times):
        began = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), result


def run_peer(name: str, workdir: Path | None, scale: float) -> dict[str, Any]:
    """Measure one side in this process, on `workdir` (a fresh temporary folder by default)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        folder = (workdir or Path(tmp)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        peer = LoopMLPeer(folder) if name == "loopml" else MLflowPeer(folder)
        return measure(peer, Workload(scale))


def mlflow_python(say: Callable[[str], None]) -> Path:
    """Return the Python of `.venv-mlflow`, creating the virtualenv and installing MLflow first."""
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        say(f"Creating {MLFLOW_VENV.name}/ for MLflow (once)...")
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
    if not (MLFLOW_VENV / "bin" / "mlflow").exists():  # written last by a finished install
        say(f"Installing {MLFLOW_SPEC} into {MLFLOW_VENV.name}/ (a minute or two)...")
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, MLFLOW_SPEC], check=True)
    return python


def spawn_peer(python: Path, name: str, scale: float) -> dict[str, Any]:
    """Measure one side in a fresh process with `python`, on a fresh folder, and return it."""
    env = dict(os.environ)
    for var in ("LOOPML_HOME", "LOOPML_STORE_URI", "LOOPML_BLOB_URI", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # no network calls from a benchmark
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as workdir:
        command = [str(python), __file__, "--peer", name, "--workdir", workdir]
        command += ["--scale", str(scale), "--json"]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"the {name} half failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cli_help_ms() -> float:
    """Return the median wall time of `loopml --help` in milliseconds."""
    exe = Path(sys.executable).with_name("loopml")
    command = [str(exe)] if exe.exists() else [shutil.which("loopml") or "loopml"]
    subprocess.run([*command, "--help"], capture_output=True, check=True)  # warm the page cache
    seconds, _ = median_time(
        lambda: subprocess.run([*command, "--help"], capture_output=True, check=True), CLI_CALLS
    )
    return seconds * 1000


def render(
    ours: dict[str, Any], theirs: dict[str, Any] | None, cli_ms: float, scale: float
) -> None:
    """Print the comparison table."""
    from rich.console import Console
    from rich.table import Table

    peer = f"MLflow {theirs['version']} (SQLite)" if theirs else "MLflow (skipped)"
    table = Table(
        title=f"Tracking: LoopML {ours['version']} vs {peer}",
        caption=(
            f"(a), (b): {ours['values']:,} values · scale {scale:g} · Python "
            f"{sys.version.split()[0]} · {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n"
            "Every timing lasts until the data is in the store."
        ),
    )
    for column in ("Measure", "LoopML", "MLflow", "Ratio", "Target", ""):
        table.add_column(column, justify="left" if column == "Measure" else "right", no_wrap=True)

    def row(label: str, key: str, target: float, *, higher_is_better: bool) -> None:
        mine = ours[key]
        shown = _count if higher_is_better else _fixed
        if theirs is None:
            table.add_row(label, shown(mine), "—", "—", f"≥ {target:g}x", "")
            return
        ratio = mine / theirs[key] if higher_is_better else theirs[key] / mine
        ratio_text = f"{ratio:,.1f}x"
        table.add_row(
            label,
            shown(mine),
            shown(theirs[key]),
            ratio_text,
            f"≥ {target:g}x",
            _mark(ratio >= target),
        )

    row("(a) log_metric calls/s", "single_calls_per_s", 100, higher_is_better=True)
    row("(b) batched values/s", "batch_values_per_s", 10, higher_is_better=True)
    row(f"(c) create {ours['runs']:,} runs, s", "create_runs_s", 10, higher_is_better=False)
    row(f"(c) search top {MAX_RESULTS}, ms", "search_ms", 10, higher_is_better=False)
    history = f"(d) {ours['history_points']}-step history, ms"
    row(history, "history_ms", 1, higher_is_better=False)
    table.add_row("loopml --help, ms", _count(cli_ms), "—", "—", "< 200", _mark(cli_ms < 200))

    console = Console()
    console.print(table)
    if theirs is not None:
        found = len(ours["search_names"])
        if ours["search_names"] == theirs["search_names"]:
            console.print(f"Both searches returned the same {found} runs in the same order.")
        else:
            console.print("[red]The searches disagree:[/] the workloads are not comparable.")


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _fixed(value: float) -> str:
    return f"{value:,.2f}"


def _mark(met: bool) -> str:
    return "[green]✓[/]" if met else "[red]✗[/]"


def main() -> None:
    """Parse the flags, measure, and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the counts (0.2: quick)")
    parser.add_argument("--peer", choices=("loopml", "mlflow"), help="measure one side here")
    parser.add_argument("--workdir", type=Path, help="with --peer: the folder to use")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--skip-mlflow", action="store_true", help="measure LoopML only")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.peer:
        print(json.dumps(run_peer(args.peer, args.workdir, args.scale)))
        return

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    say("Measuring LoopML...")
    ours = spawn_peer(Path(sys.executable), "loopml", args.scale)
    theirs = None
    if not args.skip_mlflow:
        python = mlflow_python(say)
        say("Measuring MLflow (a minute or more at scale 1)...")
        theirs = spawn_peer(python, "mlflow", args.scale)
    cli_ms = cli_help_ms()
    if args.json:
        print(json.dumps({"loopml": ours, "mlflow": theirs, "cli_help_ms": cli_ms}, indent=2))
    else:
        render(ours, theirs, cli_ms, args.scale)


if __name__ == "__main__":
    main()
