"""When a policy's triggers fire, and the numbers that made them.

Each trigger keeps a cursor in the policy's row: the last schedule slot, monitor window or
dataset version it consumed. A trigger fires on something past its cursor, and its cursor
moves only when a loop starts from it. So a trigger held back by a cooldown or a running loop
fires once that is over, if what it saw still holds: a drift that persists past the cooldown
retrains, one that went away does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loopml.automation.policy import Policy, Trigger
from loopml.core.workspace import Workspace
from loopml.errors import NotFound


@dataclass(frozen=True)
class Firing:
    """A trigger that fired: why, with the numbers, and the cursor it consumes."""

    trigger: str  # the trigger's key, e.g. "drift churn: drift_share > 0.3"
    kind: str
    reason: str
    values: dict[str, Any]
    cursor: Any

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {"trigger": self.trigger, "kind": self.kind, "reason": self.reason, **self.values}


def initial_cursors(ws: Workspace, policy: Policy, now: int) -> dict[str, Any]:
    """Return each trigger's cursor as of `now`: only what comes later fires."""
    from loopml.data import versions

    cursors: dict[str, Any] = {}
    for trigger in policy.triggers:
        if trigger.kind == "new_data":
            try:
                cursors[trigger.key] = versions.get(ws, trigger.settings["dataset"]).version
            except NotFound:
                cursors[trigger.key] = 0
        elif trigger.kind != "manual":
            cursors[trigger.key] = now
    return cursors


def due(ws: Workspace, policy: Policy, cursors: dict[str, Any], now: int) -> list[Firing]:
    """Return the policy's triggers that fire at `now` (none are consumed here)."""
    found = []
    for trigger in policy.triggers:
        cursor = cursors.get(trigger.key, now)
        fired = _CHECKS[trigger.kind](ws, trigger, cursor, now) if trigger.kind in _CHECKS else None
        if fired is not None:
            found.append(fired)
    return found


def _schedule(ws: Workspace, trigger: Trigger, cursor: Any, now: int) -> Firing | None:
    from croniter import croniter

    cron = trigger.settings["cron"]
    due_s = croniter(cron, datetime.fromtimestamp(cursor / 1000, UTC)).get_next(float)
    if due_s * 1000 > now:
        return None
    slot = datetime.fromtimestamp(due_s, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Firing(
        trigger.key,
        "schedule",
        f"schedule {cron!r} was due at {slot}",
        {"cron": cron, "due_at": int(due_s * 1000)},
        now,  # slots missed meanwhile are one firing, not a backlog
    )


def _monitor(ws: Workspace, trigger: Trigger, cursor: Any, now: int) -> Firing | None:
    """Fire if the monitor's newest complete window with traffic, past the cursor, meets
    the trigger's rule."""
    from loopml.monitoring import monitors
    from loopml.monitoring.alerts import Rule

    name = trigger.settings["monitor"]
    rule = Rule.parse(trigger.settings["when"])
    try:
        recent = monitors.windows(ws, name, limit=50, details=False)
    except NotFound:
        return None  # the monitor was deleted: `loop status` says so
    for window in reversed(recent):
        if window.complete and window.rows and window.end_ms > cursor:
            if not rule.holds(window.metrics):
                return None
            value = window.metrics[rule.metric]
            start = datetime.fromtimestamp(window.start_ms / 1000, UTC).strftime("%H:%M:%S")
            return Firing(
                trigger.key,
                trigger.kind,
                f"monitor {name}: {rule.metric} {value:.4g} {rule.op} {rule.value:g} in the "
                f"window from {start} UTC ({window.rows} rows)",
                {
                    "monitor": name,
                    "rule": str(rule),
                    "metric": rule.metric,
                    "value": value,
                    "threshold": rule.value,
                    "window_start": window.start_ms,
                    "window_end": window.end_ms,
                    "rows": window.rows,
                },
                window.end_ms,
            )
    return None


def _new_data(ws: Workspace, trigger: Trigger, cursor: Any, now: int) -> Firing | None:
    from loopml.data import versions

    name = trigger.settings["dataset"]
    try:
        latest = versions.get(ws, name)
    except NotFound:
        return None
    if latest.version <= int(cursor):
        return None
    was = f"v{cursor}" if cursor else "none"
    return Firing(
        trigger.key,
        "new_data",
        f"new data: {latest.ref} (the last one used was {was})",
        {"dataset": latest.ref, "previous": int(cursor)},
        latest.version,
    )


_CHECKS = {
    "schedule": _schedule,
    "drift": _monitor,
    "performance": _monitor,
    "new_data": _new_data,
}
