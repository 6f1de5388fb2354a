"""Time a chain of trivial pipeline steps on LoopML (local and Ray) and on Prefect 3.

Usage: `.venv/bin/python benchmarks/pipelines.py [--steps 20] [--skip-ray] [--skip-peer]
[--profile] [--json]` (or `make bench-pipelines`). The chain is N steps that each return their
input + 1, written as a file of `@step` functions and a `@pipeline` (for Prefect: `@task`s with
the cache policy INPUTS + TASK_SOURCE, called in turn by a `@flow`). Each side runs in its own
process on a fresh folder: a one-step pipeline first, twice (imports, worker or server start-up;
then the fixed cost of a cached run), then the chain uncached, then the chain fully cached. Each
figure is one run, wall clock; per-step overhead is (run - calling the N plain functions
directly) / N. `--profile` adds a cProfile of one more cached re-run on the local executor.

Prefect stays out of LoopML's virtualenv: it lives in `.venv-prefect` (created on first use)
and runs offline on its ephemeral local API server, with PREFECT_HOME in the run folder and
analytics off. Defaults otherwise, as a user gets them: at its end each flow run joins its
heartbeat thread, which sleeps in 1 s slices, so 0 to 1 s of every Prefect run is that wait.
Targets are marked met or missed, never asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PREFECT_VENV = ROOT / ".venv-prefect"
PREFECT_SPEC = "prefect==3.*"

STEPS = 20
CACHED_TARGET_S = 1.0  # a fully cached re-run of the 20 steps, local executor
RAY_CPUS = 2
MODULE = "bench_chain"  # the generated file's name: bench_chain.py

Say = Callable[[str], None]


def chain_source(tool: str, steps: int) -> str:
    """Return the text of a module with `steps` trivial steps, a chain of them, and a warm-up."""
    if tool == "loopml":
        lines = ["from loopml import pipeline, step", ""]
        decorator, wrapper = "@step", "@pipeline"
    else:
        lines = [
            "from prefect import flow, task",
            "from prefect.cache_policies import INPUTS, TASK_SOURCE",
            "",
        ]
        decorator, wrapper = "@task(cache_policy=INPUTS + TASK_SOURCE)", "@flow"
    for i in range(steps):
        lines += ["", decorator, f"def s{i:03d}(x: int) -> int:", "    return x + 1", ""]
    lines += ["", decorator, "def warm(x: int) -> int:", "    return x + 1", ""]
    # LoopML's steps are looked up from the run's outputs; Prefect's flow returns the last
    # value and each task's final state name, so the caller can see that all came from cache.
    if tool == "loopml":
        lines += ["", wrapper, "def warmup(start: int = 0) -> None:", "    warm(start)", ""]
        lines += ["", wrapper, "def chain(start: int = 0) -> None:", "    x = start"]
        lines += [f"    x = s{i:03d}(x)" for i in range(steps)]
    else:
        lines += ["", wrapper, "def warmup(start: int = 0) -> int:", "    return warm(start)", ""]
        lines += ["", wrapper, "def chain(start: int = 0) -> tuple[int, list[str]]:"]
        lines += ["    x, states = start, []"]
        for i in range(steps):
            lines += [
                f"    state = s{i:03d}(x, return_state=True)",
                "    states.append(state.name)",
                "    x = state.result()",
            ]
        lines += ["    return x, states"]
    lines += ["", "", f"STEPS = [{', '.join(f's{i:03d}' for i in range(steps))}]", ""]
    return "\n".join(lines)


def write_module(workdir: Path, tool: str, steps: int) -> Any:
    """Write the chain module into `workdir` and import it."""
    import importlib

    (workdir / f"{MODULE}.py").write_text(chain_source(tool, steps))
    sys.path.insert(0, str(workdir))
    return importlib.import_module(MODULE)


def baseline_s(functions: list[Callable[[int], int]]) -> float:
    """Return the seconds of calling the plain functions in a chain (best of 5)."""
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        x = 0
        for fn in functions:
            x = fn(x)
        best = min(best, time.perf_counter() - began)
    return best


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Return the wall seconds of one call, and its result."""
    began = time.perf_counter()
    result = call()
    return time.perf_counter() - began, result


