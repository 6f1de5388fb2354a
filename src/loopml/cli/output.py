"""Rendering for the CLI: Rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Markup off: names and values are user text, and '[bold]' in a run name must print as typed.
console = Console(highlight=False, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)


def print_json(data: Any) -> None:
    """Write `data` as JSON to stdout (NaN and infinities as strings)."""
    sys.stdout.write(json.dumps(_finite(data), indent=2, default=str) + "\n")


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    wrap: Sequence[str] = ("PARAMS", "METRICS", "VALUE", "PATH", "NAME"),
) -> None:
    """Print a table; columns outside `wrap` stay on one line (ids, times, numbers)."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        if column in wrap:
            out.add_column(column, overflow="fold", ratio=1)
        else:
            out.add_column(column, no_wrap=True)
    for row in rows:
        out.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console.print(out)


def when(ms: int | None, *, short: bool = False) -> str:
    """Format epoch milliseconds as local date and time (month, day and time when `short`)."""
    if ms is None:
        return ""
    local = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone()
    return local.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def duration(ms: int | None) -> str:
    """Format a duration in milliseconds as 1.2s, 3m04s or 2h05m."""
    if ms is None:
        return ""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def size_text(n: int) -> str:
    """Format a byte count as 512 B, 3.1 KB, 2.0 GB."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def number(value: float) -> str:
    """Format a metric value compactly."""
    return f"{value:.6g}"


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return str(data)
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def write_page(path: Path, page: str) -> None:
    """Write an HTML report to `path`, making its folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
