"""Serve one random forest with `loopml serve` and `mlflow models serve`; drive both with one load.

Usage: `.venv/bin/python benchmarks/serving.py [--seconds 10] [--skip-mlflow] [--json]`.
A 100-tree random forest is fitted on scikit-learn's bundled breast-cancer data (nothing is
downloaded), logged and registered on each side in a process of its own on a fresh folder,
then served by that side's real CLI on a loopback port, one server at a time. MLflow stays out
of LoopML's virtualenv: it lives in `.venv-mlflow` (created on first use, as tracking.py does).
One load generator (this process: asyncio, one keep-alive HTTP/1.1 connection per concurrent
caller, the same pre-encoded single-row request every time) sends requests to /invocations at
each concurrency for `--seconds` after a one-second warm-up, and records requests/s, p50, p99
and the answers that were not 200. The floor is the raw forest's own predict, timed in this
process, around each server's run (the machine's load moves it by milliseconds). Each
`--loopml-args` (repeatable) is one more LoopML server configuration; with `--skip-mlflow`,
MLflow's figures measured earlier stand in, marked "(ref)". Targets are marked met or missed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracking import MLFLOW_VENV, mlflow_python

TREES = 100
NAME = "forest"
URI = f"models:/{NAME}/1"
EXAMPLE_ROWS = 5
SECONDS = 10.0  # measured per concurrency, after the warm-up
WARMUP_S = 1.0
CONCURRENCY = (1, 16)
FLOOR_CALLS = 100  # raw predicts per batch size; the median is the floor
TARGET_CONCURRENCY = 16  # where the throughput target applies
THROUGHPUT_TARGET = 10.0  # LoopML's requests/s there, over MLflow's
P50_MARGIN_MS = 1.0  # LoopML's p50 at concurrency 1 within this of the one-row floor
REQUEST_TIMEOUT_S = 30.0
START_TIMEOUT_S = 180.0  # `mlflow models serve` imports a lot before it answers /ping
TREE_TYPE = "sklearn.tree._tree.Tree"
# Batching on (rows of concurrent requests per model call), the prediction log off so that it
# stays out of the measurement; the second configuration is the same with the log on.
LOOPML_ARGS = (
    "--max-batch-size 32 --max-wait-ms 2 --no-log",
    "--max-batch-size 32 --max-wait-ms 2",
)
# `mlflow models serve` (MLflow 3.17, one worker), measured on this kind of machine; shown,
# marked "(ref)", when --skip-mlflow leaves nothing measured to compare with.
MLFLOW_REFERENCE = {
    1: {"rps": 64.0, "p50_ms": 14.3, "p99_ms": None, "errors": 0},
    16: {"rps": 38.5, "p50_ms": 408.0, "p99_ms": None, "errors": 0},
}
MLFLOW_REFERENCE_FLOOR = {"rows_1_ms": 4.9, "rows_16_ms": 5.0}


def training_data() -> tuple[Any, Any]:
    """Return the bundled breast-cancer data as a DataFrame (30 float columns) and labels."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


def fit_forest() -> tuple[Any, Any]:
    """Return the forest both sides serve (fixed seed) and the features it was fitted on."""
    from sklearn.ensemble import RandomForestClassifier

    features, labels = training_data()
    model = RandomForestClassifier(n_estimators=TREES, random_state=0).fit(features, labels)
    return model, features


# Setup, each side in its own process (`--peer NAME --workdir DIR`)


def setup_loopml(workdir: Path) -> dict[str, Any]:
    """Log and register the forest in a fresh LoopML workspace in `workdir`."""
    os.environ["LOOPML_HOME"] = str(workdir)
    import loopml
    from loopml.core.workspace import Workspace

    Workspace.init(workdir)
    loopml.set_workspace(workdir)
    model, features = fit_forest()
    with loopml.start_run():
        loopml.log_model(model, name=NAME, input_example=features.head(EXAMPLE_ROWS))
    return {"version": loopml.__version__}


