"""Cache keys: a step is skipped when an earlier successful run had the same key.

The key is the BLAKE3 digest of canonical JSON holding: the step's `module:qualname`; its code
fingerprint (see `fingerprint.py` for exactly what that covers); its plain params; the digest
of each input (an upstream output's bytes, or a dataset version's manifest); the versions of the
libraries its code reaches; the Python version (major.minor); its output names; and the names
of the step's own materializers.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Mapping
from typing import Any

from blake3 import blake3

from loopml.errors import InvalidInput
from loopml.pipelines.fingerprint import CodeFingerprint
from loopml.pipelines.step import Step

KEY_VERSION = 1


def cache_key(
    node: str,
    step: Step[Any, Any],
    code: CodeFingerprint,
    params: Mapping[str, Any],
    inputs: Mapping[str, str | None],
) -> str:
    """Return the cache key of one call of `step` (64 hex characters)."""
    payload = {
        "v": KEY_VERSION,
        "function": step.reference,
        "code": code.digest,
        "params": {name: canonical(node, name, value) for name, value in params.items()},
        "inputs": dict(inputs),
        "libraries": code.libraries,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "outputs": [o.name for o in step.outputs],
        "materializers": [m.name for m in step.options.materializers],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return blake3(text.encode()).hexdigest()


def canonical(node: str, name: str, value: Any) -> Any:
    """Return `value` as JSON-able data that is equal exactly when the values are equal."""
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return value
    if kind is float:
        return {"float": value.hex()}  # exact, and NaN and infinities too
    if kind in (list, tuple):
        return {kind.__name__: [canonical(node, name, v) for v in value]}
    if kind is dict:
        items = [[canonical(node, name, k), canonical(node, name, v)] for k, v in value.items()]
        return {"dict": sorted(items, key=lambda kv: json.dumps(kv[0], sort_keys=True))}
    if kind in (set, frozenset):
        # Pickled, a set of strings is in hash order, which changes with every process.
        members = [canonical(node, name, v) for v in value]
        return {kind.__name__: sorted(members, key=lambda v: json.dumps(v, sort_keys=True))}
    try:
        data = pickle.dumps(value, protocol=5)
    except Exception as exc:
        raise InvalidInput(
            f"step {node!r}: param {name!r} ({type(value).__name__}) cannot be pickled, so it "
            f"cannot be part of the cache key or sent to a worker: {exc}"
        ) from exc
    return {"pickle": f"{kind.__module__}.{kind.__qualname__}", "blake3": blake3(data).hexdigest()}
