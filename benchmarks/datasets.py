"""Run one dataset workload on LoopML and on DVC and print both with their ratio.

Usage: `.venv/bin/python benchmarks/datasets.py [--scale 0.1] [--skip-dvc | --skip-loopml]`.
DVC stays out of LoopML's virtualenv: it lives in `.venv-dvc` (created on first use). Every
timing is one whole CLI process, wall clock (what a user waits for), on each tool's own fresh
folder holding the same bytes. The page cache cannot be dropped without root, so both sides run
on a warm cache, taking turns to go first. Targets are marked met or missed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DVC_VENV = ROOT / ".venv-dvc"
DVC_SPEC = "dvc==3.67.*"

FOLDERS = 20  # nested as data/folder/part-N/shard-NN/, 5 shards a part
FILES_PER_FOLDER = 100
FILE_SIZE = 50_000
BIG_SIZE = 1 << 30
STATUS_CALLS = 5  # no-change status reports the median
CP_CALLS = 3  # the cp floor reports the median
SEED = 1
FOLDER = "data/folder"
BIG = "data/big.bin"
# DVC 3.67 at scale 1, measured earlier on this kind of machine: the yardstick with --skip-dvc.
DVC_REFERENCE = {"add_folder_s": 2.87, "add_big_s": 4.46, "status_s": 0.47}

Say = Callable[[str], None]


class Workload:
    """The bytes both sides track, at any scale: many small nested files and one big file."""

    def __init__(self, scale: float) -> None:
        self.per_folder = max(1, round(FILES_PER_FOLDER * scale))
        self.big_size = max(1 << 20, round(BIG_SIZE * scale))
        self.files = FOLDERS * self.per_folder
        self.folder_bytes = self.files * FILE_SIZE

    def paths(self) -> Iterator[str]:
        """Yield the folder's file paths, relative to a workspace."""
        for i in range(FOLDERS):
            for j in range(self.per_folder):
                yield f"{FOLDER}/part-{i // 5}/shard-{i:02d}/file-{j:03d}.bin"

    def write(self, root: Path) -> None:
        """Write the workload under `root`: seeded, so the same bytes on every run."""
        rng = random.Random(SEED)
        for rel in self.paths():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(rng.randbytes(FILE_SIZE))
        with (root / BIG).open("wb") as f:
            for start in range(0, self.big_size, 1 << 20):
                f.write(rng.randbytes(min(1 << 20, self.big_size - start)))