def setup_mlflow(workdir: Path) -> dict[str, Any]:
    """Log and register the forest in a fresh MLflow SQLite store in `workdir`."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    location = (workdir / "artifacts").as_uri()
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("serving", location))
    model, features = fit_forest()
    with mlflow.start_run():
        # Its default format, skops, refuses a forest's tree type unless told it is trusted.
        mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=NAME,
            input_example=features.head(EXAMPLE_ROWS),
            skops_trusted_types=[TREE_TYPE],
        )
    return {"version": mlflow.__version__}


SETUPS = {"loopml": setup_loopml, "mlflow": setup_mlflow}


def spawn_setup(python: Path, peer: str, workdir: Path) -> dict[str, Any]:
    """Run one side's setup in a fresh process with `python`; return what it printed."""
    workdir.mkdir(parents=True)
    command = [str(python), __file__, "--peer", peer, "--workdir", str(workdir), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=clean_env(), check=False)
    if done.returncode != 0:
        sys.exit(f"{peer} setup: exit {done.returncode}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def clean_env() -> dict[str, str]:
    """Return this environment without any store, workspace or setting of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "MLFLOW_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # no network calls from a benchmark
    return env


# The servers


class Server:
    """One side's CLI server in a process group of its own, on a free loopback port."""

    def __init__(self, label: str, command: list[str], env: dict[str, str], workdir: Path) -> None:
        self.label = label
        self.port = free_port()
        self.output = workdir / f"server-{self.port}.log"
        with self.output.open("wb") as sink:
            self.process = subprocess.Popen(
                [*command, str(self.port)],
                cwd=workdir,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers are stopped with it, as one group
            )

    def wait_ready(self) -> float:
        """Return the seconds until GET /ping answered 200; exit if the server died first."""
        began = time.perf_counter()
        url = f"http://127.0.0.1:{self.port}/ping"
        while time.perf_counter() - began < START_TIMEOUT_S:
            if self.process.poll() is not None:
                self.fail(f"exited with {self.process.returncode} before answering /ping")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - began
            except OSError:
                time.sleep(0.1)
        self.fail(f"did not answer /ping within {START_TIMEOUT_S:g} s")
        raise AssertionError  # fail() exits

    def cpu_seconds(self) -> float | None:
        """Return the CPU seconds the server's process group has used so far (Linux only)."""
        total = 0
        try:
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue  # a process that ended meanwhile
                if int(fields[2]) == self.process.pid:  # process group id
                    total += int(fields[11]) + int(fields[12])  # utime + stime, in ticks
        except OSError:
            return None
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after 30 s."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def fail(self, why: str) -> None:
        """Stop the server and exit with `why` and the tail of its output."""
        self.stop()
        tail = self.output.read_text(errors="replace")[-4000:]
        sys.exit(f"{self.label} server {why}; its output ends:\n{tail}")


def free_port() -> int:
    """Return a loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def loopml_server(workdir: Path, serve_args: str) -> Server:
    """Start `loopml serve` on the workspace in `workdir` with the extra `serve_args`."""
    env = clean_env()
    env["LOOPML_HOME"] = str(workdir)
    exe = Path(sys.executable).with_name("loopml")
    command = [str(exe), "serve", URI, *shlex.split(serve_args), "--port"]
    return Server(f"loopml ({serve_args})", command, env, workdir)


def mlflow_server(workdir: Path) -> Server:
    """Start `mlflow models serve` on the store in `workdir`, with its defaults (one worker)."""
    env = clean_env()
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir}/mlflow.db"
    # --env-manager local runs the server from the PATH, which must find MLflow's own venv.
    env["PATH"] = f"{MLFLOW_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    exe = MLFLOW_VENV / "bin" / "mlflow"
    command = [str(exe), "models", "serve", "-m", URI, "--env-manager", "local"]
    return Server("mlflow", [*command, "-h", "127.0.0.1", "-p"], env, workdir)


# The load generator


def request_bytes(port: int, body: bytes) -> bytes:
    """Return one keep-alive HTTP/1.1 POST of `body` to /invocations, ready to send."""
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool, bytes]:
    """Send `request`; return the status, whether the connection stays open, and the body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        body = await reader.readexactly(int(lower[at + 17 : end]))
    elif b"transfer-encoding: chunked" in lower:
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size + 2))
        await reader.readuntil(b"\r\n")  # the end of the (empty) trailer
        body = b"".join(part[:-2] for part in parts)
    else:  # the body runs to the end of the connection
        body = await reader.read()
        return status, False, body
    return status, b"connection: close" not in lower, body


