"""Rich progress bars of long work: files and bytes, or a count of items (rows)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Below these, the work is quick enough that a progress bar would only flicker.
MIN_FILES = 200
MIN_BYTES = 64 * 2**20

Advance = Callable[[int, int], None]


@contextmanager
def file_progress(label: str, files: int, total_bytes: int) -> Iterator[Advance]:
    """Yield `advance(files, bytes)`, drawing a bar on stderr when the work is large.

    `advance` may be called from any thread.
    """
    if files < MIN_FILES and total_bytes < MIN_BYTES:
        yield lambda _files, _bytes: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    lock = threading.Lock()
    done = 0
    with Progress(
        TextColumn(f"{label} {{task.fields[files]}}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total_bytes, files=f"0/{files}")

        def advance(n_files: int, n_bytes: int) -> None:
            nonlocal done
            with lock:
                done += n_files
                progress.update(task, advance=n_bytes, files=f"{done}/{files}")

        yield advance


@contextmanager
def count_progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`, drawing a bar of items done (of `total`, when known) on stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as shown:
        task = shown.add_task(label, total=total)
        yield lambda n: shown.update(task, advance=n)