class Side:
    """One tool's CLI on its own folder: the command line of each step, run as a process."""

    def __init__(self, name: str, exe: str, workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.exe = exe
        self.workdir = workdir
        self.env = env

    def argv(self, step: str) -> list[str]:
        """Return the command line of `step`."""
        if self.name == "loopml":
            args = {
                "init": ["init"],
                "add_folder": ["data", "add", FOLDER, "--name", "folder"],
                "add_big": ["data", "add", BIG, "--name", "big"],
                "status": ["data", "status"],
                "checkout_folder": ["data", "checkout", "folder"],
                "checkout_big": ["data", "checkout", "big"],
            }[step]
        else:
            args = {
                "init": ["init", "--no-scm"],
                "add_folder": ["add", FOLDER],
                "add_big": ["add", BIG],
                "status": ["status"],
                "checkout_folder": ["checkout", f"{FOLDER}.dvc"],
                "checkout_big": ["checkout", f"{BIG}.dvc"],
            }[step]
        return [self.exe, *args]

    def check(self) -> None:
        """Exit with a clear message unless this side's CLI answers, before any data is made."""
        probe = [self.exe, "data", "--help"] if self.name == "loopml" else [self.exe, "--version"]
        try:
            done = subprocess.run(probe, env=self.env, capture_output=True, text=True, check=False)
        except OSError as exc:
            sys.exit(f"{self.name}: cannot run {self.exe}: {exc}")
        if done.returncode == 0 and self.name == "loopml":
            # pip compiled DVC's bytecode when it installed it; an editable LoopML has none until
            # a run writes it, and never with PYTHONDONTWRITEBYTECODE set. Compile it the same way.
            import loopml

            package = str(Path(loopml.__file__).parent)
            subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)
        if done.returncode != 0:
            sys.exit(
                f"{self.name}: `{' '.join(probe[1:])}` failed (exit {done.returncode}), so there "
                f"is nothing to measure yet:\n{(done.stdout + done.stderr).strip()[-2000:]}"
            )

    def run(self, step: str) -> tuple[float, str]:
        """Run `step` after a sync; return its wall seconds and what it printed."""
        os.sync()  # so that neither side pays for the other's write-back
        command = self.argv(step)
        began = time.perf_counter()
        done = subprocess.run(
            command, cwd=self.workdir, env=self.env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - began
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            shown = " ".join(command[1:])
            sys.exit(f"{self.name}: `{shown}` failed (exit {done.returncode}):\n{output[-4000:]}")
        return seconds, output


def make_sides(run_dir: Path, loopml: bool, dvc: bool, say: Say) -> list[Side]:
    """Return the sides to measure, each on a fresh folder under `run_dir`."""
    env = dict(os.environ)
    for var in ("LOOPML_HOME", "LOOPML_STORE_URI", "LOOPML_BLOB_URI", "LOOPML_DEBUG"):
        env.pop(var, None)
    sides = []
    if loopml:
        exe = Path(sys.executable).with_name("loopml")
        command = str(exe) if exe.exists() else shutil.which("loopml") or "loopml"
        sides.append(Side("loopml", command, run_dir / "loopml", env))
    if dvc:
        dvc_env = dict(env, DVC_NO_ANALYTICS="1")
        # DVC keeps its state and index databases in a site cache outside the repository:
        # point it into the run folder, so that it starts empty and is removed with it.
        dvc_env["DVC_SITE_CACHE_DIR"] = str(run_dir / "dvc-site-cache")
        sides.append(Side("dvc", str(dvc_exe(say)), run_dir / "dvc", dvc_env))
    return sides


def dvc_exe(say: Say) -> Path:
    """Return the `dvc` of `.venv-dvc`, creating the virtualenv and installing DVC first."""
    python = DVC_VENV / "bin" / "python"
    exe = DVC_VENV / "bin" / "dvc"
    if not python.exists():
        say(f"Creating {DVC_VENV.name}/ for DVC (once)...")
        subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
    if not exe.exists():  # written by a finished install
        say(f"Installing {DVC_SPEC} into {DVC_VENV.name}/ (a few minutes)...")
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, DVC_SPEC], check=True)
    return exe


def measure_floor(source: Path, work: Workload, scratch: Path) -> dict[str, Any]:
    """Time one BLAKE3 pass over the bytes (1 thread and AUTO) and a plain `cp` of the big file."""
    import blake3

    files = [source / rel for rel in work.paths()]
    floor: dict[str, Any] = {}
    os.sync()
    for label, threads in (("1", 1), ("auto", blake3.blake3.AUTO)):
        began = time.perf_counter()
        for path in files:
            blake3.blake3(path.read_bytes(), max_threads=threads).digest()
        floor[f"blake3_{label}_folder_s"] = time.perf_counter() - began
        began = time.perf_counter()
        hasher = blake3.blake3(max_threads=threads)
        hasher.update_mmap(source / BIG)
        hasher.digest()
        floor[f"blake3_{label}_big_s"] = time.perf_counter() - began
    copied, flushed = [], []
    for _ in range(CP_CALLS):
        target = scratch / "cp-of-big.bin"
        os.sync()
        began = time.perf_counter()
        subprocess.run(["cp", str(source / BIG), str(target)], check=True)
        copied.append(time.perf_counter() - began)
        os.sync()  # what making the copy durable adds: a tool that fsyncs pays this too
        flushed.append(time.perf_counter() - began)
        target.unlink()
    floor["cp_big_s"] = statistics.median(copied)
    floor["cp_sync_big_s"] = statistics.median(flushed)
    return floor


def digests(root: Path, rels: list[str]) -> dict[str, str]:
    """Return the BLAKE3 hex digest of each file `rels` names under `root`."""
    import blake3

    found = {}
    for rel in rels:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(root / rel)
        found[rel] = hasher.hexdigest()
    return found


def link_kind(path: Path) -> str:
    """Say how a restored file relates to its cached copy: symlink, hardlink or copy."""
    if path.is_symlink():
        return "symlink"
    return "hardlink" if path.stat().st_nlink > 1 else "copy"


