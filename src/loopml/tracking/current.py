"""The current run of this context, and the rule for metric, param and tag names.

Kept free of the store's imports: a pipeline step's worker sets the current run to a stand-in
that sends what the step logs back to the driver, and must stay quick to start.
"""

from __future__ import annotations

import functools
import getpass
import re
from contextvars import ContextVar
from typing import Any

from loopml.errors import InvalidInput

# The run that fluent calls (loopml.log_metric, ...) write to, per thread and per async task:
# a Run, or in a pipeline step's worker the step's stand-in.
current_run: ContextVar[Any] = ContextVar("loopml_current_run", default=None)

MAX_KEY = 250
# Letters, digits, and _ - . space / : (the MLflow key alphabet, so keys travel both ways).
KEY_PATTERN = re.compile(r"[\w\-. /:]+")


def check_key(key: object, what: str = "key") -> str:
    """Return `key` if it is a valid metric, param or tag name, else raise InvalidInput."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{what} must be a non-empty string, not {key!r}")
    if len(key) > MAX_KEY or not KEY_PATTERN.fullmatch(key):
        raise InvalidInput(
            f"{what} {key!r} is not allowed: use at most {MAX_KEY} letters, digits, "
            "and _ - . space / :"
        )
    return key


@functools.cache
def current_user() -> str:
    """Return the user name this process runs as ("" where there is none, as in some
    containers without a passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
