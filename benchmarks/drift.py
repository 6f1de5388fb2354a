"""Detect drift in the same frames with a NumPy/SciPy floor, LoopML and Evidently; print all three.

Usage: `.venv/bin/python benchmarks/drift.py [--rows 100000] [--repeat 3] [--skip-evidently]`.
A reference frame of 20 numeric and 5 categorical columns, a current frame with five numeric and
one categorical column drifted, and a fresh sample with no drift come from a seeded generator
(`drift_data.py`, numpy and pandas only; nothing is downloaded). Each contender runs in a process
of its own, which builds the frames itself, so that its peak memory (the child's own ru_maxrss)
holds the same frames and its own work. Timed apart, after the frames exist: the contender's
import, and one drift computation (best of `--repeat` on the drifted frame, then once on the
fresh sample), reading back which columns it flags. The floor is what one writes by hand:
normalised Wasserstein per numeric column, Jensen-Shannon distance of the shares per categorical
column, both flagged at 0.1. Evidently stays out of LoopML's virtualenv: it lives in
`.venv-evidently` (created on first use). Targets are marked met or missed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import drift_data

ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY_VENV = ROOT / ".venv-evidently"
EVIDENTLY_VERSION = "0.7.23"
EVIDENTLY_SPECS = (f"evidently=={EVIDENTLY_VERSION}", "pandas<3")  # it fails to import on pandas 3
CONTENDERS = ("floor", "loopml", "evidently")
LABELS = {"floor": "NumPy/SciPy floor", "loopml": "LoopML", "evidently": "Evidently"}
THRESHOLD = 0.1  # the floor's, for both distances
DATASET_SHARE = 0.5  # the floor's dataset drift: at least this share of columns flagged
SPEED_TARGET = 20.0  # Evidently's compute seconds over LoopML's
MEMORY_TARGET = 1.25  # LoopML's peak over the floor's
MAX_FALSE_POSITIVES = 1

Compute = Callable[[Any, Any], dict[str, Any]]


# The contenders, each loaded in its own process (`--child NAME`); a loader is the timed import.


def load_floor(numeric: list[str], categorical: list[str]) -> Compute:
    """Import SciPy; return the hand-written pass over the frames."""
    import numpy as np
    import pandas as pd
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    def compute(reference: Any, current: Any) -> dict[str, Any]:
        scores = {}
        for name in numeric:
            ref = reference[name].to_numpy(dtype=np.float64)
            cur = current[name].to_numpy(dtype=np.float64)
            scores[name] = wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
        for name in categorical:
            shares = pd.concat(
                [
                    reference[name].value_counts(normalize=True),
                    current[name].value_counts(normalize=True),
                ],
                axis=1,
            ).fillna(0.0)
            scores[name] = float(jensenshannon(shares.iloc[:, 0], shares.iloc[:, 1], base=2))
        flagged = [name for name, score in scores.items() if score >= THRESHOLD]
        share = len(flagged) / len(scores)
        return {
            "flagged": flagged,
            "scores": scores,
            "share": share,
            "dataset": share >= DATASET_SHARE,
        }

    return compute


def load_loopml(numeric: list[str], categorical: list[str]) -> Compute:
    """Import LoopML's drift; return a call of it that reads back the flagged columns."""
    from loopml.monitoring import drift

    def compute(reference: Any, current: Any) -> dict[str, Any]:
        report = drift(reference, current)
        table = report.table
        # The table names a column's score "statistic" (with "p_value" beside it for tests).
        score = "score" if "score" in table.columns else "statistic"
        return {
            "flagged": list(report.drifted),
            "scores": dict(zip(table["column"], table[score].astype(float), strict=True)),
            "methods": dict(zip(table["column"], table["method"].astype(str), strict=True)),
            "share": report.share,
            "dataset": bool(report.dataset_drift),
        }

    return compute