def measure(sides: list[Side], work: Workload, run_dir: Path, say: Say) -> dict[str, Any]:
    """Make the data once, run every step on every side in turns, and return the figures."""
    source = run_dir / "source"
    say(f"Writing {work.files:,} files and a {work.big_size / 2**30:.2f} GiB file...")
    work.write(source)
    rels = [*work.paths(), BIG]
    expected = digests(source, rels)
    for side in sides:
        side.workdir.mkdir()
        shutil.copytree(source / "data", side.workdir / "data")
    say("Measuring the floor (BLAKE3, cp)...")
    floor = measure_floor(source, work, run_dir)
    shutil.rmtree(source)

    figures: dict[str, dict[str, Any]] = {side.name: {"peer": side.name} for side in sides}
    for side in sides:
        side.run("init")
    turn = 0

    def in_turns(step: str) -> None:
        nonlocal turn
        order = sides if turn % 2 == 0 else sides[::-1]
        turn += 1
        for side in order:
            figures[side.name][f"{step}_s"], figures[side.name][f"{step}_output"] = side.run(step)

    say("Measuring add...")
    in_turns("add_folder")
    in_turns("add_big")

    say("Measuring no-change status...")
    for side in sides:
        side.run("status")  # warm up: imports and the tool's own caches
    status: dict[str, list[float]] = {side.name: [] for side in sides}
    for _ in range(STATUS_CALLS):
        order = sides if turn % 2 == 0 else sides[::-1]
        turn += 1
        for side in order:
            seconds, output = side.run("status")
            status[side.name].append(seconds)
            figures[side.name]["status_output"] = output
    for side in sides:
        figures[side.name]["status_s"] = statistics.median(status[side.name])
        figures[side.name]["status_all_s"] = status[side.name]

    say("Measuring checkout...")
    for step, path in (("checkout_folder", FOLDER), ("checkout_big", BIG)):
        for side in sides:
            target = side.workdir / path
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        in_turns(step)
    for side in sides:
        restored = digests(side.workdir, rels)
        wrong = [rel for rel in rels if restored[rel] != expected[rel]]
        figures[side.name]["checkout_identical"] = not wrong
        figures[side.name]["checkout_wrong"] = wrong[:5]
        figures[side.name]["restored_as"] = link_kind(side.workdir / BIG)
    return {"floor": floor, **figures}


