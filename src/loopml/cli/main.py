"""The `loopml` entry point: fast commands first, then the full Typer app."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the `loopml` command."""
    from loopml.cli import fast

    code = fast.run(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from loopml.cli.app import main as full

    full()
