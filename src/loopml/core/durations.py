"""Durations as people write them: `90`, `45s`, `5m`, `1h30m`, `2d`."""

from __future__ import annotations

import math
import re

from loopml.errors import InvalidInput

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def seconds(text: str | float) -> float:
    """Return the seconds `text` means (a bare number is seconds), or raise InvalidInput."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str) and (clean := text.strip().lower()):
        try:
            value = float(clean)
        except ValueError:
            parts = _PART.findall(clean)
            if not parts or "".join(n + u for n, u in parts) != clean:
                raise InvalidInput(
                    f"{text!r} is not a duration; write e.g. 90, 45s, 5m, 1h30m or 2d"
                ) from None
            value = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise InvalidInput(f"{text!r} is not a duration; write e.g. 90, 45s, 5m, 1h30m or 2d")
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"a duration must be above 0, not {text!r}")
    return value
