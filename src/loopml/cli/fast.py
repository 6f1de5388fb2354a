"""Commands that must start fast, run without Typer or the metadata store.

`loopml data status` is run often (in prompts, before every training run); it reads only the
tracked-path index, manifests and the stat cache.
"""

from __future__ import annotations

import json
import sys

from loopml import config
from loopml.errors import LoopMLError


def print_status(as_json: bool) -> int:
    """Print which tracked paths changed; return the exit code."""
    from loopml.data.changes import status

    settings = config.load_settings(config.require_root())
    found = status(settings)
    if as_json:
        body = [
            {
                "path": s.tracked.path,
                "ref": s.tracked.ref,
                "clean": s.changes.clean,
                "missing": s.changes.missing,
                "added": s.changes.added,
                "removed": s.changes.removed,
                "changed": s.changes.changed,
            }
            for s in found
        ]
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    elif not found:
        sys.stdout.write("No tracked data: add some with `loopml data add PATH`.\n")
    else:
        lines = []
        for s in found:
            c = s.changes
            if c.clean:
                lines.append(f"  {s.tracked.path}: up to date ({s.tracked.ref})")
                continue
            state = "missing" if c.missing else "changed"
            lines.append(f"  {s.tracked.path}: {state} since {s.tracked.ref}")
            lines += [f"      modified: {p}" for p in c.changed[:20]]
            lines += [f"      new:      {p}" for p in c.added[:20]]
            lines += [f"      deleted:  {p}" for p in c.removed[:20] if not c.missing]
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def run(argv: list[str]) -> int | None:
    """Run `argv` here when it is a fast command; return None to hand it to the full CLI."""
    if argv not in (["data", "status"], ["data", "status", "--json"]):
        return None
    try:
        return print_status(as_json=len(argv) == 3)
    except (LoopMLError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
