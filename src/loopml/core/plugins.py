"""Plugins as data: built-ins are `(name, "module:attribute")` pairs resolved on first use.

Keeping references as strings lets a lower layer name work that a higher layer does (the
tracking layer's journal replay runs whenever a workspace opens) without importing it, and
keeps `import loopml` fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Called with the Workspace when a process opens it and its journal folder is not empty.
JOURNAL_REPLAY: tuple[str, ...] = ("loopml.tracking.recovery:replay_abandoned",)

# Called with the Workspace by garbage collection; each returns the set of blob digests its
# layer still points at. Registry and pipeline outputs add theirs here.
BLOB_REFERENCES: tuple[str, ...] = (
    "loopml.tracking.artifacts:referenced_digests",
    "loopml.data.versions:referenced_digests",
    "loopml.pipelines.records:referenced_digests",
    "loopml.registry.api:referenced_digests",
)


def resolve(reference: str) -> Any:
    """Import and return the object named by `"package.module:attribute"`."""
    module_name, _, attribute = reference.partition(":")
    obj: Any = import_module(module_name)
    for part in attribute.split(".") if attribute else ():
        obj = getattr(obj, part)
    return obj
