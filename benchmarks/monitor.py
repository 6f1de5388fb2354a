"""Time `loopml monitor run` over a day of prediction log, at two sizes: memory stays flat.

Usage: `.venv/bin/python benchmarks/monitor.py [--rows 200000 2000000] [--json PATH]`.
A workspace gets a logistic regression on 10 numeric columns, a deployment of it and a monitor
(1 h windows, three rules). Its prediction log is written straight as Parquet files of 100,000
rows each, spread over 24 hours, with a label for one row in ten and the last six hours
shifted; then `loopml monitor run --since 25h` runs in a process of its own, timed, with its
peak memory (ru_maxrss). Each size runs in a fresh workspace. The claim under test: windows are
counted in chunks, so ten times the rows costs ten times the seconds and about the same memory
(target: the larger run's peak at most 1.25x the smaller's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
LOOPML = ROOT / ".venv" / "bin" / "loopml"
PYTHON = ROOT / ".venv" / "bin" / "python"
FILE_ROWS = 100_000
COLUMNS = [f"x{i}" for i in range(10)]
MEMORY_TARGET = 1.25
WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
)
SETUP = """
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopml

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(5000, 10)), columns=[f"x{i}" for i in range(10)])
    target = (frame["x0"] + frame["x1"] > 0).astype(int)
    frame.assign(target=target).to_csv("reference.csv", index=False)
    with loopml.start_run():
        loopml.log_model(LogisticRegression().fit(frame, target), name="clf",
                         input_example=frame.head(3))
"""


def write_log(root: Path, rows: int, end: pd.Timestamp) -> None:
    """Write `rows` logged predictions over the 24 hours before `end`, and their feedback."""
    rng = np.random.default_rng(1)
    start = end - pd.Timedelta(hours=24)
    for part, first in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - first)
        offsets = np.sort(rng.uniform(0, 24 * 3600 * 1000, n)).astype("int64")
        ts = pd.to_datetime(start.value // 1_000_000 + offsets, unit="ms", utc=True)
        features = rng.normal(size=(n, 10))
        late = offsets > 18 * 3600 * 1000
        features[late] += 0.5  # the last six hours drift
        ids = np.char.add("r", np.arange(first, first + n).astype(str))
        frame = pd.DataFrame(
            {
                "request_id": ids,
                "row": 0,
                "ts": ts.as_unit("ms"),
                "model_version": "1",
                "latency_ms": rng.gamma(2.0, 2.0, n),
                "status": 200,
                "sample_rate": 1.0,
                **{f"in.{c}": features[:, i] for i, c in enumerate(COLUMNS)},
                "out": (features[:, 0] + features[:, 1] > 0).astype("int64"),
            }
        )
        for day, rows_of_day in frame.groupby(frame["ts"].dt.date):
            folder = root / "deployment=clf" / f"date={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            rows_of_day.to_parquet(folder / f"part-{part:05d}.parquet", index=False)
        labelled = frame.iloc[::10]
        feedback = pd.DataFrame(
            {
                "request_id": labelled["request_id"],
                "ts": labelled["ts"],
                "label": (labelled["in.x0"] + labelled["in.x1"] > 0.2).astype("int64"),
            }
        )
        for day, rows_of_day in feedback.groupby(feedback["ts"].dt.date):
            folder = root / "feedback" / "deployment=clf" / f"date={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            rows_of_day.to_parquet(folder / f"part-{part:05d}.parquet", index=False)


def measure(rows: int) -> dict[str, Any]:
    """Set up a fresh workspace with `rows` of log; return the monitor run's seconds and peak."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory(prefix="loopml-bench-monitor-") as scratch:
        work = Path(scratch)

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                args, cwd=work, env=env, text=True, capture_output=True, check=True
            )

        run(str(LOOPML), "init")
        run(str(PYTHON), "-c", textwrap.dedent(SETUP))
        run(str(LOOPML), "deploy", "create", "clf", "--model", "clf/1", "--no-serve")
        run(
            str(LOOPML), "monitor", "create", "watch", "--deployment", "clf",
            "--reference", "reference.csv", "--window", "1h", "--alert", "drift_share > 0.3",
            "--alert", "accuracy < 0.8", "--alert", "p99_ms > 50",
        )  # fmt: skip
        write_log(work / ".loopml" / "predictions", rows, pd.Timestamp.now(tz="UTC"))
        # A wrapper process whose only child is the run, so ru_maxrss is the run's own peak.
        started = time.perf_counter()
        done = run(
            sys.executable, "-c", WRAPPER, str(LOOPML), "monitor", "run", "watch",
            "--since", "25h", "--json",
        )  # fmt: skip
        seconds = time.perf_counter() - started
        peak_kib = int(done.stderr.strip().splitlines()[-1])
        result = json.loads(done.stdout)
    busy = [w for w in result["windows"] if w["rows"]]
    drifted = [w for w in busy if (w["metrics"]["drift_share"] or 0) > 0.3]
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_mib": peak_kib / 1024,
        "windows": len(result["windows"]),
        "windows_with_rows": len(busy),
        "drifted_windows": len(drifted),
        "alerts": [a["message"] for a in result["alerts"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs=2, default=[200_000, 2_000_000])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = []
    for rows in args.rows:
        print(f"monitor run over {rows:,} logged rows ...", file=sys.stderr, flush=True)
        figures.append(measure(rows))
    small, large = figures
    ratio = large["peak_mib"] / small["peak_mib"]
    print(
        f"{'rows':>12} {'seconds':>9} {'rows/s':>11} {'peak MiB':>9} {'windows':>8} {'drifted':>8}"
    )
    for f in figures:
        print(
            f"{f['rows']:>12,} {f['seconds']:>9.2f} {f['rows_per_s']:>11,.0f} {f['peak_mib']:>9.0f}"
            f" {f['windows_with_rows']:>8} {f['drifted_windows']:>8}"
        )
    met = "met" if ratio <= MEMORY_TARGET else "missed"
    print(f"peak memory, {large['rows']:,} rows over {small['rows']:,}: {ratio:.2f}x "
          f"(target <= {MEMORY_TARGET}x: {met})")  # fmt: skip
    for message in large["alerts"]:
        print(f"  alert: {message}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "peak_ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
