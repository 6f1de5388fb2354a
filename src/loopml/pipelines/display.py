"""What a pipeline run shows while it runs: a Rich progress bar and one line per step."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.pipelines.results import StepResult

_MARKS = {
    "COMPLETED": "[green]✓[/]",
    "CACHED": "[cyan]↺[/]",
    "FAILED": "[red]✗[/]",
}


class Display:
    """Draws progress on stderr; `enabled=None` means only when stderr is a terminal."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        self._task: Any = None
        self._running: dict[str, None] = {}
        self._many = False

    def start(self, total: int) -> None:
        """Begin showing progress over `total` steps (of every run being driven)."""
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console = Console(stderr=True)
        if not console.is_terminal:  # a log file gets the step lines, not a bar
            return
        self._progress = Progress(
            TextColumn("[bold]steps"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("", total=total)

    def runs(self, many: bool) -> None:
        """Say whether several runs are driven at once (lines then name the run)."""
        self._many = many

    def step_started(self, job: Any, node: str) -> None:
        """Show that a step attempt began."""
        if self._progress is None:
            return
        self._running[self._label(job, node)] = None
        self._update()

    def step_retry(self, job: Any, node: str, attempt: int, delay: float, error: str) -> None:
        """Say that a failed attempt will be retried."""
        self._running.pop(self._label(job, node), None)
        self._print(
            f"[yellow]↻[/] {self._label(job, node)}  {error} — attempt {attempt} in {delay:g} s"
        )

    def step_done(self, job: Any, result: StepResult, *, reused: bool = False) -> None:
        """Print how a step ended and advance the bar."""
        label = self._label(job, result.node)
        self._running.pop(label, None)
        if result.status == "COMPLETED":
            detail = f"{result.seconds:.2f} s"
            if result.attempts > 1:
                detail += f" (attempt {result.attempts})"
        elif result.status == "CACHED":
            source = (result.cached_from or "")[:8]
            detail = f"reused from {source}" if reused else f"cached (from {source})"
        else:
            detail = result.error_line
        self._print(f"{_MARKS.get(result.status, '·')} {label}  [dim]{detail}[/]")
        if self._progress is not None:
            self._progress.advance(self._task)
            self._update()

    def stop(self) -> None:
        """Remove the bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _label(self, job: Any, node: str) -> str:
        return f"{job.run.name}/{node}" if self._many else node

    def _update(self) -> None:
        names = ", ".join(self._running)
        self._progress.update(self._task, description=f"running {names}" if names else "")

    def _print(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, highlight=False)
        elif self.enabled:
            from rich.console import Console

            Console(stderr=True).print(text, highlight=False)