def load_evidently(numeric: list[str], categorical: list[str]) -> Compute:
    """Import Evidently; return a data drift preset run that reads back the flagged columns."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    def compute(reference: Any, current: Any) -> dict[str, Any]:
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        snapshot = Report([DataDriftPreset()]).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        )
        scores, methods, flagged, count = {}, {}, [], None
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if config["type"].endswith("DriftedColumnsCount"):
                count = metric["value"]
                continue
            name, score = config["column"], float(metric["value"])
            scores[name], methods[name] = score, config["method"]
            # Distances drift at or above the threshold; p-values (small samples) below it.
            p_value = "p_value" in config["method"]
            if score < config["threshold"] if p_value else score >= config["threshold"]:
                flagged.append(name)
        assert count is not None and int(count["count"]) == len(flagged), (count, flagged)
        share = float(count["share"])
        return {
            "flagged": flagged,
            "scores": scores,
            "methods": methods,
            "share": share,
            "dataset": share >= DATASET_SHARE,
        }

    return compute


LOADERS = {"floor": load_floor, "loopml": load_loopml, "evidently": load_evidently}


def child(name: str, rows: int, repeat: int) -> dict[str, Any]:
    """Build the frames, import and run contender `name`; return its figures."""
    frames = drift_data.frames(rows)
    reference = frames["reference"]
    numeric, categorical = drift_data.columns(reference)
    began = time.perf_counter()
    compute = LOADERS[name](numeric, categorical)
    import_s = time.perf_counter() - began
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        drifted = compute(reference, frames["drifted"])
        seconds.append(time.perf_counter() - began)
    began = time.perf_counter()
    fresh = compute(reference, frames["fresh"])
    fresh_s = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "import_s": import_s,
        "compute_s": min(seconds),
        "compute_all_s": seconds,
        "fresh_s": fresh_s,
        "peak_mib": peak_kib / 1024,
        "drifted": drifted,
        "fresh": fresh,
        "checksum": drift_data.checksum(frames),
    }


# The parent: one process per contender, then the table


def evidently_python(say: Callable[[str], None]) -> Path:
    """Return `.venv-evidently`'s python, creating it and installing Evidently first."""
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        say(f"Creating {EVIDENTLY_VENV.name}/ for Evidently (once)...")
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    if installed_version(python, "evidently") != EVIDENTLY_VERSION:
        say(f"Installing {' '.join(EVIDENTLY_SPECS)} into {EVIDENTLY_VENV.name}/ (minutes)...")
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *EVIDENTLY_SPECS], check=True)
    return python