async def caller(
    port: int, request: bytes, start: float, end: float, latencies: list[float], errors: list[str]
) -> None:
    """Send requests one after another until `end`; keep those that finished in the window."""
    clock = time.perf_counter
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while (began := clock()) < end:
        try:
            if connection is None:
                connection = await asyncio.open_connection("127.0.0.1", port)
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, keep, _ = await exchange(*connection, request)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            status, keep = 0, False
            if clock() >= start:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(0.01)  # a refused connection must not spin this loop
        finished = clock()
        if start <= finished < end:
            if status == 200:
                latencies.append(finished - began)
            elif status:
                errors.append(f"HTTP {status}")
        if not keep and connection is not None:
            connection[1].close()
            connection = None
    if connection is not None:
        connection[1].close()


async def drive(port: int, body: bytes, concurrency: int, seconds: float) -> dict[str, Any]:
    """Load the server on `port` with `concurrency` callers; return its figures."""
    request = request_bytes(port, body)
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter() + WARMUP_S
    end = start + seconds
    cpu = time.process_time()
    callers = [caller(port, request, start, end, latencies, errors) for _ in range(concurrency)]
    await asyncio.gather(*callers)
    return summarize(latencies, errors, seconds, time.process_time() - cpu)


def summarize(
    latencies: list[float], errors: list[str], seconds: float, cpu_s: float
) -> dict[str, Any]:
    """Return requests/s, p50 and p99 (ms), the error count and a sample of the errors."""
    ordered = sorted(latencies)

    def quantile(q: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else None

    return {
        "requests": len(ordered),
        "rps": len(ordered) / seconds,
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        # Over warm-up and window alike: how much of a CPU the generator itself took.
        "generator_cpu": cpu_s / (seconds + WARMUP_S),
    }


def measure_server(
    server: Server, body: bytes, levels: tuple[int, ...], seconds: float, say: Callable[[str], None]
) -> dict[str, Any]:
    """Wait for `server`, check one answer, drive it at each concurrency, stop it."""
    try:
        started_s = server.wait_ready()
        say(f"{server.label}: up in {started_s:.1f} s")
        answer = asyncio.run(one_answer(server.port, body))
        figures: dict[str, Any] = {"startup_s": started_s, "answer": answer, "levels": {}}
        for level in levels:
            say(f"{server.label}: concurrency {level}, {seconds:g} s")
            cpu = server.cpu_seconds()
            began = time.perf_counter()
            figures["levels"][level] = asyncio.run(drive(server.port, body, level, seconds))
            after = server.cpu_seconds()
            if cpu is not None and after is not None:
                share = (after - cpu) / (time.perf_counter() - began)
                figures["levels"][level]["server_cpu"] = share
    finally:
        server.stop()
    return figures


async def one_answer(port: int, body: bytes) -> Any:
    """Return the predictions the server on `port` gives for `body` (exit if not a 200)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        status, _, answer = await exchange(reader, writer, request_bytes(port, body))
    finally:
        writer.close()
    if status != 200:
        sys.exit(f"the server on port {port} answered {status}: {answer[:500]!r}")
    return json.loads(answer)["predictions"]


# The floor


def floor(model: Any, features: Any) -> dict[str, float]:
    """Return the raw forest's median predict time in ms for 1 and for 16 rows."""
    figures = {}
    for rows in (1, 16):
        batch = features.iloc[:rows]
        for _ in range(10):  # first calls fill caches
            model.predict(batch)
        took = []
        for _ in range(FLOOR_CALLS):
            began = time.perf_counter()
            model.predict(batch)
            took.append(time.perf_counter() - began)
        figures[f"rows_{rows}_ms"] = statistics.median(took) * 1000
    return figures


# Orchestration and output


def measure(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    """Time the floor, then serve and load each LoopML configuration and MLflow in turn."""
    model, features = fit_forest()
    figures: dict[str, Any] = {}
    row = features.iloc[[0]]
    body = json.dumps(
        {"dataframe_split": {"columns": list(row.columns), "data": row.to_numpy().tolist()}}
    ).encode()
    figures["expected"] = model.predict(row).tolist()
    levels = tuple(args.concurrency)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp).resolve()
        loopml_dir = workdir / "loopml"
        say("loopml: log and register the forest")
        version = spawn_setup(Path(sys.executable), "loopml", loopml_dir)["version"]
        figures["loopml"] = []
        for serve_args in args.loopml_args or LOOPML_ARGS:
            start = functools.partial(loopml_server, loopml_dir, serve_args)
            measured = bracketed(model, features, start, body, levels, args.seconds, say)
            figures["loopml"].append({"version": version, "args": serve_args, **measured})
        figures["mlflow"] = None
        if not args.skip_mlflow:
            python = mlflow_python(say)
            mlflow_dir = workdir / "mlflow"
            say("mlflow: log and register the forest")
            version = spawn_setup(python, "mlflow", mlflow_dir)["version"]
            start = functools.partial(mlflow_server, mlflow_dir)
            measured = bracketed(model, features, start, body, levels, args.seconds, say)
            figures["mlflow"] = {"version": version, "args": "defaults", **measured}
    return figures


def bracketed(
    model: Any,
    features: Any,
    start: Callable[[], Server],
    body: bytes,
    levels: tuple[int, ...],
    seconds: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Start and measure a server, with the floor timed before it starts and after it stops.

    The machine's load moves a forest's predict by milliseconds, so each server is judged
    against a floor of its own time: the mean of the two.
    """
    before = floor(model, features)
    measured = measure_server(start(), body, levels, seconds, say)
    after = floor(model, features)
    mean = {key: (before[key] + after[key]) / 2 for key in before}
    return {"floor": mean, "floor_before": before, "floor_after": after, **measured}


def judge(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Return each LoopML configuration's two targets, with the figures they rest on."""
    theirs = figures["mlflow"]
    top = TARGET_CONCURRENCY
    their_levels = theirs["levels"] if theirs else MLFLOW_REFERENCE
    their_rps = their_levels[top]["rps"] if top in their_levels else None
    verdicts = []
    for side in figures["loopml"]:
        level = side["levels"]
        ratio = level[top]["rps"] / their_rps if their_rps and top in level else None
        p50 = level[1]["p50_ms"] if 1 in level else None
        gap = p50 - side["floor"]["rows_1_ms"] if p50 is not None else None
        verdicts.append(
            {
                "args": side["args"],
                "throughput_ratio": ratio,
                "throughput_met": None if ratio is None else ratio >= THROUGHPUT_TARGET,
                "p50_over_floor_ms": gap,
                "p50_met": None if gap is None else gap <= P50_MARGIN_MS,
            }
        )
    return verdicts


def render(figures: dict[str, Any], args: argparse.Namespace) -> None:
    """Print a table per concurrency, then the targets."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    levels = tuple(args.concurrency)
    theirs = figures["mlflow"]
    sides = [(f"LoopML {_short(s['args'])}", s["levels"], s["floor"]) for s in figures["loopml"]]
    peer = f"MLflow {theirs['version']}" if theirs else "MLflow 3.17 (ref)"
    if theirs:
        sides.append((f"{peer}, 1 worker", theirs["levels"], theirs["floor"]))
    else:
        sides.append((f"{peer}, 1 worker", MLFLOW_REFERENCE, MLFLOW_REFERENCE_FLOOR))
    version = figures["loopml"][0]["version"] if figures["loopml"] else "?"
    for level in levels:
        table = Table(
            title=(
                f"Serving: LoopML {version} vs {peer} · concurrency {level}, single-row "
                f"/invocations, {args.seconds:g} s"
            ),
            caption=(
                "Floor: the raw forest's predict of 1 and 16 rows in this process, the mean "
                "of its medians\nbefore and after that server's run · CPU g/s: share of one "
                f"core, load generator / server · Python {sys.version.split()[0]} · "
                f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
            ),
        )
        columns = ("Server", "req/s", "p50 ms", "p99 ms", "errors", "CPU g/s", "floor ms")
        for column in columns:
            if column == "Server":
                table.add_column(column, ratio=1)  # the one column that wraps on a narrow screen
            else:
                table.add_column(column, justify="right", no_wrap=True)
        for label, by_level, base in sides:
            got = by_level.get(level)
            if got is None:
                continue
            cpu = (
                f"{got['generator_cpu']:.2f}/{got.get('server_cpu', 0):.2f}"
                if "generator_cpu" in got
                else "—"
            )
            table.add_row(
                label,
                f"{got['rps']:,.1f}",
                _ms(got["p50_ms"]),
                _ms(got["p99_ms"]),
                str(got["errors"]),
                cpu,
                f"{base['rows_1_ms']:.1f}/{base['rows_16_ms']:.1f}",
            )
        console.print(table)
    top = TARGET_CONCURRENCY
    for verdict in judge(figures):
        console.print(f"[bold]LoopML {_short(verdict['args'])}[/] ({verdict['args']})")
        ratio = verdict["throughput_ratio"]
        if ratio is not None:
            console.print(
                f"  req/s at concurrency {top}: {ratio:,.1f}x MLflow's{'' if theirs else ' (ref)'} "
                f"(target ≥ {THROUGHPUT_TARGET:g}x) {_mark(verdict['throughput_met'])}"
            )
        gap = verdict["p50_over_floor_ms"]
        if gap is not None:
            console.print(
                f"  p50 at concurrency 1 minus the 1-row floor: {gap:+.2f} ms "
                f"(target ≤ {P50_MARGIN_MS:g} ms) {_mark(verdict['p50_met'])}"
            )
    for side in [*figures["loopml"], *([theirs] if theirs else [])]:
        if side["answer"] != figures["expected"]:
            console.print(
                f"[red]{side['args']}: the server answered {side['answer']}, "
                f"the forest predicts {figures['expected']}.[/]"
            )
        for level, got in side["levels"].items():
            if got["errors"]:
                console.print(f"[red]{side['args']} at {level}: {got['error_kinds']}[/]")


def _short(serve_args: str) -> str:
    """Return serve flags as a short label: "batch 32, wait 2 ms, no log"."""
    words = {"--max-batch-size": "batch", "--max-wait-ms": "wait", "--log-sample-rate": "log"}
    parts = []
    flags = shlex.split(serve_args)
    for at, flag in enumerate(flags):
        if flag in words and at + 1 < len(flags):
            unit = " ms" if flag == "--max-wait-ms" else ""
            parts.append(f"{words[flag]} {flags[at + 1]}{unit}")
        elif flag == "--no-log":
            parts.append("no log")
        elif flag.startswith("--") and flag not in words:
            parts.append(flag.removeprefix("--"))
    return ", ".join(parts) or "defaults"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def _mark(met: bool | None) -> str:
    return "[green]met[/]" if met else "[red]missed[/]"


def main() -> None:
    """Parse the flags, measure, and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS, help="per concurrency")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=list(CONCURRENCY), help="callers at once"
    )
    parser.add_argument(
        "--loopml-args",
        action="append",
        help="serve flags of one LoopML configuration, as --loopml-args='--no-log ...' "
        "(repeatable; default: " + " and ".join(repr(a) for a in LOOPML_ARGS) + ")",
    )
    parser.add_argument("--peer", choices=tuple(SETUPS), help="set up one side here")
    parser.add_argument("--workdir", type=Path, help="with --peer: the folder to use")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    parser.add_argument("--skip-mlflow", action="store_true", help="serve LoopML only")
    args = parser.parse_args()
    if args.seconds <= 0 or min(args.concurrency) < 1:
        parser.error("--seconds must be positive and --concurrency 1 or more")
    if args.peer:
        if args.workdir is None:
            parser.error("--peer needs --workdir")
        print(json.dumps(SETUPS[args.peer](args.workdir.resolve())))
        return

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    figures = measure(args, say)
    if args.json:
        figures["targets"] = judge(figures)
        print(json.dumps(figures, indent=2))
    else:
        render(figures, args)


if __name__ == "__main__":
    main()