def measure_loopml(workdir: Path, steps: int, executor: str, profile: bool) -> dict[str, Any]:
    """Measure LoopML on a fresh workspace in `workdir` with `executor` ("local" or "ray")."""
    began = time.perf_counter()
    import loopml
    from loopml.core.workspace import Workspace, set_workspace
    from loopml.pipelines.loader import load_pipeline
    from loopml.pipelines.runner import run_pipeline

    Workspace.init(workdir)
    set_workspace(workdir)
    module = write_module(workdir, "loopml", steps)
    figures: dict[str, Any] = {"version": loopml.__version__, "executor": executor}
    figures["import_s"] = time.perf_counter() - began
    if executor == "ray":
        import ray

        seconds, _ = timed(
            lambda: ray.init(num_cpus=RAY_CPUS, include_dashboard=False, configure_logging=False)
        )
        figures["startup_s"] = seconds
    path = workdir / f"{MODULE}.py"
    warmup, chain = load_pipeline(f"{path}:warmup"), load_pipeline(f"{path}:chain")

    def run(pipeline: Any) -> Any:
        return run_pipeline(pipeline, {}, executor=executor, progress=False)

    figures["warmup_s"], _ = timed(lambda: run(warmup))
    figures["one_cached_s"], _ = timed(lambda: run(warmup))
    figures["baseline_s"] = baseline_s([s.fn for s in module.STEPS])
    last = f"s{steps - 1:03d}"
    for label in ("first", "cached"):
        seconds, result = timed(lambda: run(chain))
        figures[f"{label}_s"] = seconds
        figures[f"{label}_statuses"] = _counts(s.status for s in result.steps.values())
        figures[f"{label}_value"] = result.output(last)
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(chain)
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).strip_dirs()
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
        figures["profile"] = text.getvalue()
    if executor == "ray":
        import ray

        ray.shutdown()
    return figures


def measure_prefect(workdir: Path, steps: int) -> dict[str, Any]:
    """Measure Prefect in this process (its virtualenv) with its home in `workdir`."""
    began = time.perf_counter()
    import prefect

    module = write_module(workdir, "prefect", steps)
    figures: dict[str, Any] = {"version": prefect.__version__, "executor": "prefect"}
    figures["import_s"] = time.perf_counter() - began
    # The first flow run starts the ephemeral API server (and creates its database).
    figures["warmup_s"], _ = timed(module.warmup)
    figures["one_cached_s"], _ = timed(module.warmup)
    figures["baseline_s"] = baseline_s([t.fn for t in module.STEPS])
    for label in ("first", "cached"):
        seconds, (value, states) = timed(module.chain)
        figures[f"{label}_s"] = seconds
        figures[f"{label}_statuses"] = _counts(s.upper() for s in states)
        figures[f"{label}_value"] = value
    return figures


def _counts(names: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for name in names:
        found[name] = found.get(name, 0) + 1
    return found


def prefect_python(say: Say) -> Path:
    """Return the Python of `.venv-prefect`, creating it and installing Prefect first."""
    python = PREFECT_VENV / "bin" / "python"
    if not python.exists():
        say(f"Creating {PREFECT_VENV.name}/ for Prefect (once)...")
        subprocess.run([sys.executable, "-m", "venv", str(PREFECT_VENV)], check=True)
    if not (PREFECT_VENV / "bin" / "prefect").exists():  # written by a finished install
        say(f"Installing {PREFECT_SPEC} into {PREFECT_VENV.name}/ (a minute or two)...")
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, PREFECT_SPEC], check=True)
    return python