def installed_version(python: Path | str, package: str) -> str | None:
    """Return the version of `package` installed for `python`, or None."""
    probe = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def spawn(name: str, python: Path | str, rows: int, repeat: int) -> dict[str, Any]:
    """Run contender `name` in a fresh process of `python`; return what it printed."""
    command = [str(python), __file__, "--child", name, "--rows", str(rows), "--repeat", str(repeat)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        hint = ""
        if name == "loopml" and "loopml.monitoring" in done.stderr:
            hint = (
                "\nLoopML's drift is not importable here; pass --skip-loopml to measure the rest."
            )
        sys.exit(f"{name}: exit {done.returncode}\n{done.stderr[-4000:]}{hint}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(names: list[str], rows: int, repeat: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Run every contender in `names`, one process each; return their figures and versions."""
    pythons: dict[str, Path | str] = {"floor": sys.executable, "loopml": sys.executable}
    versions = {"scipy": installed_version(sys.executable, "scipy")}
    if "loopml" in names:
        import loopml

        # An editable install has no bytecode until a run writes it; pip compiled Evidently's.
        package = str(Path(loopml.__file__).parent)
        subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)
        versions["loopml"] = installed_version(sys.executable, "loopml")
    if "evidently" in names:
        pythons["evidently"] = evidently_python(say)
        versions["evidently"] = installed_version(pythons["evidently"], "evidently")
    figures = {}
    for name in names:
        say(f"Measuring {LABELS[name]} ({rows:,} rows, best of {repeat})...")
        figures[name] = spawn(name, pythons[name], rows, repeat)
        figures[name].update(judge(figures[name]))
    sums = {figures[name]["checksum"] for name in names}
    return {"figures": figures, "versions": versions, "same_frames": len(sums) == 1}


def judge(figures: dict[str, Any]) -> dict[str, Any]:
    """Return which injected columns were caught and which others were flagged."""
    flagged = figures["drifted"]["flagged"]
    return {
        "caught": [name for name in drift_data.DRIFTED if name in flagged],
        "missed": [name for name in drift_data.DRIFTED if name not in flagged],
        "false_positives": [name for name in flagged if name not in drift_data.DRIFTED],
        "fresh_flagged": figures["fresh"]["flagged"],
    }


def render(result: dict[str, Any], rows: int, repeat: int) -> None:
    """Print the comparison table, the per-column scores and the flagged columns."""
    from rich.console import Console
    from rich.table import Table

    figures, versions = result["figures"], result["versions"]
    sides = [figures.get(name) for name in CONTENDERS]
    floor, ours, theirs = sides
    table = Table(
        title=(
            f"Drift: LoopML {versions.get('loopml', '(skipped)')} vs Evidently "
            f"{versions.get('evidently', '(skipped)')} vs NumPy/SciPy {versions['scipy']}"
        ),
        caption=(
            f"{rows:,} rows x (20 numeric + 5 categorical), 6 drifted · {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.1f}\nOne process per contender; each builds the same "
            "frames (in its peak).\nImport: after numpy, pandas; the first call holds any import "
            f"left for it.\nCompute: best of {repeat}, reading back the flags. Ratio: "
            "Evidently's s ÷ LoopML's; LoopML's peak ÷ the floor's."
            + ("" if result["same_frames"] else "\n[red]The contenders' frames differ![/]")
        ),
    )
    for column in ("Measure", "Floor", "LoopML", "Evidently", "Ratio", "Target", ""):
        table.add_column(column, justify="left" if column == "Measure" else "right", no_wrap=True)

    def cells(get: Callable[[dict[str, Any]], str]) -> list[str]:
        return [get(side) if side else "—" for side in sides]

    def seconds(value: float) -> str:
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"

    def ratio(value: float | None, target: str, met: Callable[[float], bool]) -> list[str]:
        return ["—", target, ""] if value is None else [f"{value:.2f}x", target, _mark(met(value))]

    speed = theirs["compute_s"] / ours["compute_s"] if ours and theirs else None
    memory = ours["peak_mib"] / floor["peak_mib"] if ours and floor else None
    table.add_row("import, s", *cells(lambda s: seconds(s["import_s"])))
    table.add_row(
        "compute, drifted, s",
        *cells(lambda s: seconds(s["compute_s"])),
        *ratio(speed, f"≥ {SPEED_TARGET:g}x", lambda v: v >= SPEED_TARGET),
    )
    table.add_row("  its first call, s", *cells(lambda s: seconds(s["compute_all_s"][0])))
    table.add_row("compute, fresh, s", *cells(lambda s: seconds(s["fresh_s"])))
    table.add_row(
        "peak memory, MiB",
        *cells(lambda s: f"{s['peak_mib']:,.0f}"),
        *ratio(memory, f"≤ {MEMORY_TARGET:g}x", lambda v: v <= MEMORY_TARGET),
    )
    injected = len(drift_data.DRIFTED)
    for label, key, target, met in (
        (f"injected caught (of {injected})", "caught", str(injected), lambda n: n == injected),
        (
            "false positives",
            "false_positives",
            f"≤ {MAX_FALSE_POSITIVES}",
            lambda n: n <= MAX_FALSE_POSITIVES,
        ),
        ("flagged on fresh", "fresh_flagged", "0", lambda n: n == 0),
    ):
        mark = _mark(met(len(ours[key]))) if ours else ""
        table.add_row(label, *cells(lambda s, k=key: str(len(s[k]))), "", target, mark)
    yes = {True: "yes", False: "no"}
    table.add_row(
        "dataset drift: d / f",
        *cells(lambda s: f"{yes[s['drifted']['dataset']]} / {yes[s['fresh']['dataset']]}"),
    )

    scores = Table(title="Scores on the drifted frame (✓ flagged)")
    for column in ("Column", "Drift", "Floor", "LoopML", "Evidently"):
        scores.add_column(column, justify="left" if column in ("Column", "Drift") else "right")

    def score(side: dict[str, Any], name: str) -> str:
        flag = "✓" if name in side["drifted"]["flagged"] else " "
        return f"{side['drifted']['scores'].get(name, float('nan')):.3f} {flag}"

    tops = []
    for side in filter(None, sides):
        others = {k: v for k, v in side["drifted"]["scores"].items() if k not in drift_data.DRIFTED}
        tops += [top for top in [max(others, key=others.__getitem__)] if top not in tops]
    for name in [*drift_data.DRIFTED, *tops]:
        how = drift_data.DRIFTED.get(name, "none (highest other)")
        scores.add_row(name, how, *cells(lambda s, n=name: score(s, n)))

    # Piped output (a log, CI) would be cut to 80 columns: the tables need about 100.
    console = Console() if sys.stdout.isatty() else Console(width=110)
    console.print(table)
    console.print(scores)
    for name, side in figures.items():
        methods = sorted(set(side["drifted"].get("methods", {}).values()))
        console.print(
            f"{LABELS[name]}: missed {side['missed'] or 'none'}; false positives "
            f"{side['false_positives'] or 'none'}; on the fresh sample "
            f"{side['fresh_flagged'] or 'none'}; methods "
            f"{methods or ['Wasserstein / std', 'Jensen-Shannon, base 2']}",
            markup=False,
        )


def _mark(met: bool) -> str:
    return "[green]✓ met[/]" if met else "[red]✗ missed[/]"


def main() -> None:
    """Parse the flags, measure, and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in every frame")
    parser.add_argument("--repeat", type=int, default=3, help="compute runs; the best is kept")
    parser.add_argument(
        "--skip-evidently", action="store_true", help="measure the floor and LoopML"
    )
    parser.add_argument(
        "--skip-loopml", action="store_true", help="measure the floor and Evidently"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows < 100 or args.repeat < 1:
        parser.error("--rows must be at least 100 and --repeat at least 1")
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.repeat)))
        return

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    names = [
        n
        for n in CONTENDERS
        if not (n == "loopml" and args.skip_loopml)
        and not (n == "evidently" and args.skip_evidently)
    ]
    result = measure(names, args.rows, args.repeat, say)
    result["workload"] = {"rows": args.rows, "repeat": args.repeat, "drifted": drift_data.DRIFTED}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    render(result, args.rows, args.repeat)


if __name__ == "__main__":
    main()