def version(side: str) -> str:
    """Return the installed version of `side`'s tool."""
    if side == "loopml":
        from importlib.metadata import version as installed

        return installed("loopml")
    command = [str(DVC_VENV / "bin" / "dvc"), "--version"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def scratch_dir(chosen: Path | None) -> Path:
    """Return where to make the run folder: on the repository's filesystem, like its users."""
    if chosen is not None:
        return chosen
    system = Path(tempfile.gettempdir())
    if system.stat().st_dev == ROOT.stat().st_dev:
        return system
    (ROOT / "build").mkdir(exist_ok=True)  # ignored by git
    return ROOT / "build"


def _remove_tree(path: Path) -> None:
    """Delete `path`, making read-only folders writable first (caches protect their blobs)."""

    def retry(function: Callable[..., Any], name: str, _: Any) -> None:
        parent = Path(name).parent
        parent.chmod(parent.stat().st_mode | stat.S_IWUSR)
        function(name)

    shutil.rmtree(path, onerror=retry)  # onerror: Python 3.11 has no onexc


def render(result: dict[str, Any], work: Workload, scale: float) -> None:
    """Print the comparison table and the floor."""
    from rich.console import Console
    from rich.table import Table

    ours = result.get("loopml")
    theirs = result.get("dvc")
    reference = theirs is None and scale == 1
    peer = f"DVC {result['versions']['dvc']}" if theirs else "DVC (skipped)"
    if reference:
        peer += ", reference figures"
    table = Table(
        title=f"Datasets: LoopML {result['versions'].get('loopml', '(skipped)')} vs {peer}",
        caption=(
            f"{work.files:,} files of {FILE_SIZE // 1000} KB ({work.folder_bytes / 1e6:,.0f} MB)"
            f" in {FOLDERS} folders + one {work.big_size / 2**30:.2f} GiB file · scale {scale:g}"
            f" · Python {sys.version.split()[0]} · {os.cpu_count()} CPUs, load "
            f"{os.getloadavg()[0]:.1f}\nWhole CLI processes, wall clock; warm page cache on both"
            " sides, which take turns to go first. Ratio: how many times faster LoopML is."
        ),
    )
    for column in ("Measure", "LoopML", "DVC", "Ratio", "Target", ""):
        table.add_column(column, justify="left" if column == "Measure" else "right", no_wrap=True)

    def row(label: str, key: str, target: float | None) -> None:
        mine = ours[key] if ours else None
        other = theirs[key] if theirs else DVC_REFERENCE.get(key) if reference else None
        ratio = other / mine if mine and other else None
        table.add_row(
            label,
            f"{mine:.2f}" if mine is not None else "—",
            "—" if other is None else f"{other:.2f}" + ("" if theirs else " (ref)"),
            f"{ratio:.1f}x" if ratio else "—",
            f"≥ {target:g}x" if target else "",
            _mark(ratio >= target) if ratio and target else "",
        )

    big = f"{work.big_size / 2**30:.2f} GiB file"
    row(f"add folder ({work.files:,} files), s", "add_folder_s", 4)
    row(f"add {big}, s", "add_big_s", 4)
    cp = result["floor"]["cp_big_s"]
    table.add_row(
        f"add {big} ÷ plain cp",
        f"{ours['add_big_s'] / cp:.1f}x" if ours else "—",
        f"{theirs['add_big_s'] / cp:.1f}x" if theirs else "—",
        "",
        "≤ 2x",
        _mark(ours["add_big_s"] / cp <= 2) if ours else "",
    )
    row(f"no-change status, s (median of {STATUS_CALLS})", "status_s", 5)
    row("checkout folder, s", "checkout_folder_s", None)
    row(f"checkout {big}, s", "checkout_big_s", None)

    floor = result["floor"]
    floors = Table(title="Floor: the same bytes, no tool", caption="BLAKE3: the python package")
    for column in ("Measure", "folder", big):
        floors.add_column(column, justify="left" if column == "Measure" else "right")

    def speed(seconds: float, size: int) -> str:
        return f"{seconds:.2f} s · {size / seconds / 1e9:.2f} GB/s"

    for label, key in (("BLAKE3, 1 thread", "1"), ("BLAKE3, max_threads=AUTO", "auto")):
        floors.add_row(
            label,
            speed(floor[f"blake3_{key}_folder_s"], work.folder_bytes),
            speed(floor[f"blake3_{key}_big_s"], work.big_size),
        )
    floors.add_row(f"cp (median of {CP_CALLS})", "", speed(cp, work.big_size))
    floors.add_row("cp, then sync", "", speed(floor["cp_sync_big_s"], work.big_size))

    console = Console()
    console.print(table)
    console.print(floors)
    for name, figures in (("LoopML", ours), ("DVC", theirs)):
        if figures is None:
            continue
        said = " / ".join(line.strip() for line in figures["status_output"].splitlines()[:4])
        console.print(f"{name} status said: {said or '(nothing)'!r}", markup=False)
        if figures["checkout_identical"]:
            console.print(f"{name} checkout restored identical bytes ({figures['restored_as']}).")
        else:
            console.print(
                f"[red]{name} checkout restored wrong bytes:[/] {figures['checkout_wrong']}"
            )


def _mark(met: bool) -> str:
    return "[green]✓[/]" if met else "[red]✗[/]"


def main() -> None:
    """Parse the flags, measure, and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sizes (0.1: quick)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    parser.add_argument("--skip-dvc", action="store_true", help="measure LoopML only")
    parser.add_argument("--skip-loopml", action="store_true", help="measure DVC only")
    parser.add_argument(
        "--tmp",
        type=Path,
        help="where to make the run folder (default: a temp folder on the repository's filesystem)",
    )
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.skip_dvc and args.skip_loopml:
        parser.error("--skip-dvc and --skip-loopml leave nothing to measure")

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    work = Workload(args.scale)
    base = scratch_dir(args.tmp)
    sides_count = 2 - args.skip_dvc - args.skip_loopml
    # Peak: the source, each side's copy and the cp floor's copy; later, each side's workspace
    # and its cache.
    need = max(sides_count + 2, 2 * sides_count) * (work.folder_bytes + work.big_size) + (1 << 28)
    free = shutil.disk_usage(base).free
    if free < need:
        sys.exit(
            f"{base} has {free / 2**30:.1f} GiB free; this run needs {need / 2**30:.1f} GiB. "
            "Free some space, pass --tmp DIR on a roomier disk, or lower --scale."
        )
    run_dir = Path(tempfile.mkdtemp(prefix="bench-datasets-", dir=base))
    try:
        sides = make_sides(run_dir, not args.skip_loopml, not args.skip_dvc, say)
        for side in sides:
            side.check()
        result = measure(sides, work, run_dir, say)
    finally:
        _remove_tree(run_dir)
    result["versions"] = {side.name: version(side.name) for side in sides}
    result["workload"] = {
        "scale": args.scale,
        "files": work.files,
        "file_size": FILE_SIZE,
        "big_size": work.big_size,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        render(result, work, args.scale)


if __name__ == "__main__":
    main()