def spawn_peer(
    python: Path, peer: str, steps: int, *, profile: bool = False, timeout: float = 600
) -> dict[str, Any]:
    """Measure one side in a fresh process with `python`, on a fresh folder, and return it."""
    env = dict(os.environ)
    for var in ("LOOPML_HOME", "LOOPML_STORE_URI", "LOOPML_BLOB_URI", "PREFECT_API_URL"):
        env.pop(var, None)
    with tempfile.TemporaryDirectory(prefix=f"bench-pipelines-{peer}-") as tmp:
        workdir = Path(tmp).resolve()
        if peer == "prefect":
            env["PREFECT_HOME"] = str(workdir / "prefect-home")
            env["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
            env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # no network calls
            env["DO_NOT_TRACK"] = "1"
        out = workdir / "figures.json"
        command = [str(python), __file__, "--peer", peer, "--workdir", str(workdir / "work")]
        command += ["--steps", str(steps), "--out", str(out)]
        if profile:
            command.append("--profile")
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, check=False, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            sys.exit(f"the {peer} side ran past {timeout:.0f} s; stopped")
        if done.returncode != 0 or not out.exists():
            sys.exit(f"the {peer} side failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
        return dict(json.loads(out.read_text()))


def run_peer(peer: str, workdir: Path, steps: int, profile: bool) -> dict[str, Any]:
    """Measure one side in this process on `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    if peer == "prefect":
        return measure_prefect(workdir, steps)
    return measure_loopml(workdir, steps, "ray" if peer == "ray" else "local", profile)


def render(sides: dict[str, dict[str, Any] | None], steps: int) -> None:
    """Print the comparison table and whether every side computed the right value."""
    from rich.console import Console
    from rich.table import Table

    local, ray, peer = sides["local"], sides["ray"], sides["prefect"]
    assert local is not None
    table = Table(
        title=f"Pipelines: LoopML {local['version']} vs Prefect "
        + (peer["version"] if peer else "(skipped)"),
        caption=(
            f"A chain of {steps} steps, each returning input + 1 · one run each, wall clock\n"
            f"Python {sys.version.split()[0]} · {os.cpu_count()} CPUs, load "
            f"{os.getloadavg()[0]:.1f} · Ray: ray.init(num_cpus={RAY_CPUS})\n"
            "Per step: (run - the plain calls) / steps. Ratio: Prefect ÷ LoopML local."
        ),
    )
    for column in ("Measure", "Local", "Ray", "Prefect", "Ratio", "Target"):
        table.add_column(column, justify="left" if column == "Measure" else "right", no_wrap=True)

    def row(
        label: str,
        figure: Callable[[dict[str, Any]], float | None],
        shown: str = "{:,.2f}",
        *,
        ratio: bool = True,
        target: float | None = None,
    ) -> None:
        values = [None if side is None else figure(side) for side in (local, ray, peer)]
        mine, other = values[0], values[2]
        cells = ["—" if v is None else shown.format(v) for v in values]
        times = f"{other / mine:,.1f}x" if ratio and mine and other else ""
        verdict = ""
        if target is not None and mine is not None:
            verdict = f"< {target:g} s: " + ("[green]PASS[/]" if mine < target else "[red]MISS[/]")
        table.add_row(label, *cells, times, verdict)

    def per_step(key: str) -> Callable[[dict[str, Any]], float]:
        return lambda side: (side[key] - side["baseline_s"]) / steps * 1000

    row("import + setup, s", lambda side: side["import_s"], ratio=False)
    row("ray.init, s", lambda side: side.get("startup_s"), ratio=False)
    row("1 step, 1st in process, s", lambda side: side["warmup_s"])
    row("1 step, cached, s", lambda side: side["one_cached_s"])
    row(f"{steps} steps, first run, s", lambda side: side["first_s"])
    row("  per step, ms", per_step("first_s"), "{:,.1f}")
    target = CACHED_TARGET_S if steps == STEPS else None
    row(f"{steps} steps, cached, s", lambda side: side["cached_s"], target=target)
    row("  per step, ms", per_step("cached_s"), "{:,.1f}")
    row(f"{steps} plain calls, µs", lambda side: side["baseline_s"] * 1e6, "{:,.1f}", ratio=False)

    console = Console()
    console.print(table)
    for name, side in (("LoopML local", local), ("LoopML Ray", ray), ("Prefect", peer)):
        if side is None:
            continue
        said = f"{_said(side['first_statuses'])}, then {_said(side['cached_statuses'])}"
        if (
            side["first_value"] == steps
            and side["cached_value"] == steps
            and side["cached_statuses"] == {"CACHED": steps}
        ):
            console.print(f"{name}: {said}; returned {steps} both times.", markup=False)
        else:
            console.print(
                f"[red]{name} did not run as expected:[/] {said}; returned "
                f"{side['first_value']} and {side['cached_value']}, expected {steps}."
            )


def _said(statuses: dict[str, int]) -> str:
    return " + ".join(f"{count} {status}" for status, count in statuses.items())


def main() -> None:
    """Parse the flags, measure, and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS, help="length of the chain")
    parser.add_argument("--skip-ray", action="store_true", help="leave out the Ray executor")
    parser.add_argument("--skip-peer", action="store_true", help="leave out Prefect")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one more cached re-run (local executor)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--peer", choices=("local", "ray", "prefect"), help="measure one side here")
    parser.add_argument("--workdir", type=Path, help="with --peer: the folder to use")
    parser.add_argument("--out", type=Path, help="with --peer: write the figures here as JSON")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be 1 or more")
    if args.peer:
        if args.workdir is None or args.out is None:
            parser.error("--peer needs --workdir and --out")
        figures = run_peer(args.peer, args.workdir.resolve(), args.steps, args.profile)
        args.out.write_text(json.dumps(figures))
        return

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    here = Path(sys.executable)
    sides: dict[str, dict[str, Any] | None] = {"local": None, "ray": None, "prefect": None}
    say("Measuring LoopML, local executor...")
    sides["local"] = spawn_peer(here, "local", args.steps, profile=args.profile)
    if not args.skip_ray:
        say("Measuring LoopML, Ray executor...")
        sides["ray"] = spawn_peer(here, "ray", args.steps)
    if not args.skip_peer:
        python = prefect_python(say)
        say("Measuring Prefect (its server starts first: up to a minute)...")
        sides["prefect"] = spawn_peer(python, "prefect", args.steps)
    profile = sides["local"].pop("profile", None)
    if args.json:
        print(json.dumps({**sides, "steps": args.steps}, indent=2))
    else:
        render(sides, args.steps)
    if profile:
        print(profile)


if __name__ == "__main__":
    main()
